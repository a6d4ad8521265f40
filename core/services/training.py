"""Fine-tuning as the pages and the CLI see it: what can be trained on what, submit a job or an optimizer
sweep, and read the curves and results back."""
from __future__ import annotations

import uuid
from typing import Any

import pandas as pd

from core.errors import InvalidInput
from core.jobs import runner
from core.models.registry import list_models
from core.services.store import ensure_store
from core.training.config import OPTIMIZERS, TRAIN_DATASETS, TrainConfig
from db import jobs as job_rows

SWEEP_OPTIMIZERS = ("sgd", "adam", "adagrad")  # the seeds' comparison


def trainable_models(task: str) -> list[str]:
    out = []
    for spec in list_models(task):
        try:
            TrainConfig(base=spec.name, dataset=TRAIN_DATASETS[task][0], pretrained=False).validate()
        except (InvalidInput, KeyError):
            continue
        out.append(spec.name)
    return out


def training_datasets(task: str) -> tuple[str, ...]:
    return TRAIN_DATASETS.get(task, ())


def submit_training(config: dict[str, Any], device: str = "cpu") -> int:
    from core.engine import pick_device

    cfg = TrainConfig.from_dict(config)
    slot = str(pick_device(device))
    title = f"train {cfg.base} on {cfg.dataset} ({cfg.optimizer}, lr {cfg.lr:g}, {cfg.epochs} epochs)"
    return runner.submit("train", {"config": cfg.as_dict(), "device": slot}, title=title, device=slot)


def submit_sweep(config: dict[str, Any], optimizers: tuple[str, ...] = SWEEP_OPTIMIZERS, device: str = "cpu") -> list[int]:
    """One job per optimizer, everything else equal; grouped by a sweep id."""
    if not optimizers or set(optimizers) - set(OPTIMIZERS):
        raise InvalidInput(f"Sweep optimizers must be among {', '.join(OPTIMIZERS)}.")
    sweep = uuid.uuid4().hex[:8]
    for opt in optimizers:  # validate all before queueing any
        TrainConfig.from_dict({**config, "optimizer": opt, "sweep": sweep})
    return [submit_training({**config, "optimizer": opt, "sweep": sweep}, device) for opt in optimizers]


def curves(job_ids: list[int]) -> pd.DataFrame:
    return job_rows.curves(ensure_store(), job_ids)


def sweeps() -> list[str]:
    seen: list[str] = []
    for job in runner.list_jobs(200, ("train",)):
        sweep = job.params.get("config", {}).get("sweep")
        if sweep and sweep not in seen:
            seen.append(sweep)
    return seen


def sweep_table(sweep: str) -> pd.DataFrame:
    """The seeds' optimizer table: optimizer / train / validation / test accuracy (or the task's metric)."""
    rows = []
    for job in runner.list_jobs(200, ("train",)):
        cfg = job.params.get("config", {})
        if cfg.get("sweep") != sweep:
            continue
        r = job.result
        rows.append({"job": job.id, "optimizer": cfg.get("optimizer"), "status": job.status,
                     "train": r.get("train_accuracy"), "validation": r.get("val_accuracy", r.get("best_value")),
                     "test": r.get("test_top1"), "best_epoch": r.get("best_epoch"),
                     "time_to_best_s": r.get("time_to_best_s"), "epoch_time_s": r.get("epoch_time_s"),
                     "model": r.get("model")})
    return pd.DataFrame(rows).sort_values("job") if rows else pd.DataFrame(rows)
