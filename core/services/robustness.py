"""Robustness sweeps as the pages and the CLI see them: queue one, list the finished ones, and read a sweep back as
a degradation curve per model (metric against level) with the area under it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.benchmark.robustness import NOISE_AXIS, NOISE_SET, Sweep, default_levels, plan_sweep, run_sweep
from core.benchmark.run import require_weights
from core.data import corruptions
from core.data.datasets import list_datasets
from core.engine import pick_device
from core.errors import InvalidInput
from core.jobs import runner
from core.metrics import registry as metric_registry
from core.models.registry import get_spec
from core.services.jobs import job_status, public_job
from core.store import ensure_store
from core.tasks import get_task
from core.tasks.base import BenchmarkParams
from core.tasks.outputs import EvaluationOutputs
from core.users import User, acting
from db import analytics

KIND = "robustness"
# what a student picks: the ImageNet-C corruptions, and for denoisers the photos' own noise level
CORRUPTION_WORDS = {NOISE_AXIS: "noise σ of the photos (denoisers: σ 5 to 75)",
                    **{c.name: f"{c.title} ({c.setting}: {', '.join(f'{v:g}' for v in c.values)})"
                       for c in corruptions.CORRUPTIONS.values()}}
DEGRADED = "degraded input (no method)"  # the restoration curves' floor: a method below it does harm
AREA_COLUMNS = ["model", "clean or lowest level", "highest level", "mean over the corrupted levels",
                "area under the curve", "kept (mean corrupted ÷ clean)"]


def corruption_choices(dataset: str) -> list[str]:
    """What a builtin set can be swept over: the noise σ of the noisy photos, ImageNet-C's corruptions for the
    sets whose images can be corrupted, else nothing."""
    if dataset == NOISE_SET:
        return [NOISE_AXIS]
    info = next((d for d in list_datasets() if d.name == dataset), None)
    return list(corruptions.CORRUPTIONS) if info is not None and info.corruptible else []


def levels_for(corruption: str) -> tuple[float, ...]:
    return default_levels(corruption)


def submit_robustness(models: list[str], dataset: dict, corruption: str, levels: list[float] | None = None,
                      params: dict[str, Any] | None = None, *, allow_random: bool = False, device: str = "cpu",
                      user: User | None = None) -> int:
    """Queue a sweep: every model benchmarked at every level, one job (refused whole before anything is queued)."""
    owner = acting(user).name
    runner.check_job_room(owner)
    require_weights(models, allow_random)
    BenchmarkParams.from_dict(params)  # refuses bad parameters before the dataset is built
    sweep, title = plan_sweep(models, dataset, corruption, levels, (params or {}).get("limit"))
    slot = str(pick_device(device))
    job = {"sweep": sweep.as_json(), "params": params or {}, "allow_random": allow_random, "device": slot}
    return runner.submit(KIND, job, title=title, device=slot, owner=owner)


def finished_sweeps(limit: int = 50) -> list:
    """Done robustness jobs, newest first."""
    return [public_job(j) for j in runner.list_jobs(limit, (KIND,)) if j.status == "done"]


@dataclass(frozen=True)
class SweepCurves:
    job_id: int
    title: str
    sweep: Sweep
    task: str
    metric: str
    metrics: list[str]  # the quality metrics every level stored (choices)
    points: pd.DataFrame  # model, level, value, run_id
    areas: pd.DataFrame  # AREA_COLUMNS

    @property
    def x_title(self) -> str:
        return self.sweep.axis

    @property
    def y_title(self) -> str:
        return metric_registry.title(self.metric)


def area_table(points: pd.DataFrame, higher_is_better: bool | None) -> pd.DataFrame:
    """Per model: the value at the lowest level (clean for severities), at the highest, the mean over the levels
    above the lowest, the area under the curve by the trapezoid rule divided by the level range (the curve's
    average height, in the metric's unit) and the share kept (mean corrupted ÷ lowest level; higher-is-better
    metrics only). A model missing a level gets no area (the curves would not cover the same range)."""
    rows = []
    levels = sorted(points["level"].unique())
    for model, part in points.groupby("model", sort=False):
        part = part.sort_values("level")
        x, y = part["level"].to_numpy(float), part["value"].to_numpy(float)
        complete = len(part) == len(levels) and np.isfinite(y).all()
        area = float(np.trapezoid(y, x) / (x[-1] - x[0])) if complete and x[-1] > x[0] else None
        corrupted = float(y[1:].mean()) if complete and len(y) > 1 else None
        kept = corrupted / y[0] if corrupted is not None and higher_is_better and y[0] > 0 else None
        rows.append([model, float(y[0]), float(y[-1]), corrupted, area, kept])
    out = pd.DataFrame(rows, columns=AREA_COLUMNS)
    if higher_is_better is not None and not out.empty:
        out = out.sort_values("area under the curve", ascending=not higher_is_better, na_position="last")
    return out.reset_index(drop=True)


def sweep_curves(job_id: int, metric: str | None = None) -> SweepCurves:
    """A finished sweep's curves of `metric` (default: the task's headline metric) and their areas."""
    job = job_status(int(job_id))
    if job.kind != KIND:
        raise InvalidInput(f"Job #{job.id} is not a robustness sweep.")
    if job.status != "done" or "sweep" not in (job.result or {}):
        raise InvalidInput(f"Robustness sweep #{job.id} has not finished ({job.status}).")
    return curves_of(job.id, job.title, job.result, metric)


def curves_of(job_id: int, title: str, result: dict[str, Any], metric: str | None = None) -> SweepCurves:
    """The curves of a sweep's result (as its job stored it, or as run in this process by the CLI)."""
    sweep = Sweep.from_json(result["sweep"])
    runs = pd.DataFrame([r for r in result.get("runs", []) if r.get("run_id") is not None],
                        columns=["level", "model", "run_id", "error"])
    values = analytics.run_metric_values(ensure_store(), runs["run_id"].astype(int).tolist())
    # a run deleted since (SQLite may give its id to a later run) must not lend the curve another model's number
    owners = values.drop_duplicates("run_id").set_index("run_id")["model"]
    runs = runs[[owners.get(r) == m for r, m in zip(runs["run_id"], runs["model"])]]
    values = values[values["run_id"].isin(runs["run_id"])]
    quality = sorted(m for m in values["metric"].unique() if metric_registry.kind(m) == "quality")
    task = get_spec(sweep.models[0]).task
    headline = next((m for m in get_task(task).headline if m in quality), quality[0] if quality else None)
    metric = metric or headline
    if metric is None or metric not in quality:
        raise InvalidInput(f"This sweep stored no {metric_registry.title(str(metric))}; pick one of its metrics.")
    chosen = values[values["metric"] == metric][["run_id", "value"]]
    points = runs.merge(chosen, on="run_id")[["model", "level", "value", "run_id"]].sort_values(["model", "level"])
    if metric in ("psnr", "ssim") and not points.empty:  # restoration: the degraded input, i.e. doing nothing
        first = points.drop_duplicates("level")
        outputs = analytics.run_outputs(ensure_store(), first["run_id"].astype(int).tolist())
        floor = [(lv, getattr(EvaluationOutputs.from_json(outputs[r]["outputs"]), f"input_{metric}"), r)
                 for lv, r in zip(first["level"], first["run_id"]) if r in outputs]
        floor = [(lv, v, r) for lv, v, r in floor if v is not None]
        if floor:
            points = pd.concat([points, pd.DataFrame([(DEGRADED, lv, v, r) for lv, v, r in floor], columns=points.columns)],
                               ignore_index=True)
    return SweepCurves(job_id, title, sweep, task, metric, quality, points.reset_index(drop=True),
                       area_table(points, metric_registry.higher_is_better(metric)))


def run_here(models: list[str], dataset: dict, corruption: str, levels: list[float] | None = None,
             params: dict[str, Any] | None = None, *, allow_random: bool = False, device: str | None = None,
             metric: str | None = None, log=None) -> SweepCurves:
    """A sweep run in this process (the CLI): the same plan, runs stored the same way, no job row."""
    require_weights(models, allow_random)
    sweep, title = plan_sweep(models, dataset, corruption, levels, (params or {}).get("limit"))
    result = run_sweep(sweep, params, allow_random=allow_random, device=str(pick_device(device)), log=log)
    return curves_of(0, title, result, metric)
