"""A worker runs one job's handler with a heartbeat thread, then records its end and calls `then` (the runner
hands its dispatch: the device slot goes to the next queued job). The process is `python -m core.jobs JOB_ID
[TOKEN]` (core.jobs.runner.work). TOKEN (given by the local dispatcher, none
under Ray) identifies this process in the job's row, so nothing ever signals a PID by number alone.

A store locked past its retry budget must not end a healthy job: the heartbeat thread logs and keeps beating,
and the job's final state is written again until the store takes it."""
from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable

from core.config import get_settings
from core.errors import LabError
from core.jobs import handlers, procs
from core.jobs.context import Cancelled, JobContext
from core.jobs.files import log_path, remove_partial, work_dir
from core.store import ensure_store
from db import jobs as job_rows
from db.session import is_busy


HEARTBEAT_S = 2.0


def beat_until(stop: threading.Event, url: str, job_id: int, interval: float, log: Callable[[str], None]) -> None:
    """Beat every `interval` s until `stop` is set or the row is no longer running (cancelled or reaped). A failed
    beat (store locked past its retry budget, connection lost) is logged and tried again: the thread outlives it."""
    failures = 0
    while not stop.wait(interval):
        try:
            if not job_rows.heartbeat(url, job_id):
                return
        except Exception as exc:
            failures += 1
            if failures == 1 or failures % 20 == 0:
                log(f"heartbeat not written ({failures}x so far; {type(exc).__name__}: {str(exc)[:200]}); retrying")
            continue
        if failures:
            log(f"heartbeat written again after {failures} failed attempt(s)")
            failures = 0


def persist(call: Callable[[], object], log: Callable[[str], None], patience_s: float | None = None):
    """A write the job's outcome depends on, retried while the store is busy (up to `patience_s`; by default
    IMGLAB_FINISH_PATIENCE_S, 600 s)."""
    if patience_s is None:
        patience_s = get_settings().finish_patience_s
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
            log("the results store is busy; writing the job's state again shortly")
            time.sleep(1.0)


def main(job_id: int, token: str | None = None, then: Callable[[], object] | None = None) -> int:
    url = ensure_store()
    if not job_rows.mark_running(url, job_id, os.getpid(), token, procs.start_time(os.getpid())):
        print(f"job {job_id} is not waiting to start (or was given to another worker); nothing to do", flush=True)
        return 0
    job = job_rows.get(url, job_id)
    assert job is not None  # just marked running, and only finished jobs are ever deleted
    ctx = JobContext(url, job_id, job.device, log_path(job_id), work_dir(job_id), owner=job.owner)
    stop = threading.Event()
    threading.Thread(target=beat_until, args=(stop, url, job_id, HEARTBEAT_S, ctx.log), daemon=True).start()
    ctx.log(f"job {job_id} ({job.kind}) started in process {os.getpid()} on {job.device}")
    try:
        ctx.progress(0.0, "loading PyTorch and the job's code", force=True)
        result = handlers.resolve(job.kind, job.handler)(job.params, ctx)
        persist(ctx.flush_metrics, ctx.log)
        persist(lambda: job_rows.finish(url, job_id, "done", "finished", result), ctx.log)
        ctx.log("finished")
        code = 0
    except Cancelled:
        ctx.log("stopped: the job was cancelled")
        code = 0
    except LabError as exc:  # a clear, user-facing reason
        reason = str(exc)
        persist(lambda: job_rows.finish(url, job_id, "failed", reason), ctx.log)
        ctx.log(f"failed: {exc}")
        code = 1
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        persist(lambda: job_rows.finish(url, job_id, "failed", reason), ctx.log)
        ctx.log("failed:\n" + traceback.format_exc())
        code = 1
    finally:
        stop.set()
        remove_partial(job_id)  # a finished job's weights are registered; partial ones go
    if then is not None:
        try:
            then()
        except Exception as exc:  # the next poll or submit dispatches instead
            ctx.log(f"could not start the next queued job: {type(exc).__name__}: {exc}")
    return code
