"""The job runner: submit, status, list, cancel, logs; local backend = one spawned worker process per job.

Workers are new Python processes (`python -m core.jobs.worker ID`), never threads of the Streamlit script
and never forks, each in its own process group so cancel can kill it with its children. One job runs per
device slot at a time; the rest wait queued. A worker beats every HEARTBEAT_S seconds; a running job whose
beat is older than HEARTBEAT_WINDOW_S is marked failed by `reap()` (called by the pages' polls, by every
dispatch and at app start-up), which also gives the slot to the next queued job.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.config import REPO_ROOT, get_settings
from core.errors import InvalidInput, LabError
from core.jobs.handlers import HANDLERS
from core.services.store import ensure_store
from db import jobs as job_rows
from db.jobs import JobInfo

HEARTBEAT_S = 2.0
HEARTBEAT_WINDOW_S = float(os.environ.get("IMGLAB_HEARTBEAT_WINDOW_S", 15.0))
STARTING_GRACE_S = 120.0  # importing torch in a fresh worker can take a while on a loaded machine
_CHILDREN: list[subprocess.Popen] = []  # workers this process started; polled so exited ones are reaped


def jobs_dir() -> Path:
    path = get_settings().data_dir / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_path(job_id: int) -> Path:
    return jobs_dir() / f"{int(job_id)}.log"


def work_dir(job_id: int) -> Path:
    return jobs_dir() / str(int(job_id))


def remove_partial(job_id: int) -> None:
    shutil.rmtree(work_dir(job_id), ignore_errors=True)


def backend() -> str:
    name = os.environ.get("IMGLAB_JOB_BACKEND", "local").strip().lower()
    if name not in ("local", "ray"):
        raise InvalidInput(f"IMGLAB_JOB_BACKEND must be local or ray, got {name!r}.")
    return name


def submit(kind: str, params: dict, *, title: str, device: str = "cpu") -> int:
    if kind not in HANDLERS:
        raise InvalidInput(f"Unknown job kind {kind!r}.")
    chosen = backend()
    if chosen == "ray":
        from core.jobs import ray_backend

        ray_backend.check_auth()  # refused before anything is queued
    url = ensure_store()
    job_id = job_rows.create(url, kind, title, params, device, backend=chosen)
    dispatch()
    return job_id


def status(job_id: int) -> JobInfo:
    job = job_rows.get(ensure_store(), int(job_id))
    if job is None:
        raise InvalidInput(f"There is no job {job_id}.")
    return job


def list_jobs(limit: int = 50, kinds: tuple[str, ...] | None = None) -> list[JobInfo]:
    return job_rows.list_jobs(ensure_store(), limit, kinds)


def logs(job_id: int, max_bytes: int = 20_000) -> str:
    path = log_path(int(job_id))
    if not path.is_file():
        return ""
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - max_bytes))
        return fh.read().decode("utf-8", errors="replace")


def _kill_group(pid: int | None, grace_s: float = 3.0) -> None:
    """SIGTERM, then SIGKILL, to the worker's process group (its pid: workers lead their own group)."""
    if not pid or pid <= 1 or pid in (os.getpid(), os.getpgrp()):
        return  # never init, never ourselves: a corrupt row must not take the server down
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def cancel(job_id: int) -> bool:
    """Queued: never starts. Running: its process group is killed. False when it had already finished."""
    url = ensure_store()
    job = status(job_id)
    if job.status == "queued":
        return job_rows.finish(url, job.id, "cancelled", "cancelled before it started", from_states=("queued",))
    if not job.active:
        return False
    ok = job_rows.finish(url, job.id, "cancelled", "cancelled by the user")
    if job.backend == "ray":
        from core.jobs import ray_backend

        ray_backend.cancel(job.id)
    else:
        _kill_group(job.pid)
    remove_partial(job.id)
    dispatch()
    return ok


def reap() -> list[int]:
    """Mark active jobs whose worker stopped beating as failed (killing what is left of them)."""
    url = ensure_store()
    _CHILDREN[:] = [p for p in _CHILDREN if p.poll() is None]  # no zombies in a long-running app
    failed = []
    for job in job_rows.stale(url, HEARTBEAT_WINDOW_S, STARTING_GRACE_S):
        what = "stopped sending heartbeats" if job.status == "running" else "never started"
        if job_rows.finish(url, job.id, "failed", f"the worker {what} (died, killed or the host restarted)"):
            failed.append(job.id)
            if job.backend == "local":
                _kill_group(job.pid, grace_s=0.5)
            remove_partial(job.id)
    return failed


def _spawn(job: JobInfo) -> None:
    env = dict(os.environ)
    env["DATABASE_URL"] = get_settings().database_url
    env["IMGLAB_DATA_DIR"] = str(get_settings().data_dir)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with open(log_path(job.id), "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "core.jobs.worker", str(job.id)], cwd=REPO_ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    _CHILDREN.append(proc)
    job_rows.set_pid(ensure_store(), job.id, proc.pid)


def dispatch() -> list[int]:
    """Start workers for queued jobs whose device slot is free. Safe to call from any process, any time."""
    url = ensure_store()
    reap()
    started = []
    while (job := job_rows.claim_next(url)) is not None:
        try:
            if job.backend == "ray":
                from core.jobs import ray_backend

                ray_backend.submit(job)
            else:
                _spawn(job)
        except (OSError, LabError) as exc:
            job_rows.finish(url, job.id, "failed", f"could not start a worker: {exc}")
            continue
        started.append(job.id)
    return started


def recover() -> dict[str, list[int]]:
    """At app start-up: jobs left active by a previous run are reaped once stale; queued ones start."""
    return {"failed": reap(), "started": dispatch()}
