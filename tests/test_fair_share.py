"""Fair share of the device slots: the next job goes to the owner with the fewest recent slot-seconds on that
slot (db.jobs.claim_next with a window), ties and one owner's own queue FIFO; on SQLite and PostgreSQL.
Rows are built by hand (no workers): a claimed job is given the start and finish times a run would have had."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import event, update

from db import jobs
from db.models import JobRow, utcnow
from db.session import get_engine, session_scope

H = 3600.0
WINDOW = 6 * H


def queue(url, owner, device="cpu"):
    return jobs.create(url, "sleep", f"{owner} on {device}", {"seconds": 0}, device, owner=owner)


def past(url, owner, device, started_h_ago, finished_h_ago=None, status="done"):
    """A job of `owner` that held `device` from started_h_ago until finished_h_ago (None: it still holds it)."""
    job_id = queue(url, owner, device)
    now = utcnow()
    set_times(url, job_id, now - timedelta(hours=started_h_ago),
              None if finished_h_ago is None else now - timedelta(hours=finished_h_ago),
              "running" if finished_h_ago is None else status)
    return job_id


def set_times(url, job_id, started, finished, status="done"):
    with session_scope(url) as s:
        s.execute(update(JobRow).where(JobRow.id == job_id)
                  .values(status=status, started_at=started, finished_at=finished, heartbeat_at=started))


def claimed(url, devices=None, window_s=WINDOW):
    job = jobs.claim_next(url, devices, window_s=window_s)
    return None if job is None else job.id


def done(url, job_id):
    assert jobs.finish(url, job_id, "done", "ok")


def test_the_slot_goes_to_the_owner_who_used_it_least(store_url):
    past(store_url, "alice", "cpu", 3, 1)  # 2 h
    past(store_url, "bob", "cpu", 0.5, 1 / 3)  # 10 min
    alice = queue(store_url, "alice")
    bob = queue(store_url, "bob")
    usage = jobs.slot_usage(store_url, WINDOW)
    assert usage[("alice", "cpu")] == pytest.approx(2 * H, abs=2)
    assert usage[("bob", "cpu")] == pytest.approx(H / 6, abs=2)
    assert claimed(store_url) == bob
    done(store_url, bob)
    assert claimed(store_url) == alice


def test_use_that_ended_before_the_window_does_not_count(store_url):
    past(store_url, "alice", "cpu", 12, 7)  # 5 h, ended 7 h ago: outside a 6 h window
    past(store_url, "bob", "cpu", 1, 0.5)  # 30 min inside it
    bob = queue(store_url, "bob")
    alice = queue(store_url, "alice")
    assert ("alice", "cpu") not in jobs.slot_usage(store_url, WINDOW)
    assert claimed(store_url) == alice  # alice used nothing that counts, bob 30 min (her 5 h would lose)
    done(store_url, alice)
    assert claimed(store_url) == bob


def test_no_recent_use_at_all_is_fifo(store_url):
    past(store_url, "alice", "cpu", 12, 7)  # alice's long job ended 7 h ago
    alice = queue(store_url, "alice")
    bob = queue(store_url, "bob")
    assert claimed(store_url) == alice
    done(store_url, alice)
    assert claimed(store_url) == bob


def test_a_job_across_the_window_start_counts_only_its_overlap(store_url):
    past(store_url, "alice", "cpu", 8, 5)  # 3 h, of which 1 h within the last 6 h
    past(store_url, "bob", "cpu", 3, 1.5)  # 1.5 h
    bob = queue(store_url, "bob")
    alice = queue(store_url, "alice")
    usage = jobs.slot_usage(store_url, WINDOW)
    assert usage[("alice", "cpu")] == pytest.approx(H, abs=2)
    assert usage[("bob", "cpu")] == pytest.approx(1.5 * H, abs=2)
    assert claimed(store_url) == alice  # counted whole, alice's 3 h would have given bob the slot
    done(store_url, alice)
    assert claimed(store_url) == bob


def test_a_running_job_counts_until_now(store_url):
    past(store_url, "alice", "cuda:0", 7)  # running for 7 h: the whole 6 h window
    past(store_url, "bob", "cuda:0", 2, 1)
    usage = jobs.slot_usage(store_url, WINDOW)
    assert usage[("alice", "cuda:0")] == pytest.approx(WINDOW, abs=2)
    assert usage[("bob", "cuda:0")] == pytest.approx(H, abs=2)


def test_one_owners_own_queue_is_fifo(store_url):
    past(store_url, "alice", "cpu", 2, 1)
    first, second, third = (queue(store_url, "alice") for _ in range(3))
    for expected in (first, second, third):
        assert claimed(store_url) == expected
        done(store_url, expected)
    assert claimed(store_url) is None


def test_use_of_another_device_does_not_count_against_this_slot(store_url):
    past(store_url, "alice", "cuda:0", 5, 0.1)  # heavy use of the GPU
    past(store_url, "bob", "cpu", 0.5, 0.25)  # a little of the CPU
    alice = queue(store_url, "alice", "cpu")
    bob = queue(store_url, "bob", "cpu")
    assert claimed(store_url) == alice  # on the CPU slot alice used nothing, bob 15 min
    done(store_url, alice)
    assert claimed(store_url) == bob


def test_without_a_window_it_is_fifo(store_url):
    past(store_url, "alice", "cpu", 3, 1)
    alice = queue(store_url, "alice")
    bob = queue(store_url, "bob")
    for window_s in (None, 0):
        assert jobs.claim_next(store_url, window_s=window_s).id == alice
        with session_scope(store_url) as s:  # back in the queue, for the next variant
            s.execute(update(JobRow).where(JobRow.id == alice).values(status="queued", started_at=None))
    assert claimed(store_url) == bob  # with the window, bob (no use) first


def test_a_busy_slot_is_skipped_and_the_other_device_is_claimed(store_url):
    running = past(store_url, "alice", "cpu", 0.5)  # alice holds the CPU slot
    bob_cpu = queue(store_url, "bob", "cpu")
    carol_gpu = queue(store_url, "carol", "cuda:0")
    assert claimed(store_url, ("cpu",)) is None
    assert claimed(store_url) == carol_gpu  # bob used less, but his slot is taken
    assert claimed(store_url) is None
    done(store_url, running)
    assert claimed(store_url) == bob_cpu


def test_jobs_without_an_owner_count_as_one_owner(store_url):
    past(store_url, None, "cpu", 2, 1)
    legacy = queue(store_url, None)
    alice = queue(store_url, "alice")
    assert jobs.slot_usage(store_url, WINDOW)[(None, "cpu")] == pytest.approx(H, abs=2)
    assert claimed(store_url) == alice
    done(store_url, alice)
    assert claimed(store_url) == legacy


def test_repeated_cycles_interleave_the_owners(store_url):
    """Three owners queue three CPU jobs each (alice's first); each claimed job then runs its owner's typical
    duration (alice 30 min, bob 20, carol 10) on a clock that ends before now, all within the window."""
    minutes = {"alice": 30, "bob": 20, "carol": 10}
    ids = {owner: [queue(store_url, owner) for _ in range(3)] for owner in minutes}
    owner_of = {job_id: owner for owner, job_ids in ids.items() for job_id in job_ids}
    clock = utcnow() - timedelta(hours=5)
    order, used = [], dict.fromkeys(minutes, 0)
    while (job_id := claimed(store_url)) is not None:
        owner = owner_of[job_id]
        waiting = {o for o in minutes if o != owner and any(j not in order for j in ids[o])}
        # nobody still waiting had used the slot less than the owner who got it
        assert all(used[o] >= used[owner] for o in waiting), (order, owner_of[job_id])
        order.append(job_id)
        finish = clock + timedelta(minutes=minutes[owner])
        set_times(store_url, job_id, clock, finish)
        clock, used[owner] = finish, used[owner] + minutes[owner]
    a, b, c = ids["alice"], ids["bob"], ids["carol"]
    # 0/0/0 -> alice (oldest); 30/0/0 -> bob; 30/20/0 -> carol; 30/20/10 -> carol; 30/20/20 -> bob (older
    # than carol's); 30/40/20 -> carol; 30/40/30 -> alice; 60/40 -> bob; then alice's last
    assert order == [a[0], b[0], c[0], c[1], b[1], c[2], a[1], b[2], a[2]]


def test_concurrent_claims_never_share_a_slot(store_url):
    """Dispatchers in several threads (as several processes would) claim at once: one job per slot."""
    for owner in ("alice", "bob", "carol", "dave"):
        for _ in range(3):
            queue(store_url, owner)
    barrier = threading.Barrier(6)
    got, errors = [], []

    def claim():
        try:
            barrier.wait(10)
            if (job_id := claimed(store_url)) is not None:
                got.append(job_id)
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    for _round in range(3):
        threads = [threading.Thread(target=claim) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors and len(got) == 1, (errors, got)
        done(store_url, got.pop())


@pytest.fixture
def slow_claims(store_url):
    """Each claim holds its transaction a while after its UPDATE took a row: concurrent claims overlap."""
    engine = get_engine(store_url)

    def dawdle(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE JOBS") and "starting" in str(parameters) \
                and cursor.rowcount > 0:
            time.sleep(0.5)

    event.listen(engine, "after_cursor_execute", dawdle)
    yield
    event.remove(engine, "after_cursor_execute", dawdle)


def test_two_dispatchers_choosing_different_jobs_never_share_a_slot(store_url, slow_claims):
    """One dispatcher picks alice's job (FIFO), the other bob's (fair share: alice used the slot lately), at
    the same moment: the second must see the first's claim, not two jobs in one slot. On PostgreSQL's READ
    COMMITTED the conditional UPDATE alone would let both through; claims are serialized there."""
    past(store_url, "alice", "cpu", 2, 1)
    alice = queue(store_url, "alice")
    bob = queue(store_url, "bob")
    barrier = threading.Barrier(2)
    got, errors = {}, []

    def claim(window_s):
        try:
            barrier.wait(10)
            got[window_s] = claimed(store_url, window_s=window_s)
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(w,)) for w in (None, WINDOW)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(got.values(), key=str) in ([alice, None], [bob, None]), got
    assert [j.id for j in jobs.active(store_url)] == [j for j in got.values() if j is not None]
