"""The job runner with real worker processes: completion, slots, failure, cancel, SIGKILL, restart recovery."""
from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager

import pytest

from core.errors import InvalidInput


def wait_for(predicate, timeout=90.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@contextmanager
def leaving_no_workers():
    """The job runner; afterwards every job still queued or running is cancelled (never leave workers behind)."""
    from core.jobs import runner as r

    yield r
    for job in r.list_jobs():
        if job.active or job.status == "queued":
            r.cancel(job.id)


@pytest.fixture
def runner(store_url):
    """The job runner over a store on each backend (SQLite, PostgreSQL): its workers read DATABASE_URL."""
    with leaving_no_workers() as r:
        yield r


def test_benchmark_job_runs_in_a_worker_and_links_its_runs(runner):
    from core.services import benchmark
    from core.services.results import run_detail

    job_id = benchmark.submit_benchmark(["gaussian_denoise", "median_denoise"],
                                        {"name": "photos-denoise", "limit": 2, "max_side": 64}, {"batch_size": 2})
    job = wait_for(lambda: (j := runner.status(job_id)).status in ("done", "failed") and j)
    assert job.status == "done", runner.logs(job_id)
    assert job.progress == 1.0 and job.pid and job.pid != os.getpid()
    assert len(job.result["run_ids"]) == 2 and job.result["errors"] == {}
    detail = run_detail(job.result["run_ids"][0])
    assert detail.kind == "benchmark" and detail.model == "gaussian_denoise"
    assert detail.dataset == "photos-denoise(limit=2,max_side=64,photos=skimage,seed=0,sigma=25.0)"
    assert set(detail.image_metrics["image"]) == {"astronaut", "camera"}
    psnr = detail.metrics.set_index("metric").loc["psnr", "value"]
    assert 20 < psnr < 40
    assert "finished" in runner.logs(job_id)
    # the app polls (reap); a worker that has exited is reaped then, not left as a zombie of the server
    wait_for(lambda: [runner.reap()] and not os.path.exists(f"/proc/{job.pid}"), timeout=15)


def test_one_job_per_device_slot_and_the_next_starts_when_it_ends(runner):
    first = runner.submit("sleep", {"seconds": 2}, title="first")
    second = runner.submit("sleep", {"seconds": 0.2}, title="second")
    wait_for(lambda: runner.status(first).status == "running")
    assert runner.status(second).status == "queued"
    wait_for(lambda: runner.status(second).status == "done")  # started by the first worker on its way out
    assert runner.status(first).status == "done"
    assert runner.status(second).started_at >= runner.status(first).finished_at


def test_a_failing_job_is_marked_failed_with_its_reason(runner):
    job_id = runner.submit("sleep", {"seconds": 0.1, "fail": True}, title="fails")
    job = wait_for(lambda: (j := runner.status(job_id)).status in ("done", "failed") and j)
    assert job.status == "failed" and "asked to fail" in job.message
    assert "Traceback" in runner.logs(job_id)  # the log keeps the detail; the message stays short


def test_cancel_kills_the_process_group(runner):
    job_id = runner.submit("sleep", {"seconds": 120}, title="long")
    job = wait_for(lambda: (j := runner.status(job_id)).status == "running" and j)
    assert alive(job.pid)
    assert runner.cancel(job_id)
    assert runner.status(job_id).status == "cancelled"
    wait_for(lambda: not alive(job.pid), timeout=10)
    assert runner.cancel(job_id) is False  # already finished


def test_cancel_of_a_queued_job_means_it_never_starts(runner):
    blocker = runner.submit("sleep", {"seconds": 2}, title="blocker")
    queued = runner.submit("sleep", {"seconds": 0.1}, title="queued")
    assert runner.cancel(queued)
    wait_for(lambda: runner.status(blocker).status == "done")
    assert runner.status(queued).status == "cancelled" and runner.status(queued).pid is None


def test_killed_worker_is_marked_failed_within_the_heartbeat_window(runner, monkeypatch):
    monkeypatch.setattr(runner, "HEARTBEAT_WINDOW_S", 4.0)
    job_id = runner.submit("sleep", {"seconds": 120}, title="victim")
    job = wait_for(lambda: (j := runner.status(job_id)).status == "running" and j)
    os.kill(job.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: runner.reap() and runner.status(job_id).status == "failed", timeout=15, interval=0.5)
    assert time.monotonic() - killed_at < 4.0 + runner.HEARTBEAT_S + 1.5
    assert "heartbeat" in runner.status(job_id).message
    follow = runner.submit("sleep", {"seconds": 0.1}, title="after")  # the slot is free again
    wait_for(lambda: runner.status(follow).status == "done")


def test_restart_recovery_fails_orphans_and_starts_queued_jobs(runner, monkeypatch):
    from core.store import ensure_store
    from db import jobs as rows

    url = ensure_store()
    orphan = rows.create(url, "sleep", "orphan", {"seconds": 1}, "cpu")
    assert rows.claim_next(url).id == orphan  # as if a worker had started before the app went down
    rows.mark_running(url, orphan, 2**22 + 12345)  # a pid that does not exist
    waiting = rows.create(url, "sleep", "waiting", {"seconds": 0.1}, "cpu")
    monkeypatch.setattr(runner, "HEARTBEAT_WINDOW_S", 0.0)
    time.sleep(0.05)
    outcome = runner.recover()
    assert outcome["failed"] == [orphan] and outcome["started"] == [waiting]
    monkeypatch.setattr(runner, "HEARTBEAT_WINDOW_S", 15.0)
    wait_for(lambda: runner.status(waiting).status == "done")


def test_unknown_kind_and_job_are_refused(runner):
    with pytest.raises(InvalidInput, match="Unknown job kind"):
        runner.submit("format-disk", {}, title="x")
    with pytest.raises(InvalidInput, match="no job 999"):
        runner.status(999)


def test_a_corrupt_pid_never_kills_init_or_the_app(runner):
    from core.store import ensure_store
    from db import jobs as rows

    url = ensure_store()
    job_id = rows.create(url, "sleep", "corrupt", {}, "cpu")
    rows.claim_next(url)
    rows.mark_running(url, job_id, 1)  # pid 1 is init: killpg(1) would take the whole machine down
    assert runner.cancel(job_id) and runner.status(job_id).status == "cancelled"
    assert alive(1) and alive(os.getpid())
