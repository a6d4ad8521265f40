"""Background jobs as the pages see them: list, follow, cancel, read logs; recovery at start-up."""
from __future__ import annotations

import dataclasses
import re
import sys
import tempfile
from pathlib import Path

from core.config import REPO_ROOT, get_settings
from core.jobs import runner
from core.users import User, acting, may_change, require
from db.jobs import JobInfo
from db.session import is_busy

STORE_BUSY = "The results store is busy; try again in a moment."

# an absolute path of two or more parts, not inside a URL ("https://host/a/b") nor a relative link ("/results?run=1")
_ABSOLUTE = re.compile(r"(?<![\w:/.~>-])/(?:[\w.~+-]+/)+([\w.~+-]+)")


def public_text(text: str) -> str:
    """Job messages and logs as every user may see them: the server's folders replaced by their role
    (data folder, app folder, Python), any other absolute path cut to its file name."""
    if not text:
        return text
    roots = [(get_settings().data_dir, "<data folder>"), (REPO_ROOT, "<app>"), (Path(sys.prefix), "<python>"),
             (Path(sys.base_prefix), "<python>"), (Path(tempfile.gettempdir()), "<temp>"), (Path.home(), "<home>")]
    for root, name in sorted(roots, key=lambda r: -len(str(r[0]))):
        if len(str(root)) > 1:
            text = text.replace(str(root), name)
    return _ABSOLUTE.sub(lambda m: ".../" + m.group(1), text)


def scrubbed(value):
    """Every string inside a value (a job's result, a run's provenance) made public."""
    if isinstance(value, str):
        return public_text(value)
    if isinstance(value, dict):
        return {k: scrubbed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrubbed(v) for v in value]
    return value


def public_job(job: JobInfo) -> JobInfo:
    """A job as every user may see it: message and result without the server's paths, no worker token (it names
    the host)."""
    return dataclasses.replace(job, message=public_text(job.message), result=scrubbed(job.result), worker_token=None)


def list_jobs(kind: str | None = None, limit: int = 30) -> list[JobInfo]:
    runner.reap()  # a poll is also when dead workers are noticed
    return [public_job(j) for j in runner.list_jobs(limit, (kind,) if kind else None)]


def job_status(job_id: int) -> JobInfo:
    return public_job(runner.status(job_id))


def cancel_job(job_id: int, user: User | None = None) -> bool:
    """Only the job's owner or an admin."""
    job = runner.status(job_id)
    require(acting(user), job.owner, f"cancel job #{job.id}")
    return runner.cancel(job.id)


def may_manage_job(job: JobInfo, user: User | None = None) -> bool:
    """The owner or an admin: cancels the job and reads its log (a worker's traceback is theirs to read)."""
    return may_change(acting(user), job.owner)


def job_logs(job_id: int, user: User | None = None) -> str:
    job = runner.status(job_id)
    require(acting(user), job.owner, f"read the log of job #{job.id}")
    return public_text(runner.logs(job.id))


def store_busy(exc: BaseException) -> bool:
    """The error is the results store being locked or out of connections (pages poll jobs often, so they meet
    it first): worth saying so, not reporting a server fault."""
    return is_busy(exc)


def recover_jobs() -> dict[str, list[int]]:
    return runner.recover()
