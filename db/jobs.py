"""Job rows: the state of background work, shared by the app, its workers and the CLI.

Transitions are conditional UPDATEs, so two processes never both start, finish or cancel the same job:
queued -> starting (a dispatcher claimed a free device slot) -> running (the worker's first heartbeat)
-> done | failed | cancelled.
Every call retries a locked store within session.retry_budget_s(), which the runner's heartbeat window exceeds.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, UTC
from typing import Any

import pandas as pd
from sqlalchemy import Float, and_, bindparam, case, cast, exists, extract, func, or_, select, update
from sqlalchemy import delete as delete_rows
from sqlalchemy.orm import aliased

from db.models import JobMetricRow, JobRow, utcnow
from db.session import with_retry as _retry
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
    owner: str | None = None  # who submitted it (None: from before owners were kept)
    handler: str | None = None  # the module that registers the handler of `kind` (None: queued before 0007)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; they were written in UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _info(row: JobRow) -> JobInfo:
    return JobInfo(row.id, row.kind, row.title, row.status, row.device, row.backend, dict(row.params), row.progress,
                   row.message, row.pid, dict(row.result or {}), _aware(row.created_at), _aware(row.started_at),
                   _aware(row.heartbeat_at), _aware(row.finished_at), row.worker_token, row.worker_started, row.owner,
                   row.handler)


def with_retry(tx):
    """The store's bounded retry, with the attempts and pauses retry_budget_s() counts."""
    return _retry(tx, attempts=RETRY_ATTEMPTS, base_delay=retry_delay_s())


def create(url: str, kind: str, title: str, params: dict[str, Any], device: str, backend: str = "local",
           owner: str | None = None, handler: str | None = None) -> int:
    def tx():
        with session_scope(url) as s:
            row = JobRow(kind=kind, title=title[:300], params=params, device=device, backend=backend, status="queued",
                         message="queued", owner=owner, handler=handler)
            s.add(row)
            s.flush()
            return row.id
    return with_retry(tx)


def open_count(url: str, owner: str) -> int:
    """The owner's jobs that are queued or running (what the per-user job quota counts)."""
    stmt = select(func.count()).select_from(JobRow).where(JobRow.owner == owner, JobRow.status.in_(("queued",) + ACTIVE))
    with session_scope(url) as s:
        return int(s.scalar(stmt) or 0)


def delete(url: str, job_id: int) -> bool:
    """A finished job's row and its curves (its runs stay, unlinked)."""
    def tx():
        with session_scope(url) as s:
            s.execute(delete_rows(JobMetricRow).where(JobMetricRow.job_id == job_id))
            return s.execute(delete_rows(JobRow).where(JobRow.id == job_id, JobRow.status.in_(FINISHED))
                             .execution_options(synchronize_session=False)).rowcount > 0
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


CLAIM_CANDIDATES = 500  # heads of (owner, device) queues weighed per claim; more are left to later claims
_CLAIM_LOCK_KEY = 0x696D676C61620001  # PostgreSQL advisory lock that serializes claims ("imglab" + 1)


def _epoch_s(col, dialect: str):
    """A timestamp column as seconds since 1970 (a float), in the store's own SQL."""
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC
        return (func.julianday(col) - 2440587.5) * 86400.0
    return cast(extract("epoch", col), Float)


def _slot_usage(s, window_s: float, devices, now: datetime) -> dict[tuple[str | None, str], float]:
    """{(owner, device): slot-seconds within [now - window_s, now]}: one aggregate query over the jobs that
    started before now and had not finished by the window's start (their run overlaps the window)."""
    if not window_s or window_s <= 0:
        return {}
    since = now - timedelta(seconds=float(window_s))
    dialect = s.get_bind().dialect.name
    w0, w1 = since.timestamp(), now.timestamp()
    lo, hi = bindparam("w0", w0, type_=Float), bindparam("w1", w1, type_=Float)
    start, end = _epoch_s(JobRow.started_at, dialect), _epoch_s(func.coalesce(JobRow.finished_at, now), dialect)
    start = case((start > lo, start), else_=lo)
    end = case((end < hi, end), else_=hi)
    overlap = func.sum(case((end > start, end - start), else_=0.0))
    stmt = (select(JobRow.owner, JobRow.device, overlap)
            .where(JobRow.started_at.is_not(None), JobRow.started_at < now,
                   or_(JobRow.finished_at.is_(None), JobRow.finished_at > since))
            .group_by(JobRow.owner, JobRow.device))
    if devices is not None:
        stmt = stmt.where(JobRow.device.in_(list(devices)))
    # whole seconds: the dialects' date arithmetic leaves float noise (20 min as 1199.9999 s) that would
    # otherwise decide ties, which belong to the oldest job
    return {(owner, device): float(round(used or 0.0)) for owner, device, used in s.execute(stmt)}


