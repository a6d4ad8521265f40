"""Faults of the job queue and the store (issue 13, item 4; DESIGN items 19, 21, 32, 33, 34): a dead worker's slot
goes to the next job at once, a PID now held by another process is never signalled, a locked store neither
kills a healthy job nor the heartbeat thread and shows its own message, the CLI fails when every model failed,
and a hostile ?run= is refused on the page."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import shown
from tests.test_jobs import alive, leaving_no_workers, wait_for

APP = str(Path(__file__).resolve().parent.parent / "app.py")
BUSY = "The results store is busy; try again in a moment."


@pytest.fixture
def runner(settings_env):
    """On SQLite: the lock cases below hold SQLite's own write lock."""
    with leaving_no_workers() as r:
        yield r


@pytest.fixture
def short_locks(settings_env, tmp_path):
    """A store whose retry budget is a fraction of a second (busy timeout 100 ms, first pause 10 ms)."""
    from core.store import ensure_store

    settings_env(IMGLAB_BUSY_TIMEOUT_MS=100, IMGLAB_STORE_RETRY_DELAY_S=0.01)
    return ensure_store()


@contextmanager
def exclusive_lock(url: str):
    """Another writer holding SQLite's write lock (readers still read: WAL)."""
    con = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
    con.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        con.execute("COMMIT")
        con.close()


