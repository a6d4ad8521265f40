"""Fine-tuning as the pages and the CLI see it: what can be trained on what, submit a job or an optimizer
sweep, and read the curves and results back."""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

import pandas as pd

from core.errors import InvalidInput
from core.experiments.curves import Curve, Point, summary
from core.metrics import registry as metric_registry
from core.jobs import runner
from core.engine import pick_device
from core.models.registry import list_models
from core.services.quotas import require_checkpoint_room
from core.store import ensure_store
from core.tasks import all_tasks, get_task
from core.tasks.train_config import AUGMENTATIONS, OPTIMIZERS, SCHEDULES, TrainConfig, untrainable_reason
from core.tasks.training_sets import TRAINING_SETS
from core.training.run import run_training_job  # noqa: F401 (importing it registers the "train" job handler)
from core.users import User, acting
from core.wording import count
from db import jobs as job_rows

SWEEP_OPTIMIZERS = ("sgd", "adam", "adagrad")  # the optimizer comparison of the reference tables
MAX_SWEEP_REPEATS = 5  # random starts per optimizer: 3 optimizers x 5 is already 15 jobs
SPLITS = ("train", "validation", "test")


def trainable_models(task: str) -> list[str]:
    return [spec.name for spec in list_models(task) if untrainable_reason(spec) is None]


def trainable_tasks() -> list[str]:
    """Tasks with at least one model the Fine-tune page can train, in the pages' order."""
    return [t.name for t in all_tasks() if t.train_datasets and trainable_models(t.name)]


def training_datasets(task: str) -> tuple[str, ...]:
    return get_task(task).train_datasets


@dataclass(frozen=True)
class TrainingChoices:
    """What the Fine-tune page offers for a task: only options the task's training step uses."""

    datasets: tuple[str, ...]
    dataset_titles: dict[str, str]
    sized: frozenset[str]  # datasets whose size the job chooses (Training images / patches)
    optimizers: tuple[str, ...]
    schedules: tuple[str, ...]
    augmentations: tuple[str, ...]
    dropout: bool
    freeze_backbone: bool
    degradation: bool  # noise and blur sigmas (restoration)


def training_choices(task: str) -> TrainingChoices:
    t = get_task(task)
    options = t.supported_train_options()
    sets = [TRAINING_SETS[d] for d in t.train_datasets]
    return TrainingChoices(t.train_datasets, {s.name: s.title for s in sets}, frozenset(s.name for s in sets if s.sized),
                           OPTIMIZERS, SCHEDULES,
                           tuple(a for a in AUGMENTATIONS if a in t.augmentations) if "augment" in options else (),
                           "dropout" in options, "freeze_backbone" in options,
                           {"noise_sigma", "blur_sigma"} <= options)


def submit_training(config: dict[str, Any], device: str = "cpu", user: User | None = None) -> int:
    user = acting(user)
    cfg = TrainConfig.from_dict(config)
    require_checkpoint_room(user)
    slot = str(pick_device(device))
    title = f"train {cfg.base} on {cfg.dataset} ({cfg.optimizer}, lr {cfg.lr:g}, {count(cfg.epochs, 'epoch')})"
    return runner.submit("train", {"config": cfg.as_dict(), "device": slot}, title=title, device=slot, owner=user.name)


def submit_sweep(config: dict[str, Any], optimizers: tuple[str, ...] = SWEEP_OPTIMIZERS, device: str = "cpu",
                 user: User | None = None, repeats: int = 1) -> list[int]:
    """One job per optimizer and repeat, everything else equal; repeat r trains with seed (config seed + r), so
    each optimizer sees the same random starts. Grouped by a sweep id. All are queued or none."""
    if not optimizers or set(optimizers) - set(OPTIMIZERS):
        raise InvalidInput(f"Sweep optimizers must be among {', '.join(OPTIMIZERS)}.")
    if not isinstance(repeats, int) or isinstance(repeats, bool) or not 1 <= repeats <= MAX_SWEEP_REPEATS:
        raise InvalidInput(f"A sweep repeats each optimizer 1 to {MAX_SWEEP_REPEATS} times.")
    user = acting(user)
    sweep = uuid.uuid4().hex[:8]
    base_seed = int(TrainConfig.from_dict({**config, "sweep": sweep}).seed)
    configs = [{**config, "optimizer": opt, "sweep": sweep, "seed": base_seed + r}
               for r in range(repeats) for opt in optimizers]
    for cfg in configs:  # validate all before queueing any
        TrainConfig.from_dict(cfg)
    runner.check_job_room(user.name, len(configs))
    return [submit_training(cfg, device, user) for cfg in configs]


def curves(job_ids: list[int]) -> pd.DataFrame:
    return job_rows.curves(ensure_store(), job_ids)


