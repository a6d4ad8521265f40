"""Queries of the results store. Inputs are plain dataclasses; outputs are dicts, DataFrames or frozen
dataclasses of plain values (RunDetail), never live ORM objects. Aggregations run in SQL."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import DatasetRow, ImageMetricRow, JobRow, ModelRow, RunArtifactRow, RunMetricRow, RunRow, utcnow
from db.session import session_scope, with_retry



@dataclass(frozen=True)
class ModelRef:
    name: str
    task: str
    source: str
    weights_status: str
    weights_hash: str
    weights_origin: str = ""
    num_params: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetRef:
    name: str
    kind: str
    content_hash: str
    num_items: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricValue:
    name: str
    value: float | None
    convention: str = ""
    higher_is_better: bool | None = None


@dataclass(frozen=True)
class ImageMetric:
    image_key: str
    name: str
    value: float | None
    convention: str = ""


@dataclass
class RunRecord:
    model: ModelRef
    dataset: DatasetRef | None
    task: str
    kind: str
    device: str
    dtype: str
    batch_size: int
    seed: int | None
    params: dict[str, Any]
    code_version: str
    versions: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: list[MetricValue] = field(default_factory=list)
    image_metrics: list[ImageMetric] = field(default_factory=list)
    created_at: datetime | None = None
    finished_at: datetime | None = None
    job_id: int | None = None
    owner: str | None = None  # who ran it
    artifacts: dict[str, bytes] = field(default_factory=dict)  # name -> bytes (db.models.RunArtifactRow)




def _get_or_create(session: Session, cls, unique: dict[str, Any], values: dict[str, Any]):
    row = session.scalars(select(cls).filter_by(**unique)).first()
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = cls(**unique, **values)
            session.add(row)
    except IntegrityError:  # another process inserted it between our select and insert
        row = session.scalars(select(cls).filter_by(**unique)).one()
    return row


def _clean(value: float | None) -> float | None:
    """NaN is not a number we can store meaningfully; +/-inf are kept."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def record_run(url: str, rec: RunRecord) -> int:
    def tx() -> int:
        with session_scope(url) as s:
            m = rec.model
            model = _get_or_create(
                s, ModelRow, {"name": m.name, "weights_hash": m.weights_hash},
                {"task": m.task, "source": m.source, "weights_status": m.weights_status,
                 "weights_origin": m.weights_origin, "num_params": m.num_params, "meta": m.meta},
            )
            dataset = None
            if rec.dataset is not None:
                d = rec.dataset
                dataset = _get_or_create(
                    s, DatasetRow, {"name": d.name, "content_hash": d.content_hash},
                    {"kind": d.kind, "num_items": d.num_items, "meta": d.meta},
                )
            owner = rec.owner  # a job's runs belong to whoever submitted the job
            if owner is None and rec.job_id is not None:
                owner = s.scalar(select(JobRow.owner).where(JobRow.id == rec.job_id))
            run = RunRow(
                model=model, dataset=dataset, task=rec.task, kind=rec.kind, status="done", device=rec.device,
                dtype=rec.dtype, batch_size=rec.batch_size, seed=rec.seed, params=rec.params, outputs=rec.outputs,
                code_version=rec.code_version, versions=rec.versions, job_id=rec.job_id, owner=owner,
                created_at=rec.created_at or utcnow(), finished_at=rec.finished_at or utcnow(),
            )
            s.add(run)
            s.flush()
            s.add_all(RunMetricRow(run_id=run.id, name=v.name, value=_clean(v.value), convention=v.convention,
                                   higher_is_better=v.higher_is_better) for v in rec.metrics)
            s.add_all(ImageMetricRow(run_id=run.id, image_key=v.image_key[:300], name=v.name, value=_clean(v.value),
                                     convention=v.convention) for v in rec.image_metrics)
            s.add_all(RunArtifactRow(run_id=run.id, name=name, data=data) for name, data in rec.artifacts.items())
            return run.id

    return with_retry(tx)