@pytest.fixture
def bystander():
    """A harmless process leading its own process group (as a worker does): what a recycled PID may belong to."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def signals(monkeypatch):
    """Every signal sent from this process, recorded (and still sent); signal 0 (a liveness probe) is not one."""
    sent = []
    real = {"kill": os.kill, "killpg": os.killpg}

    def spy(name):
        def send(pid, sig):
            if sig:
                sent.append((name, pid, sig))
            return real[name](pid, sig)
        return send

    monkeypatch.setattr(os, "kill", spy("kill"))
    monkeypatch.setattr(os, "killpg", spy("killpg"))
    return sent


def running_row(url: str, pid: int, token: str | None = None, started: float | None = None, title: str = "stale") -> int:
    """A job row as a worker leaves it: claimed, then marked running by process `pid`."""
    from db import jobs as rows

    job_id = rows.create(url, "sleep", title, {"seconds": 1}, "cpu")
    assert rows.claim_next(url).id == job_id
    if token is not None:
        assert rows.set_token(url, job_id, token)
    assert rows.mark_running(url, job_id, pid, token, started)
    return job_id


# -- 1. a dead worker's slot goes to the next queued job -----------------------------------------------------
def test_a_queued_job_starts_right_after_the_running_worker_is_killed(runner):
    from core import services

    first = runner.submit("sleep", {"seconds": 120}, title="victim")
    second = runner.submit("sleep", {"seconds": 0.2}, title="next")
    victim = wait_for(lambda: (j := runner.status(first)).status == "running" and j)
    assert runner.status(second).status == "queued"
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    # the pages' poll (list_jobs reaps) is all it takes: no submit, no restart, no heartbeat window to wait out
    wait_for(lambda: [services.list_jobs()] and runner.status(second).status in ("starting", "running", "done"),
             timeout=10, interval=0.2)
    assert time.monotonic() - killed_at < 5.0 < runner.HEARTBEAT_WINDOW_S
    dead = runner.status(first)
    assert dead.status == "failed" and "process is gone" in dead.message
    assert wait_for(lambda: (j := runner.status(second)).status in ("done", "failed") and j).status == "done"


def test_a_heartbeat_reap_dispatches_the_queue_itself(runner, monkeypatch):
    """A worker this host cannot check (no identity: another host, an older version) is failed by its beat age;
    the same reap starts the job that waited for its slot."""
    from core.store import ensure_store
    from db import jobs as rows

    url = ensure_store()
    orphan = running_row(url, 2**22 + 54321)
    waiting = rows.create(url, "sleep", "waiting", {"seconds": 0.1}, "cpu")
    monkeypatch.setattr(runner, "HEARTBEAT_WINDOW_S", 0.0)
    time.sleep(0.05)
    assert runner.reap() == [orphan]
    assert runner.status(waiting).status in ("starting", "running", "done")  # started by that reap
    monkeypatch.setattr(runner, "HEARTBEAT_WINDOW_S", 60.0)
    assert wait_for(lambda: (j := runner.status(waiting)).status in ("done", "failed") and j).status == "done"


# -- 2. a stale row's PID held by another process is never signalled -----------------------------------------
@pytest.mark.parametrize("identity", ["same start time, no token", "token, other start time", "none recorded"])
def test_recovery_never_signals_a_process_that_holds_a_stale_rows_pid(runner, bystander, signals, identity,
                                                                     monkeypatch):
    from core.jobs import procs
    from core.store import ensure_store

    url = ensure_store()
    token = procs.new_token()
    real_start = procs.start_time(bystander.pid)
    if identity == "same start time, no token":  # after a reboot: same PID and start tick, but not the worker;
        job_id = running_row(url, bystander.pid, token, real_start)  # its beat (from before) tells
        monkeypatch.setattr(runner, "HEARTBEAT_WINDOW_S", 0.0)
        time.sleep(0.05)
    elif identity == "token, other start time":  # a process carrying the token, but not the one recorded
        impostor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", token],
                                    start_new_session=True)
        bystander.kill(), bystander.wait()
        bystander = impostor
        wait_for(lambda: procs.start_time(impostor.pid) is not None, timeout=5, interval=0.05)
        job_id = running_row(url, impostor.pid, token, procs.start_time(impostor.pid) - 100)
    else:  # a row from before identities were recorded: only its beat age can tell
        job_id = running_row(url, bystander.pid)
        monkeypatch.setattr(runner, "HEARTBEAT_WINDOW_S", 0.0)
        time.sleep(0.05)
    try:
        assert procs.state(bystander.pid, token, real_start) != procs.OURS
        outcome = runner.recover()
        assert outcome["failed"] == [job_id]
        assert runner.status(job_id).status == "failed"
        time.sleep(0.3)
        assert alive(bystander.pid) and bystander.poll() is None
        assert [s for s in signals if s[1] == bystander.pid] == []
    finally:
        if bystander.poll() is None:
            bystander.kill(), bystander.wait()


def test_cancel_never_signals_a_process_that_holds_the_rows_pid(runner, bystander, signals):
    from core.jobs import procs
    from core.store import ensure_store

    url = ensure_store()
    job_id = running_row(url, bystander.pid, procs.new_token(), procs.start_time(bystander.pid))
    assert runner.cancel(job_id) and runner.status(job_id).status == "cancelled"
    time.sleep(0.3)
    assert alive(bystander.pid) and signals == []


def test_a_live_worker_is_recognised_and_stopped_with_its_group(runner, signals, monkeypatch):
    """The positive case: the process carrying the row's token, started when recorded, is ours. A late beat
    never fails it (the store may have been locked); its death is seen at the next reap; stop() ends it."""
    from core.jobs import procs
    from core.store import ensure_store

    url = ensure_store()
    token = procs.new_token()
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", token], start_new_session=True)
    try:
        wait_for(lambda: procs.start_time(worker.pid) is not None, timeout=5, interval=0.05)
        started = procs.start_time(worker.pid)
        job_id = running_row(url, worker.pid, token, started)
        assert procs.state(worker.pid, token, started) == procs.OURS
        monkeypatch.setattr(runner, "HEARTBEAT_WINDOW_S", 0.0)  # its beat is "stale"...
        time.sleep(0.05)
        assert runner.reap() == [] and runner.status(job_id).status == "running"  # ...but it is alive
        assert procs.stop(worker.pid, token, started, grace_s=2.0)
        assert worker.wait(5) == -signal.SIGTERM and ("killpg", worker.pid, signal.SIGTERM) in signals
        assert procs.state(worker.pid, token, started) == procs.GONE
        assert runner.reap() == [job_id]
        assert "process is gone" in runner.status(job_id).message
    finally:
        if worker.poll() is None:
            worker.kill(), worker.wait()


def test_a_worker_in_the_middle_of_its_exec_is_neither_failed_nor_signalled(runner, signals, monkeypatch):
    """While the spawned worker is in the middle of its exec, /proc shows the right PID and start time but not
    yet the token on its command line or in its environment (with vfork the dispatcher resumes before the kernel
    sets them). A poll at that instant (the jobs panel polls every 2 s) once failed the job as 'process is gone';
    the worker then found its job failed. Such a process is alive, and never signalled."""
    from core.jobs import procs
    from core.store import ensure_store

    url = ensure_store()
    token = procs.new_token()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        wait_for(lambda: procs.start_time(child.pid) is not None, timeout=5, interval=0.05)
        started = procs.start_time(child.pid)
        job_id = running_row(url, child.pid, token, started)  # the token is nowhere in that process yet
        assert procs.state(child.pid, token, started) == procs.UNKNOWN
        assert runner.reap() == [] and runner.status(job_id).status == "running"
        assert not procs.stop(child.pid, token, started, grace_s=0.2) and signals == []
        assert procs.state(child.pid, token, started + 1) == procs.GONE  # another start time: another process
    finally:
        child.kill(), child.wait()


# -- 3. a locked store --------------------------------------------------------------------------------------
def test_the_heartbeat_window_exceeds_the_stores_retry_budget(settings_env):
    from core.jobs import runner
    from db.session import RETRY_ATTEMPTS, retry_budget_s

    assert retry_budget_s() == pytest.approx(RETRY_ATTEMPTS * 10.0 + 0.2 * 15)  # 5 x busy_timeout 10 s + pauses
    assert runner.HEARTBEAT_WINDOW_S > retry_budget_s() + runner.HEARTBEAT_S
    assert runner.heartbeat_window_s(15.0) == pytest.approx(53.0 + 2 * runner.HEARTBEAT_S + 1.0)  # raised
    assert runner.heartbeat_window_s(300.0) == 300.0  # a longer one is kept
    settings_env(IMGLAB_BUSY_TIMEOUT_MS=200, IMGLAB_STORE_RETRY_DELAY_S=0.05)
    assert retry_budget_s() == pytest.approx(5 * 0.2 + 0.05 * 15)
    assert runner.heartbeat_window_s(0.0) == pytest.approx(1.75 + 2 * runner.HEARTBEAT_S + 1.0)


def test_a_reaper_that_waited_on_a_lock_keeps_a_job_whose_beat_got_in_first(db_url):
    from db import jobs as rows

    job_id = running_row(db_url, 2**22 + 778)
    seen = rows.get(db_url, job_id).heartbeat_at  # the reaper's verdict rests on this beat...
    time.sleep(0.01)
    assert rows.heartbeat(db_url, job_id)  # ...but the worker's next beat lands before its UPDATE
    assert not rows.finish(db_url, job_id, "failed", "stale", beat_before=seen + timedelta(microseconds=1))
    assert rows.get(db_url, job_id).status == "running"
    assert rows.finish(db_url, job_id, "failed", "stale", beat_before=rows.get(db_url, job_id).heartbeat_at
                       + timedelta(microseconds=1))


def test_the_heartbeat_thread_outlives_a_lock_past_the_retry_budget(short_locks):
    from core.jobs.worker import beat_until
    from db import jobs as rows
    from db.session import retry_budget_s

    url = short_locks
    job_id = running_row(url, 2**22 + 777)
    lines: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(target=beat_until, args=(stop, url, job_id, 0.1, lines.append), daemon=True)
    thread.start()
    try:
        with exclusive_lock(url):
            time.sleep(retry_budget_s() * 3)  # every beat in here gives up after its whole retry budget
            assert thread.is_alive()
            assert any("heartbeat not written" in line and "StoreBusy" in line for line in lines)
        released = rows.get(url, job_id).heartbeat_at
        wait_for(lambda: rows.get(url, job_id).heartbeat_at > released, timeout=3, interval=0.05)
        assert thread.is_alive() and any("heartbeat written again" in line for line in lines)
        assert rows.finish(url, job_id, "cancelled", "test over")
        thread.join(3)
        assert not thread.is_alive()  # it ends when the row stops running, not before
    finally:
        stop.set()


def test_a_lock_past_the_retry_budget_does_not_fail_a_healthy_job(runner, settings_env, monkeypatch):
    """Retry budget 1.75 s, window 6.75 s; the store is locked 3.5 s while the job runs and the pages poll. The
    reaper is made unable to check the worker's process (as for a worker on another host), so only the beat
    age decides: the window must outlast the lock."""
    from core import services
    from core.jobs import procs
    from core.store import ensure_store
    from db.session import retry_budget_s

    settings_env(IMGLAB_BUSY_TIMEOUT_MS=200, IMGLAB_STORE_RETRY_DELAY_S=0.05)
    url = ensure_store()
    monkeypatch.setattr(runner, "HEARTBEAT_WINDOW_S", runner.heartbeat_window_s(0.0))
    monkeypatch.setattr(procs, "state", lambda *a: procs.UNKNOWN)  # in this process only: the reaper's view
    lock_s = 3.5
    assert retry_budget_s() < lock_s < runner.HEARTBEAT_WINDOW_S - runner.HEARTBEAT_S
    job_id = runner.submit("sleep", {"seconds": 6}, title="healthy")
    wait_for(lambda: (j := runner.status(job_id)).status == "running" and j.progress > 0)
    with exclusive_lock(url):
        until = time.monotonic() + lock_s
        while time.monotonic() < until:
            assert services.list_jobs()[0].status == "running"  # the page's poll reaps: nothing to fail
            time.sleep(0.25)
    job = wait_for(lambda: (j := runner.status(job_id)).status in ("done", "failed") and j, timeout=30)
    assert job.status == "done", job.message
    assert "the results store is busy" in runner.logs(job_id)  # the worker did meet the lock


def _busy_page():
    """A page whose calls into core meet a busy store: a real lock (held by the test), and a pool timeout."""
    import streamlit as st
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from core.store import ensure_store
    from db import jobs as rows
    from ui.state import guarded

    url = ensure_store()
    guarded(rows.create, url, "sleep", "while locked", {}, "cpu")

    def pool_exhausted():
        raise PoolTimeout("QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00")

    guarded(pool_exhausted)

    def broken():
        raise RuntimeError("a real bug")

    guarded(broken)
    st.write("page still up")


def test_a_busy_store_shows_its_own_message(short_locks):
    from streamlit.testing.v1 import AppTest

    with exclusive_lock(short_locks):
        at = AppTest.from_function(_busy_page, default_timeout=30).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors[:2] == [BUSY, BUSY]
    assert errors[2].startswith("Something went wrong on the server")  # other faults keep their message
    assert any("page still up" in m.value for m in at.markdown)


def test_a_busy_store_on_the_results_page(short_locks, monkeypatch):
    from sqlalchemy.exc import OperationalError
    from streamlit.testing.v1 import AppTest

    from core.services import results

    def locked(*args, **kwargs):
        raise OperationalError("SELECT runs.id FROM runs", {}, sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(results, "runs_view", locked)
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("pages/results.py").run()
    assert not at.exception
    assert [e.value for e in at.error] == [BUSY]


# -- 4. the CLI fails when every model failed ---------------------------------------------------------------
def test_bench_exits_1_when_every_model_failed(settings_env, no_reference_weights, capsys):
    from core.__main__ import main

    code = main(["bench", "--model", "dncnn", "--dataset", "photos-denoise", "--set", "max_side=32", "--limit", "1",
                 "--quiet", "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "error: every model failed (1 of 1); no run was stored" in err
    assert '"run_id": null' in out and "weights" in out.lower()  # the outcome (and why) is still printed


def test_bench_exits_0_when_one_model_succeeded(settings_env, no_reference_weights, capsys):
    from core.__main__ import main

    code = main(["bench", "--model", "dncnn", "--model", "gaussian_denoise", "--dataset", "photos-denoise", "--set",
                 "max_side=32", "--limit", "1", "--quiet", "--json"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "warning: 1 of 2 models failed: dncnn" in err and "every model failed" not in err


# -- 5. a hostile ?run= on the Results page ----------------------------------------------------------------
def test_results_run_param_out_of_range_is_refused_on_the_page(db_url):
    from streamlit.testing.v1 import AppTest

    from db import repository
    from tests.test_db import make_record

    run_id = repository.record_run(db_url, make_record())
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("pages/results.py")
    for hostile in ("1" * 30, "-3", "0", "9223372036854775808", "1" * 5000):
        at.query_params["run"] = hostile
        at.run()
        assert not at.exception, hostile
        errors = [shown(e.value) for e in at.error]
        assert len(errors) == 1 and errors[0].startswith(f"There is no run {hostile[:40]}"), (hostile, errors)
        assert "run ids are whole numbers from 1 to 9223372036854775807" in errors[0]
        assert any(f"Run #{run_id}" in m.value for m in at.markdown)  # the chosen run is still shown


def test_run_ids_are_checked_before_the_store_is_asked(db_url):
    from core.errors import InvalidInput
    from core.services.results import run_detail, run_id_of

    assert run_id_of("12") == 12 and run_id_of(" 7 ") == 7 and run_id_of(3) == 3
    for bad, says in [("1" * 30, "There is no run"), ("-3", "There is no run"), ("0", "There is no run"),
                      (2**63, "There is no run"), ("1_0", "must be a number"), ("\u0661\u0662", "must be a number"),
                      (True, "must be a number"), ("12abc", "must be a number")]:
        with pytest.raises(InvalidInput, match=says):
            run_detail(bad)
    with pytest.raises(InvalidInput, match="There is no run #9223372036854775807"):
        run_detail("9223372036854775807")  # the largest id the store can hold: asked, and absent
