"""The job runner: submit, status, list, cancel, logs; local backend = one spawned worker process per job.

Workers are new Python processes (`python -m core.jobs ID`, running `work`), never threads of the Streamlit script
and never forks, each in its own process group so cancel can kill it with its children. One job runs per
device slot at a time; the rest wait queued. `reap()` (called by the pages' polls, by every dispatch and at
app start-up) fails the jobs whose worker is dead and gives their slots to the next queued jobs. A worker on this
host is checked directly (procs: PID, start time and token), so its death is seen at the next poll and a worker
that is alive is never failed for a late beat (a locked store delays beats); any other worker is dead once its
beat is older than HEARTBEAT_WINDOW_S, which exceeds the store's retry budget (a beat that waited out a lock as
long as the store tolerates still lands inside the window).
"""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, UTC

from core.config import JOB_BACKENDS, REPO_ROOT, get_settings
from core.errors import InvalidInput, LabError
from core.jobs import handlers, procs, ray_backend, worker
from core.jobs.files import jobs_dir, log_path, remove_partial, work_dir
from core.jobs.worker import HEARTBEAT_S
from core.store import ensure_store
from db import jobs as job_rows
from db.jobs import JobInfo
from db.session import retry_budget_s

__all__ = ["HEARTBEAT_S", "jobs_dir", "log_path", "remove_partial", "work_dir"]  # also here, for callers of the runner


def heartbeat_window_s(configured: float | None = None) -> float:
    """IMGLAB_HEARTBEAT_WINDOW_S (default 15 s, Settings.heartbeat_window_s), raised to the store's retry budget
    plus two beats and a second when set below it: a window shorter than a tolerated lock would fail healthy jobs."""
    if configured is None:
        configured = get_settings().heartbeat_window_s
    return max(float(configured), retry_budget_s() + 2 * HEARTBEAT_S + 1.0)


HEARTBEAT_WINDOW_S = heartbeat_window_s()  # read once at import, as before (tests pin it with monkeypatch.setattr)
STARTING_GRACE_S = 120.0  # importing torch in a fresh worker can take a while on a loaded machine
_CHILDREN: list[subprocess.Popen] = []  # workers this process started; polled so exited ones are reaped


def backend() -> str:
    """IMGLAB_JOB_BACKEND: "local" or "ray"; anything else refuses the job with a clear message."""
    name = get_settings().job_backend
    if name not in JOB_BACKENDS:
        raise InvalidInput(f"IMGLAB_JOB_BACKEND must be local or ray, got {name!r}.")
    return name


def check_job_room(owner: str | None, count: int = 1) -> None:
    """Refuse `count` more jobs when the owner would then have more than IMGLAB_USER_JOBS queued or running."""
    limit = get_settings().user_jobs
    if owner is None or limit is None:
        return
    held = job_rows.open_count(ensure_store(), owner)
    if held + count > limit:
        raise InvalidInput(f"You have {held} job{'s' if held != 1 else ''} queued or running and one person may "
                           f"have at most {limit} at once; wait for one to finish or cancel one"
                           + (f" (this launch needs room for {count})." if count > 1 else "."))


def submit(kind: str, params: dict, *, title: str, device: str = "cpu", owner: str | None = None) -> int:
    """Queue a job for `owner` (within their job quota) and start it if its slot is free."""
    module = handlers.module_of(kind)  # refuses a kind nobody registered
    check_job_room(owner)
    chosen = backend()
    if chosen == "ray":
        ray_backend.check_auth()  # refused before anything is queued
    url = ensure_store()
    job_id = job_rows.create(url, kind, title, params, device, backend=chosen, owner=owner, handler=module)
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
        ray_backend.cancel(job.id)
    else:
        procs.stop(job.pid, job.worker_token, job.worker_started)  # only while that PID is still its worker
    remove_partial(job.id)
    dispatch()
    return ok


