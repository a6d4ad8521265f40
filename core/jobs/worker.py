"""Worker process: `python -m core.jobs.worker JOB_ID`. Runs one job's handler with a heartbeat thread,
then records its end and hands the device slot to the next queued job."""
from __future__ import annotations

import os
import sys
import threading
import traceback

from core.errors import LabError


def main(job_id: int) -> int:
    from core.jobs import runner
    from core.jobs.context import Cancelled, JobContext
    from core.jobs.handlers import HANDLERS
    from core.services.store import ensure_store
    from db import jobs as job_rows

    url = ensure_store()
    if not job_rows.mark_running(url, job_id, os.getpid()):
        print(f"job {job_id} is not waiting to start; nothing to do", flush=True)
        return 0
    job = job_rows.get(url, job_id)
    ctx = JobContext(url, job_id, job.device, runner.log_path(job_id), runner.work_dir(job_id))
    stop = threading.Event()

    def beat():
        while not stop.wait(runner.HEARTBEAT_S):
            if not job_rows.heartbeat(url, job_id):
                return

    threading.Thread(target=beat, daemon=True).start()
    ctx.log(f"job {job_id} ({job.kind}) started in process {os.getpid()} on {job.device}")
    try:
        ctx.progress(0.0, "loading PyTorch and the job's code", force=True)
        result = HANDLERS[job.kind](job.params, ctx)
        job_rows.finish(url, job_id, "done", "finished", result)
        ctx.log("finished")
        code = 0
    except Cancelled:
        ctx.log("stopped: the job was cancelled")
        code = 0
    except LabError as exc:  # a clear, user-facing reason
        job_rows.finish(url, job_id, "failed", str(exc))
        ctx.log(f"failed: {exc}")
        code = 1
    except Exception as exc:
        job_rows.finish(url, job_id, "failed", f"{type(exc).__name__}: {exc}")
        ctx.log("failed:\n" + traceback.format_exc())
        code = 1
    finally:
        stop.set()
        runner.remove_partial(job_id)  # a finished job's weights are registered; partial ones go
    runner.dispatch()
    return code


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