def curve_notes(points: pd.DataFrame, names: list[str]) -> list[str]:
    """'<curve>: how it was measured' for each shown curve that recorded it (curves stored before that have none)."""
    notes = []
    for name in names:
        known = points.loc[(points["name"] == name) & points["convention"].notna(), "convention"].unique()
        notes += [f"{metric_registry.title(name)}: {c}" for c in known]
    return notes


def sweeps() -> list[str]:
    seen: list[str] = []
    for job in runner.list_jobs(200, ("train",)):
        sweep = job.params.get("config", {}).get("sweep")
        if sweep and sweep not in seen:
            seen.append(sweep)
    return seen


def sweep_table(sweep: str) -> pd.DataFrame:
    """The reference optimizer table: optimizer / train / validation / test accuracy (or the task's metric)."""
    rows = []
    for job in runner.list_jobs(200, ("train",)):
        cfg = job.params.get("config", {})
        if cfg.get("sweep") != sweep:
            continue
        r = job.result
        rows.append({"job": job.id, "optimizer": cfg.get("optimizer"), "seed": cfg.get("seed"), "status": job.status,
                     "train": r.get("train_accuracy"), "validation": r.get("val_accuracy", r.get("best_value")),
                     "test": r.get("test_top1"), "best_epoch": r.get("best_epoch"),
                     "time_to_best_s": r.get("time_to_best_s"), "epoch_time_s": r.get("epoch_time_s"),
                     "model": r.get("model")})
    return pd.DataFrame(rows).sort_values("job") if rows else pd.DataFrame(rows)


def sweep_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer and split, over the sweep's finished repeats: mean, sample standard deviation, count and the
    95% Student-t interval of the mean (empty for one repeat); optimizers in launch order."""
    done = table[table["status"] == "done"] if not table.empty else table
    points = [Point(str(r["optimizer"]), float(i), int(r["seed"] or 0), float(r[split]))
              for _, r in done.iterrows() for i, split in enumerate(SPLITS)
              if split in r and r[split] is not None and pd.notna(r[split])]
    arms = list(dict.fromkeys(str(o) for o in table["optimizer"])) if not table.empty else []
    out = summary(Curve("", "", "", arms, points))
    return out.assign(x=[SPLITS[int(x)] for x in out["x"]]).rename(
        columns={"arm": "optimizer", "x": "split", "n": "repeats"})


# -- what a finished training job produced -----------------------------------------------------------------
NOT_SCORES = ("peak_mem_mb", "latency", "throughput")


def metric_name(key: str) -> str:
    return metric_registry.title(key)


def metric_value(key: str, value: Any) -> str:
    """A score as a student reads it: accuracies in percent, PSNR in dB, the rest with 4 significant digits."""
    if value is None:
        return "not computed"
    value = float(value)
    if math.isinf(value):
        return "infinite"
    if "psnr" in key:
        return f"{value:.2f} dB"
    if metric_registry.is_fraction(key) and key not in ("ssim", "ssim_y") and 0.0 <= value <= 1.0:
        return f"{100 * value:.1f} %"
    return f"{value:.4g}"


@dataclass(frozen=True)
class TrainingOutcome:
    """The model a training job registered and how it scored."""

    job_id: int
    model: str | None
    best: str  # e.g. "validation accuracy 87.5 % (best, at epoch 3 of 5)"
    scores: list[tuple[str, str]]  # held-out test scores: (readable metric name, value)
    test_run: int | None
    test_error: str | None


def training_outcome(job_id: int, result: dict[str, Any]) -> TrainingOutcome:
    """Read a training job's stored result (core.training.run: model, metric, best_value, run_id, test_*)."""
    scores = [(metric_name(k[5:]), metric_value(k[5:], v)) for k, v in result.items()
              if k.startswith("test_") and not k[5:].startswith(NOT_SCORES)]
    best = ""
    if result.get("metric") is not None and result.get("best_value") is not None:
        best = f"{metric_name(result['metric'])} {metric_value(result['metric'], result['best_value'])}"
        if result.get("best_epoch"):
            best += f" (best, at epoch {result['best_epoch']} of {result.get('epochs_run', result['best_epoch'])})"
    run = result.get("run_id")
    return TrainingOutcome(job_id, result.get("model"), best, scores, int(run) if run is not None else None,
                           result.get("error"))


def no_curve_note(job_id: int, status: str) -> str:
    """Why a job picked for the curves has no point to draw."""
    if status == "failed":
        return f"Job #{job_id} stored no epoch: it failed before the first epoch ended."
    if status == "cancelled":
        return f"Job #{job_id} stored no epoch: it was cancelled before the first epoch ended."
    if status in ("queued", "starting", "running"):
        return f"Job #{job_id} has not finished its first epoch yet: its curves appear when it has."
    return f"Job #{job_id} stored no epoch."
