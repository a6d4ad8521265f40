"""Job rows: the state of background work, shared by the app, its workers and the CLI.

Transitions are conditional UPDATEs, so two processes never both start, finish or cancel the same job:
queued -> starting (a dispatcher claimed a free device slot) -> running (the worker's first heartbeat)
-> done | failed | cancelled.
Every call retries a locked store within session.retry_budget_s(), which the runner's heartbeat window exceeds.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import aliased

from db.models import JobMetricRow, JobRow, utcnow
from db.repository import with_retry as _retry
from db.session import RETRY_ATTEMPTS, retry_delay_s, session_scope

ACTIVE = ("starting", "running")
FINISHED = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class JobInfo:
    id: int
    kind: str
    title: str
    status: str
    device: str
    backend: str
    params: dict[str, Any]
    progress: float
    message: str
    pid: int | None
    result: dict[str, Any]
    created_at: datetime | None
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    worker_token: str | None = None  # "host:random", on the worker's command line
    worker_started: float | None = None  # the worker process's start time

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; they were written in UTC."""
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def _info(row: JobRow) -> JobInfo:
    return JobInfo(row.id, row.kind, row.title, row.status, row.device, row.backend, dict(row.params), row.progress,
                   row.message, row.pid, dict(row.result or {}), _aware(row.created_at), _aware(row.started_at),
                   _aware(row.heartbeat_at), _aware(row.finished_at), row.worker_token, row.worker_started)


def with_retry(tx):
    """The store's bounded retry, with the attempts and pauses retry_budget_s() counts."""
    return _retry(tx, attempts=RETRY_ATTEMPTS, base_delay=retry_delay_s())


def create(url: str, kind: str, title: str, params: dict[str, Any], device: str, backend: str = "local") -> int:
    def tx():
        with session_scope(url) as s:
            row = JobRow(kind=kind, title=title[:300], params=params, device=device, backend=backend, status="queued",
                         message="queued")
            s.add(row)
            s.flush()
            return row.id
    return with_retry(tx)


def get(url: str, job_id: int) -> JobInfo | None:
    with session_scope(url) as s:
        row = s.get(JobRow, job_id)
        return _info(row) if row is not None else None


def list_jobs(url: str, limit: int = 50, kinds: tuple[str, ...] | None = None) -> list[JobInfo]:
    stmt = select(JobRow).order_by(JobRow.id.desc()).limit(limit)
    if kinds:
        stmt = stmt.where(JobRow.kind.in_(kinds))
    with session_scope(url) as s:
        return [_info(r) for r in s.scalars(stmt)]


def latest_with_param(url: str, kind: str, key: str, value: int) -> JobInfo | None:
    """The newest job of `kind` whose params[key] equals the integer `value` (a JSON lookup done in SQL)."""
    stmt = (select(JobRow).where(JobRow.kind == kind, JobRow.params[key].as_integer() == int(value))
            .order_by(JobRow.id.desc()).limit(1))
    with session_scope(url) as s:
        row = s.scalars(stmt).first()
        return _info(row) if row is not None else None


def claim_next(url: str, devices: tuple[str, ...] | None = None) -> JobInfo | None:
    """Oldest queued job whose device slot is free -> starting. Atomic: one claim per slot."""
    other = aliased(JobRow)
    busy = exists().where(and_(other.device == JobRow.device, other.status.in_(ACTIVE)))

    def tx():
        with session_scope(url) as s:
            stmt = select(JobRow.id).where(JobRow.status == "queued", ~busy).order_by(JobRow.id)
            if devices:
                stmt = stmt.where(JobRow.device.in_(devices))
            for job_id in s.scalars(stmt.limit(5)).all():
                other2 = aliased(JobRow)
                done = s.execute(
                    update(JobRow)
                    .where(JobRow.id == job_id, JobRow.status == "queued",
                           ~exists().where(and_(other2.device == JobRow.device, other2.status.in_(ACTIVE))))
                    .values(status="starting", message="starting", started_at=utcnow(), heartbeat_at=utcnow())
                    .execution_options(synchronize_session=False)
                ).rowcount
                if done:
                    return job_id
            return None
    job_id = with_retry(tx)
    return get(url, job_id) if job_id else None


