"""Benchmarks: models x dataset x task parameters, one stored run per model with per-image and aggregate metrics,
linked to the job that ran it (or none, for the CLI and tests). The task of each model scores it
(core.tasks); this module plans, reports progress, stores, and is the "benchmark" job's handler."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from core.data.datasets import Dataset, load_dataset
from core.engine import Engine
from core.errors import InvalidInput, LabError
from core.jobs.handlers import handler
from core.models.registry import get_spec
from core.runs import load_for_run, save_run
from core.store import ensure_store
from core.tasks import get_task
from core.tasks.base import BenchmarkParams, Progress
from db import repository
from db.repository import DatasetRef

MAX_MODELS = 12
PREDICT_SHARE = 0.8  # of one model's part of the bar: images through the model; the rest is scoring them


class WeightsMissing(InvalidInput):
    """A benchmark asked for models whose pretrained weights are not on the server."""


@dataclass(frozen=True)
class ModelOutcome:
    model: str
    run_id: int | None
    error: str | None
    metrics: dict[str, float | None]


def subset(ds: Dataset, limit: int | None) -> Dataset:
    if limit is None or limit >= len(ds.samples):
        return ds
    spec = {**ds.spec, "first": limit}
    return Dataset(spec, ds.title, ds.task, ds.kind, ds.samples[:limit], ds.categories, ds.operation, ds.scale,
                   ds.meta, ds.report)


def plan(models: list[str], dataset: dict, params: dict[str, Any] | BenchmarkParams | None = None
         ) -> tuple[BenchmarkParams, Dataset, str]:
    """Validate a request before it is queued; returns (validated params, dataset, title)."""
    if not models:
        raise InvalidInput("Choose at least one model.")
    if len(models) > MAX_MODELS:
        raise InvalidInput(f"At most {MAX_MODELS} models per benchmark.")
    if len(set(models)) != len(models):
        raise InvalidInput("A model is listed twice.")
    p = params if isinstance(params, BenchmarkParams) else BenchmarkParams.from_dict(params)
    ds = subset(load_dataset(dataset), p.limit)
    for name in models:
        spec = get_spec(name)
        if not get_task(spec.task).fits(spec, ds):
            raise InvalidInput(f"{name} ({spec.task}{', ' + spec.operation if spec.operation else ''}) cannot be "
                               f"scored on {ds.title} ({ds.task}{', ' + ds.operation if ds.operation else ''}).")
    title = f"{', '.join(models[:3])}{' ...' if len(models) > 3 else ''} on {ds.title}"
    return p, ds, title


def require_weights(models: list[str], allow_random: bool) -> None:
    """Refuse, before anything is queued, models whose pretrained weights are missing, unless random weights were
    allowed: such a job would only fail once it reached them."""
    if allow_random:
        return
    missing = [name for name in models if get_spec(name).check_weights().status == "missing"]
    if not missing:
        return
    names = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
    them = "it" if len(missing) == 1 else "them"
    raise WeightsMissing(
        f"No pretrained weights for {names} on this server, so the benchmark would fail. Upload a checkpoint for "
        f"{them} on the Models page, or tick \"Benchmark those with random weights\" to score {them} untrained.")


def progress_message(i: int, n: int, model: str, done: int, total: int, stage: str) -> str:
    """'model 2/3: DnCNN — image 4/10': the model that is running now, and how far it is."""
    if stage == "scoring":
        what = f"scoring image {done + 1}/{total}" if 0 <= done < total else "scoring"
    elif stage == "generating":
        what = f"generating sample {done}/{total}"
    else:
        what = f"image {done}/{total}"
    return f"{model_part(i, n, model)} — {what}"


def model_part(i: int, n: int, model: str) -> str:
    return f"model {i + 1}/{n}: {model}" if n > 1 else model


def evaluate_model(engine: Engine, name: str, ds: Dataset, p: BenchmarkParams, allow_random: bool,
                   progress: Progress | None = None, job_id: int | None = None) -> int:
    spec = get_spec(name)
    task = get_task(spec.task)
    loaded = load_for_run(engine, name, allow_random, spec.task)
    result = task.evaluate(engine, loaded, ds, p, progress)
    dataset_ref = DatasetRef(name=ds.name, kind=ds.kind, content_hash=ds.content_hash, num_items=len(ds.samples),
                             meta={"title": ds.title, "spec": ds.spec, "task": ds.task, "operation": ds.operation,
                                   "categories": list(ds.categories or ()), **ds.meta})
    return save_run(
        loaded=loaded, stats=result.stats, task=spec.task, kind="benchmark", dataset=dataset_ref,
        params={"dataset": ds.spec, "benchmark": p.as_dict(), "allow_random": allow_random, **result.params},
        outputs=result.outputs.as_json(), metrics=result.metrics, image_metrics=result.image_metrics,
        seed=task.run_seed(p, ds), job_id=job_id, artifacts=result.artifacts,
    )


def run_benchmark(engine: Engine, models: list[str], dataset: dict, params: dict[str, Any] | None = None, *,
                  allow_random: bool = False, job_id: int | None = None,
                  progress: Callable[..., None] | None = None,
                  log: Callable[[str], None] | None = None) -> list[ModelOutcome]:
    """Every model in turn; a model that cannot run is reported and the others still run.
    progress(fraction, message, force) is told each phase (forced, so a throttled bar never keeps naming the
    model that finished) and each image."""
    log = log or (lambda line: None)
    report = progress or (lambda fraction, message, force=False: None)
    report(0.0, "preparing the dataset", True)
    p, ds, _ = plan(models, dataset, params)
    for line in ds.report[:50]:
        log(f"dataset: {line}")
    outcomes, n = [], len(models)
    for i, name in enumerate(models):
        spec = get_spec(name)
        shown = spec.title if spec.title and spec.base is None else name  # a checkpoint by the name it was given
        stages: set[str] = set()

        def step(done: int, total: int, stage: str = "predicting", i=i, shown=shown, stages=stages):
            within = done / total if total > 0 else 0.0
            part = PREDICT_SHARE + (1 - PREDICT_SHARE) * within if stage == "scoring" else PREDICT_SHARE * within
            first = stage not in stages  # a new phase is written at once
            stages.add(stage)
            report((i + part) / n, progress_message(i, n, shown, done, total, stage), first)
        report(i / n, f"{model_part(i, n, shown)} — loading the model", True)
        try:
            run_id = evaluate_model(engine, name, ds, p, allow_random, step, job_id)
        except LabError as exc:
            log(f"{name}: {exc}")
            outcomes.append(ModelOutcome(name, None, str(exc), {}))
            continue
        report((i + 1) / n, f"{model_part(i, n, shown)} — results stored")
        detail = repository.run_detail(ensure_store(), run_id)
        assert detail is not None  # evaluate_model has just stored this run
        metrics = detail.metrics
        values = dict(zip(metrics["metric"], metrics["value"]))
        log(f"{name}: run {run_id} " + ", ".join(f"{k}={v:.4g}" for k, v in values.items()
                                                 if v is not None and not k.startswith("latency")))
        outcomes.append(ModelOutcome(name, run_id, None, values))
    return outcomes



# -- as a background job ----------------------------------------------------------------------------------
@handler("benchmark")
def run_benchmark_job(job_params: dict[str, Any], ctx) -> dict[str, Any]:
    engine = Engine(job_params.get("device", "cpu"))
    outcomes = run_benchmark(engine, job_params["models"], job_params["dataset"], job_params.get("params"),
                             allow_random=bool(job_params.get("allow_random")), job_id=ctx.job_id,
                             progress=ctx.progress, log=ctx.log)
    ok = [o for o in outcomes if o.run_id is not None]
    if not ok:
        raise InvalidInput("No model could be benchmarked: " + "; ".join(f"{o.model}: {o.error}" for o in outcomes))
    return {"run_ids": [o.run_id for o in ok], "errors": {o.model: o.error for o in outcomes if o.error}}