def _run_filters(stmt, task: str | None, models: list[str] | None, kinds: list[str] | None, include_untrained: bool):
    if task:
        stmt = stmt.where(RunRow.task == task)
    if models:
        stmt = stmt.where(ModelRow.name.in_(models))
    if kinds:
        stmt = stmt.where(RunRow.kind.in_(kinds))
    if not include_untrained:
        stmt = stmt.where(ModelRow.weights_status != "random")
    return stmt


RUN_COLUMNS = ["run_id", "created_at", "task", "kind", "model", "weights", "dataset", "device", "dtype",
               "batch_size", "seed", "code_version", "dataset_hash", "dataset_title", "owner"]


def list_runs(url: str, task: str | None = None, models: list[str] | None = None, kinds: list[str] | None = None,
              include_untrained: bool = True, limit: int = 500, run_ids: list[int] | None = None) -> pd.DataFrame:
    """Newest runs first, one row each, with their aggregate metrics as extra columns."""
    stmt = (
        select(RunRow.id, RunRow.created_at, RunRow.task, RunRow.kind, ModelRow.name, ModelRow.weights_status,
               DatasetRow.name, RunRow.device, RunRow.dtype, RunRow.batch_size, RunRow.seed, RunRow.code_version,
               DatasetRow.content_hash, DatasetRow.meta["title"].as_string(), RunRow.owner)
        .join(ModelRow, RunRow.model_id == ModelRow.id)
        .outerjoin(DatasetRow, RunRow.dataset_id == DatasetRow.id)
        .order_by(RunRow.id.desc())
        .limit(limit)
    )
    stmt = _run_filters(stmt, task, models, kinds, include_untrained)
    if run_ids is not None:
        stmt = stmt.where(RunRow.id.in_([int(i) for i in run_ids]))
    with session_scope(url) as s:
        runs = pd.DataFrame([tuple(r) for r in s.execute(stmt)], columns=RUN_COLUMNS)
        if runs.empty:
            return runs
        metrics = pd.DataFrame(
            [tuple(r) for r in s.execute(select(RunMetricRow.run_id, RunMetricRow.name, RunMetricRow.value)
                                         .where(RunMetricRow.run_id.in_(runs["run_id"].tolist())))],
            columns=["run_id", "name", "value"],
        )
    if not metrics.empty:
        wide = metrics.pivot(index="run_id", columns="name", values="value").reset_index()
        runs = runs.merge(wide, on="run_id", how="left")
    return runs


def metric_names(url: str, task: str | None = None) -> list[str]:
    stmt = select(RunMetricRow.name).distinct().join(RunRow, RunMetricRow.run_id == RunRow.id).order_by(RunMetricRow.name)
    if task:
        stmt = stmt.where(RunRow.task == task)
    with session_scope(url) as s:
        return list(s.scalars(stmt))


def model_names(url: str, task: str | None = None) -> list[str]:
    stmt = select(ModelRow.name).distinct().order_by(ModelRow.name)
    if task:
        stmt = stmt.where(ModelRow.task == task)
    with session_scope(url) as s:
        return list(s.scalars(stmt))


@dataclass(frozen=True, eq=False)  # eq=False: DataFrame fields cannot be compared or hashed by value
class RunDetail:
    """One stored run with its model, dataset and values, as run_detail reads it."""
    run_id: int
    task: str
    kind: str  # playground | benchmark | ...
    status: str
    owner: str | None  # who ran it; None for runs from before owners were kept
    job_id: int | None  # the background job that produced it, if any
    model: str  # the model's registry name
    weights_status: str  # pretrained | random | parameter-free
    weights_hash: str  # sha256, or "random-init:seed" / "none"
    weights_origin: str  # where the weights came from (may be a server path: scrub before showing)
    num_params: int
    dataset: str | None  # the dataset's stored name; None when the run had no dataset
    dataset_hash: str | None  # content hash of the dataset
    dataset_title: str | None  # the title stored in the dataset's meta, if any
    device: str
    dtype: str
    batch_size: int
    seed: int | None
    params: dict[str, Any]
    outputs: dict[str, Any]
    code_version: str
    versions: dict[str, Any]  # library versions: torch, torchvision, timm, python...
    created_at: datetime
    finished_at: datetime | None
    metrics: pd.DataFrame  # aggregate values: columns metric, value, convention; by metric name
    image_metrics: pd.DataFrame  # per-image values: columns image, metric, value, convention; in stored order