def _death(job: JobInfo) -> tuple[str, datetime | None] | None:
    """Why the job's worker counts as dead, with the beat the verdict rests on (None: the process itself was
    checked); None when it may be alive."""
    if job.backend == "local" and job.pid:
        found = procs.state(job.pid, job.worker_token, job.worker_started)
        if found == procs.OURS:
            return None  # alive: a late beat means a locked store, not a dead worker
        if found == procs.GONE:
            return "the worker stopped sending heartbeats: its process is gone (it died or was killed)", None
    limit = HEARTBEAT_WINDOW_S if job.status == "running" else STARTING_GRACE_S
    if job_rows.beat_age_s(job) <= limit:
        return None
    what = "stopped sending heartbeats" if job.status == "running" else "never started"
    return f"the worker {what} (died, killed or the host restarted)", job.heartbeat_at or datetime.now(UTC)


def _reap() -> list[int]:
    """Mark active jobs whose worker is dead as failed (stopping what is left of them, if it is still theirs)."""
    url = ensure_store()
    _CHILDREN[:] = [p for p in _CHILDREN if p.poll() is None]  # no zombies in a long-running app
    failed = []
    for job in job_rows.active(url):
        verdict = _death(job)
        if verdict is None:
            continue
        # with a beat-based verdict, a beat that lands meanwhile (the store was locked) keeps the job
        beat_before = verdict[1] + timedelta(microseconds=1) if verdict[1] is not None else None
        if job_rows.finish(url, job.id, "failed", verdict[0], beat_before=beat_before):
            failed.append(job.id)
            if job.backend == "local":
                procs.stop(job.pid, job.worker_token, job.worker_started, grace_s=0.5)
            remove_partial(job.id)
    return failed


def reap() -> list[int]:
    """Fail the jobs whose worker is dead, then start queued jobs on the freed (or any free) slots: the cleanup
    itself dispatches, so the queue never waits for the next submit. Returns the failed job ids."""
    failed = _reap()
    _start_queued()
    return failed


def _spawn(job: JobInfo) -> None:
    url = ensure_store()
    token = procs.new_token()
    job_rows.set_token(url, job.id, token)  # before the worker exists: its first write must present it
    env = dict(os.environ)
    env["DATABASE_URL"] = get_settings().database_url
    env["IMGLAB_DATA_DIR"] = str(get_settings().data_dir)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env[procs.TOKEN_ENV] = token  # inherited by the worker's own children
    with open(log_path(job.id), "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "core.jobs", str(job.id), token], cwd=REPO_ROOT,
                                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    _CHILDREN.append(proc)
    started = procs.start_time(proc.pid)  # None: it is already dead; a time no process has makes that plain
    job_rows.set_pid(url, job.id, proc.pid, started if started is not None else -1.0)


def work(job_id: int, token: str | None = None) -> int:
    """A worker's whole life (a local process, or a Ray task): run the job, then give its device slot to the
    next queued job."""
    return worker.main(job_id, token, then=dispatch)


def dispatch() -> list[int]:
    """Fail dead workers' jobs, then start workers for queued jobs whose device slot is free. Safe to call from
    any process, any time."""
    _reap()
    return _start_queued()


def _start_queued() -> list[int]:
    url = ensure_store()
    started = []
    window_s = get_settings().fair_window_s  # the slot goes to whoever used it least lately
    while (job := job_rows.claim_next(url, window_s=window_s)) is not None:
        try:
            if job.backend == "ray":
                ray_backend.submit(job, work)
            else:
                _spawn(job)
        except (OSError, LabError) as exc:
            job_rows.finish(url, job.id, "failed", f"could not start a worker: {exc}")
            continue
        started.append(job.id)
    return started


def recover() -> dict[str, list[int]]:
    """At app start-up: jobs left active by a previous run are failed once their worker is known dead (never
    signalling a PID that another process now holds); queued ones start."""
    return {"failed": _reap(), "started": _start_queued()}