def set_token(url: str, job_id: int, token: str) -> bool:
    """Before its worker is spawned: the token it will carry (its first write must present it)."""
    return _update(url, job_id, ("starting",), worker_token=token)


def set_pid(url: str, job_id: int, pid: int, started: float | None = None) -> None:
    _update(url, job_id, ("starting", "running"), pid=pid, worker_started=started)


def _update(url: str, job_id: int, from_states: tuple[str, ...], **values) -> bool:
    def tx():
        with session_scope(url) as s:
            return s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status.in_(from_states)).values(**values)
                             .execution_options(synchronize_session=False)).rowcount > 0
    return with_retry(tx)


def mark_running(url: str, job_id: int, pid: int, token: str | None = None, started: float | None = None) -> bool:
    """starting -> running; with a token, only for the worker the dispatcher spawned with it."""
    def tx():
        with session_scope(url) as s:
            stmt = update(JobRow).where(JobRow.id == job_id, JobRow.status == "starting")
            if token is not None:
                stmt = stmt.where(JobRow.worker_token == token)
            return s.execute(stmt.values(status="running", pid=pid, worker_started=started, heartbeat_at=utcnow(),
                                         message="running").execution_options(synchronize_session=False)).rowcount > 0
    return with_retry(tx)


def heartbeat(url: str, job_id: int, progress: float | None = None, message: str | None = None) -> bool:
    """False once the job is no longer running (cancelled or reaped): the worker should stop."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, float(progress)))
    if message is not None:
        values["message"] = message[:2000]
    return _update(url, job_id, ("running",), **values)


def finish(url: str, job_id: int, status: str, message: str, result: dict[str, Any] | None = None,
           from_states: tuple[str, ...] = ACTIVE, beat_before: datetime | None = None) -> bool:
    """End a job unless it already ended; with `beat_before`, only if no heartbeat landed since then (a reaper
    that waited on a lock must not fail a worker whose beat got in first)."""
    if status not in FINISHED:
        raise ValueError(status)
    values: dict[str, Any] = {"status": status, "message": message[:4000], "finished_at": utcnow()}
    if status == "done":
        values["progress"] = 1.0
    if result is not None:
        values["result"] = result

    def tx():
        with session_scope(url) as s:
            stmt = update(JobRow).where(JobRow.id == job_id, JobRow.status.in_(from_states))
            if beat_before is not None:
                stmt = stmt.where((JobRow.heartbeat_at.is_(None)) | (JobRow.heartbeat_at < beat_before))
            return s.execute(stmt.values(**values).execution_options(synchronize_session=False)).rowcount > 0
    return with_retry(tx)


def active(url: str) -> list[JobInfo]:
    """Jobs a worker holds (starting or running)."""
    with session_scope(url) as s:
        return [_info(r) for r in s.scalars(select(JobRow).where(JobRow.status.in_(ACTIVE)).order_by(JobRow.id))]


def beat_age_s(job: JobInfo, now: datetime | None = None) -> float:
    """Seconds since the job's last sign of life (heartbeat, else start, else creation)."""
    beat = job.heartbeat_at or job.started_at or job.created_at
    return float("inf") if beat is None else ((now or utcnow()) - beat).total_seconds()


def add_metrics(url: str, job_id: int, epoch: int, step: int, values: dict[str, float | None]) -> None:
    def tx():
        with session_scope(url) as s:
            s.add_all(JobMetricRow(job_id=job_id, epoch=epoch, step=step, name=k, value=_finite(v))
                      for k, v in values.items())
    with_retry(tx)


def _finite(v: float | None) -> float | None:
    import math

    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def curves(url: str, job_ids: list[int]) -> pd.DataFrame:
    """job_id, epoch, step, name, value of the given jobs, in step order."""
    stmt = (select(JobMetricRow.job_id, JobMetricRow.epoch, JobMetricRow.step, JobMetricRow.name, JobMetricRow.value)
            .where(JobMetricRow.job_id.in_([int(j) for j in job_ids])).order_by(JobMetricRow.job_id, JobMetricRow.step))
    with session_scope(url) as s:
        rows = [tuple(r) for r in s.execute(stmt)]
    return pd.DataFrame(rows, columns=["job_id", "epoch", "step", "name", "value"])