def slot_usage(url: str, window_s: float, devices: tuple[str, ...] | None = None,
               now: datetime | None = None) -> dict[tuple[str | None, str], float]:
    """Slot-seconds each (owner, device) used within the last window_s (what claim_next weighs)."""
    with session_scope(url) as s:
        return _slot_usage(s, window_s, devices, now or utcnow())


def claim_next(url: str, devices: tuple[str, ...] | None = None, window_s: float | None = None) -> JobInfo | None:
    """Claim one queued job whose device slot is free (queued -> starting) and return it; None if there is none.

    Fair share: with window_s, the slot goes to the owner who used that same device slot the fewest seconds
    within the last window_s. An owner's use of a slot is the sum, over that owner's jobs on that device, of the
    overlap of [started_at, finished_at or now] with [now - window_s, now]; use of other devices, and use that
    ended before the window, do not count. Ties (owners with no recent use among them) go to the oldest job, so
    one owner's own queue is FIFO. Jobs without an owner (from before owners were kept) count as one owner.
    window_s None or 0: plain FIFO, the oldest queued job with a free slot.

    How: the oldest queued job of each (owner, device) whose slot is free (only an owner's oldest job on a slot
    can be next there), then one aggregate query for the usage of those slots, then the candidates in order
    (usage, id). Atomic: a conditional UPDATE claims a candidate only if it is still queued and no job holds its
    slot; on PostgreSQL a transaction-scoped advisory lock serializes claims as well, since under READ COMMITTED
    two concurrent UPDATEs would each miss the other's uncommitted claim of the same slot.
    """
    other = aliased(JobRow)
    busy = exists().where(and_(other.device == JobRow.device, other.status.in_(ACTIVE)))

    def tx():
        with session_scope(url) as s:
            if s.get_bind().dialect.name == "postgresql":
                s.execute(select(func.pg_advisory_xact_lock(_CLAIM_LOCK_KEY)))
            for _ in range(3):  # again only if every candidate was taken or cancelled meanwhile
                heads = (select(func.min(JobRow.id), JobRow.owner, JobRow.device)
                         .where(JobRow.status == "queued", ~busy).group_by(JobRow.owner, JobRow.device))
                if devices:
                    heads = heads.where(JobRow.device.in_(devices))
                found = s.execute(heads.order_by(func.min(JobRow.id)).limit(CLAIM_CANDIDATES)).all()
                if not found:
                    return None
                usage = _slot_usage(s, window_s, {d for _, _, d in found}, utcnow()) if window_s else {}
                for job_id, _, _ in sorted(found, key=lambda r: (usage.get((r[1], r[2]), 0.0), r[0])):
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


def add_metrics(url: str, job_id: int, epoch: int, step: int, values: dict[str, float | None],
                conventions: dict[str, str] | None = None) -> None:
    conventions = conventions or {}

    def tx():
        with session_scope(url) as s:
            s.add_all(JobMetricRow(job_id=job_id, epoch=epoch, step=step, name=k, value=_finite(v),
                                   convention=conventions.get(k, "")[:600] or None)
                      for k, v in values.items())
    with_retry(tx)


def _finite(v: float | None) -> float | None:
    import math

    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def curves(url: str, job_ids: list[int]) -> pd.DataFrame:
    """job_id, epoch, step, name, value, convention of the given jobs, in step order."""
    stmt = (select(JobMetricRow.job_id, JobMetricRow.epoch, JobMetricRow.step, JobMetricRow.name, JobMetricRow.value,
                   JobMetricRow.convention)
            .where(JobMetricRow.job_id.in_([int(j) for j in job_ids])).order_by(JobMetricRow.job_id, JobMetricRow.step))
    with session_scope(url) as s:
        rows = [tuple(r) for r in s.execute(stmt)]
    return pd.DataFrame(rows, columns=["job_id", "epoch", "step", "name", "value", "convention"])