def run_detail(url: str, run_id: int) -> RunDetail | None:
    with session_scope(url) as s:
        run = s.get(RunRow, run_id)
        if run is None:
            return None
        metrics = pd.DataFrame(
            [tuple(r) for r in s.execute(select(RunMetricRow.name, RunMetricRow.value, RunMetricRow.convention)
                                         .where(RunMetricRow.run_id == run_id).order_by(RunMetricRow.name))],
            columns=["metric", "value", "convention"],
        )
        images = pd.DataFrame(
            [tuple(r) for r in s.execute(select(ImageMetricRow.image_key, ImageMetricRow.name, ImageMetricRow.value,
                                                ImageMetricRow.convention)
                                         .where(ImageMetricRow.run_id == run_id).order_by(ImageMetricRow.id))],
            columns=["image", "metric", "value", "convention"],
        )
        return RunDetail(
            run_id=run.id, task=run.task, kind=run.kind, status=run.status, owner=run.owner,
            job_id=run.job_id,
            model=run.model.name, weights_status=run.model.weights_status,
            weights_hash=run.model.weights_hash, weights_origin=run.model.weights_origin,
            num_params=run.model.num_params,
            dataset=run.dataset.name if run.dataset else None,
            dataset_hash=run.dataset.content_hash if run.dataset else None,
            dataset_title=(run.dataset.meta or {}).get("title") if run.dataset else None,
            device=run.device, dtype=run.dtype, batch_size=run.batch_size, seed=run.seed,
            params=run.params, outputs=run.outputs, code_version=run.code_version,
            versions=run.versions, created_at=run.created_at, finished_at=run.finished_at,
            metrics=metrics, image_metrics=images,
        )


def run_stamp(url: str, run_id: int) -> str | None:
    """When a run was stored (None: no such run); with its id, names it for good (SQLite may reuse a deleted id)."""
    with session_scope(url) as s:
        created = s.scalar(select(RunRow.created_at).where(RunRow.id == int(run_id)))
    return None if created is None else created.isoformat()


def run_artifact(url: str, run_id: int, name: str) -> bytes | None:
    with session_scope(url) as s:
        return s.scalar(select(RunArtifactRow.data).where(RunArtifactRow.run_id == int(run_id), RunArtifactRow.name == name))


def run_owners(url: str, run_ids: list[int]) -> dict[int, tuple[str | None, int | None]]:
    """run id -> (owner, job id) of the runs that exist."""
    stmt = select(RunRow.id, RunRow.owner, RunRow.job_id).where(RunRow.id.in_([int(i) for i in run_ids]))
    with session_scope(url) as s:
        return {r[0]: (r[1], r[2]) for r in s.execute(stmt)}


def delete_runs(url: str, run_ids: list[int]) -> list[int]:
    """Delete runs with their aggregate and per-image values; returns the job ids they came from that no other
    run refers to any more (their files may go too)."""
    ids = [int(i) for i in run_ids]

    def tx() -> list[int]:
        with session_scope(url) as s:
            jobs = {j for j in s.scalars(select(RunRow.job_id).where(RunRow.id.in_(ids))) if j is not None}
            s.execute(delete(ImageMetricRow).where(ImageMetricRow.run_id.in_(ids)))
            s.execute(delete(RunArtifactRow).where(RunArtifactRow.run_id.in_(ids)))
            s.execute(delete(RunMetricRow).where(RunMetricRow.run_id.in_(ids)))
            s.execute(delete(RunRow).where(RunRow.id.in_(ids)).execution_options(synchronize_session=False))
            still = set(s.scalars(select(RunRow.job_id).where(RunRow.job_id.in_(jobs)))) if jobs else set()
            return sorted(jobs - still)
    return with_retry(tx)
