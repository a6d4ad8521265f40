"""Typed ORM of the results store."""
from __future__ import annotations

from datetime import datetime, UTC
from typing import Any

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class ModelRow(Base):
    """A model as run: one row per (name, weights hash), so untrained and trained weights never mix."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", "weights_hash", name="uq_models_name_weights"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    task: Mapped[str] = mapped_column(String(40), index=True)
    source: Mapped[str] = mapped_column(String(40))
    weights_status: Mapped[str] = mapped_column(String(20))  # pretrained | random | parameter-free
    weights_hash: Mapped[str] = mapped_column(String(80))  # sha256, or "random-init:seed" / "none"
    weights_origin: Mapped[str] = mapped_column(Text, default="")
    num_params: Mapped[int] = mapped_column(Integer, default=0)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def trained(self) -> bool:
        return self.weights_status != "random"


class DatasetRow(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("name", "content_hash", name="uq_datasets_name_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(40))  # builtin | upload | synthetic
    content_hash: Mapped[str] = mapped_column(String(80))
    num_items: Mapped[int] = mapped_column(Integer, default=0)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_task_created", "task", "created_at"),
                      Index("ix_runs_task_kind_dataset_model", "task", "kind", "dataset_id", "model_id"),
                      Index("ix_runs_owner", "owner"))

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    task: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(40))  # playground | benchmark | ...
    owner: Mapped[str | None] = mapped_column(String(120))  # who ran it (None: from before owners were kept)
    status: Mapped[str] = mapped_column(String(20), default="done")
    device: Mapped[str] = mapped_column(String(40))
    dtype: Mapped[str] = mapped_column(String(20))
    batch_size: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    outputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    code_version: Mapped[str] = mapped_column(String(80))
    versions: Mapped[dict[str, Any]] = mapped_column(default=dict)  # torch, torchvision, timm, python...
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()

    model: Mapped[ModelRow] = relationship()
    dataset: Mapped[DatasetRow | None] = relationship()


class RunMetricRow(Base):
    """Aggregate value of a run, with the convention it was computed under."""

    __tablename__ = "run_metrics"
    __table_args__ = (
        UniqueConstraint("run_id", "name", name="uq_run_metrics_run_name"),
        Index("ix_run_metrics_name_run", "name", "run_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(80))
    value: Mapped[float | None] = mapped_column(Float)  # +inf kept (PSNR of identical images)
    convention: Mapped[str] = mapped_column(String(200), default="")
    higher_is_better: Mapped[bool | None] = mapped_column(Boolean)


class ImageMetricRow(Base):
    """Per-image value of a run."""

    __tablename__ = "image_metrics"
    __table_args__ = (Index("ix_image_metrics_run_name_value", "run_id", "name", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    image_key: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(80))
    value: Mapped[float | None] = mapped_column(Float)
    convention: Mapped[str] = mapped_column(String(200), default="")


class RunArtifactRow(Base):
    """A run's bulky result, kept beside it as bytes (e.g. a detection run's match table, read by the operating-point
    explorer): in the store, so it works the same on SQLite and PostgreSQL and goes when the run goes."""

    __tablename__ = "run_artifacts"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_run_artifacts_run_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(80))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class JobRow(Base):
    """Background work (benchmarks, training); state, heartbeat and progress live here."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_created", "status", "created_at"), Index("ix_jobs_device_status", "device", "status"),
                      Index("ix_jobs_owner_status", "owner", "status"),
                      Index("ix_jobs_device_finished", "device", "finished_at"))  # the fair share's usage query

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    handler: Mapped[str | None] = mapped_column(String(200))  # module whose import registers the kind's handler
    owner: Mapped[str | None] = mapped_column(String(120))  # who submitted it
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued|running|done|failed|cancelled
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    pid: Mapped[int | None] = mapped_column(Integer)
    # who `pid` is: "host:random" (also on the worker's command line) and the process start time, checked
    # before any signal, since a PID alone may since belong to another process
    worker_token: Mapped[str | None] = mapped_column(String(120))
    worker_started: Mapped[float | None] = mapped_column(Float)
    backend: Mapped[str] = mapped_column(String(20), default="local")
    title: Mapped[str] = mapped_column(String(300), default="")
    device: Mapped[str] = mapped_column(String(40), default="cpu")  # the slot it runs in
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)  # e.g. {"run_ids": [...]}
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class JobMetricRow(Base):
    """One point of a job's curves: (epoch, step, name) -> value, e.g. train_loss or val_accuracy per epoch."""

    __tablename__ = "job_metrics"
    __table_args__ = (Index("ix_job_metrics_job_name", "job_id", "name", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(80))
    value: Mapped[float | None] = mapped_column(Float)
    convention: Mapped[str | None] = mapped_column(String(600))  # how it was measured (None: stored before 0008)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ArenaRoundRow(Base):
    """A round of the arena: a fixed set of images, a pool of models and the task's settings, opened by a teacher.
    Everyone sees the same outputs (arena_pictures) and votes between pairs of them (arena_votes)."""

    __tablename__ = "arena_rounds"
    # AUTOINCREMENT on SQLite: a deleted round's id is never given to a new one, so a link or an open tab that
    # names a deleted round finds nothing rather than a stranger's round
    __table_args__ = (Index("ix_arena_rounds_status_created", "status", "created_at"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(120))
    task: Mapped[str] = mapped_column(String(40))  # restoration | segmentation
    operation: Mapped[str] = mapped_column(String(40))  # denoise | deblur | super-resolution | semantic | instance
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)  # degradation, working size, seed, model titles
    models: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"names": [...], "titles": {...}}
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | closed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()


class ArenaPictureRow(Base):
    """One picture of a round: an image's input (what the models received), its clean reference (restoration), or
    one model's output on it, as PNG bytes with the output's scores and timing."""

    __tablename__ = "arena_pictures"
    __table_args__ = (UniqueConstraint("round_id", "image_index", "role", "model", name="uq_arena_pictures_round_image"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("arena_rounds.id", ondelete="CASCADE"), index=True)
    image_index: Mapped[int] = mapped_column(Integer)
    image_name: Mapped[str] = mapped_column(String(120))
    image_sha: Mapped[str] = mapped_column(String(64))  # of the image as decoded (RGB pixels)
    role: Mapped[str] = mapped_column(String(20))  # input | reference | output
    model: Mapped[str] = mapped_column(String(200), default="")  # "" for input and reference
    png: Mapped[bytes] = mapped_column(LargeBinary)
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)  # psnr, ssim, lpips, latency_ms
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))


class ArenaVoteRow(Base):
    """One person's blind choice between two models' outputs of one image of a round; at most one per person, pair
    (stored with model_a < model_b) and image: the unique constraint keeps it so under any race."""

    __tablename__ = "arena_votes"
    __table_args__ = (UniqueConstraint("round_id", "voter", "image_index", "model_a", "model_b",
                                       name="uq_arena_votes_once"),
                      Index("ix_arena_votes_round_id", "round_id", "id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("arena_rounds.id", ondelete="CASCADE"))
    image_index: Mapped[int] = mapped_column(Integer)
    image_sha: Mapped[str] = mapped_column(String(64))
    model_a: Mapped[str] = mapped_column(String(200))
    model_b: Mapped[str] = mapped_column(String(200))
    winner: Mapped[str] = mapped_column(String(10))  # a | b | tie
    left: Mapped[str] = mapped_column(String(200))  # the model shown on the left (a side bias can be checked)
    voter: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
