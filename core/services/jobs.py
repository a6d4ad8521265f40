"""Background jobs as the pages see them: list, follow, cancel, read logs; recovery at start-up."""
from __future__ import annotations

from core.jobs import runner
from db.jobs import JobInfo


def list_jobs(kind: str | None = None, limit: int = 30) -> list[JobInfo]:
    runner.reap()  # a poll is also when dead workers are noticed
    return runner.list_jobs(limit, (kind,) if kind else None)


def job_status(job_id: int) -> JobInfo:
    return runner.status(job_id)


def cancel_job(job_id: int) -> bool:
    return runner.cancel(job_id)


def job_logs(job_id: int) -> str:
    return runner.logs(job_id)


def recover_jobs() -> dict[str, list[int]]:
    return runner.recover()
