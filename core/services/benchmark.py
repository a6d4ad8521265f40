"""Benchmarks: models x dataset x task parameters, run in a background job (or inline for the CLI/tests),
one stored run per model with per-image and aggregate metrics, linked to the job."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from core.benchmark import evaluate as ev
from core.data.datasets import Dataset, canonical_spec, load_dataset
from core.engine import Engine
from core.errors import InvalidInput, LabError
from core.metrics.features import FEATURE_SPACES
from core.models.registry import get_spec
from core.services.store import load_for_run, save_run
from core.users import User, acting
from db.repository import DatasetRef

MAX_MODELS = 12
PREDICT_SHARE = 0.8  # of one model's part of the bar: images through the model; the rest is scoring them
PARAM_DEFAULTS = {"batch_size": 8, "score_threshold": 0.5, "y_channel": None, "crop_border": None,
                  "samples": 256, "seed": 0, "feature_space": "auto", "limit": None}


class WeightsMissing(InvalidInput):
    """A benchmark asked for models whose pretrained weights are not on the server."""


@dataclass(frozen=True)
class ModelOutcome:
    model: str
    run_id: int | None
    error: str | None
    metrics: dict[str, float | None]


def _check_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - set(PARAM_DEFAULTS)
    if unknown:
        raise InvalidInput(f"Unknown benchmark parameter(s): {', '.join(sorted(unknown))}.")
    p = {**PARAM_DEFAULTS, **params}
    try:
        p["batch_size"] = int(p["batch_size"])
        p["score_threshold"] = float(p["score_threshold"])
        p["samples"] = int(p["samples"])
        p["seed"] = int(p["seed"])
        p["limit"] = None if p["limit"] in (None, "", 0) else int(p["limit"])
        p["crop_border"] = None if p["crop_border"] is None else int(p["crop_border"])
    except (TypeError, ValueError):
        raise InvalidInput("Benchmark parameters must be numbers.") from None
    if not 1 <= p["batch_size"] <= 256:
        raise InvalidInput("Batch size must be between 1 and 256.")
    if not 0.0 <= p["score_threshold"] <= 1.0:
        raise InvalidInput("The score threshold must be between 0 and 1.")
    if not 2 <= p["samples"] <= 10_000:
        raise InvalidInput("Generate between 2 and 10000 samples (a Fréchet distance needs at least 2).")
    if p["limit"] is not None and p["limit"] < 1:
        raise InvalidInput("The image limit must be at least 1.")
    if p["feature_space"] not in FEATURE_SPACES:
        raise InvalidInput(f"Feature space must be one of {', '.join(FEATURE_SPACES)}.")
    return p


def _subset(ds: Dataset, limit: int | None) -> Dataset:
    if limit is None or limit >= len(ds.samples):
        return ds
    spec = {**ds.spec, "first": limit}
    return Dataset(spec, ds.title, ds.task, ds.kind, ds.samples[:limit], ds.categories, ds.operation, ds.scale,
                   ds.meta, ds.report)


def _fits(task: str, operation: str | None, ds: Dataset) -> bool:
    if task == "segmentation" and operation == "instance":
        return ds.task == "detection" and any(s.masks is not None for s in ds.samples[:1]) or (
            ds.task == "segmentation" and ds.operation == "instance")
    return ds.task == task and (task != "segmentation" or ds.operation == operation)


def plan(models: list[str], dataset: dict, params: dict[str, Any] | None = None) -> tuple[dict, Dataset, str]:
    """Validate a request before it is queued; returns (normalised params, dataset, title)."""
    if not models:
        raise InvalidInput("Choose at least one model.")
    if len(models) > MAX_MODELS:
        raise InvalidInput(f"At most {MAX_MODELS} models per benchmark.")
    if len(set(models)) != len(models):
        raise InvalidInput("A model is listed twice.")
    p = _check_params(params or {})
    ds = _subset(load_dataset(dataset), p["limit"])
    for name in models:
        spec = get_spec(name)
        if not _fits(spec.task, spec.operation, ds):
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


def evaluate_model(engine: Engine, name: str, ds: Dataset, p: dict, allow_random: bool,
                   progress: ev.Progress | None = None, job_id: int | None = None) -> int:
    spec = get_spec(name)
    loaded = load_for_run(engine, name, allow_random, spec.task)
    bs = p["batch_size"]
    if spec.task == "classification":
        result = ev.evaluate_classification(engine, loaded, ds, bs, progress)
    elif spec.task == "detection":
        result = ev.evaluate_detection(engine, loaded, ds, bs, progress, p["score_threshold"])
    elif spec.task == "segmentation" and spec.operation == "instance":
        result = ev.evaluate_detection(engine, loaded, ds, bs, progress, p["score_threshold"], masks=True)
    elif spec.task == "segmentation":
        result = ev.evaluate_semantic(engine, loaded, ds, bs, progress)
    elif spec.task == "restoration":
        result = ev.evaluate_restoration(engine, loaded, ds, bs, progress, p["y_channel"], p["crop_border"])
    else:
        result = ev.evaluate_generation(engine, loaded, ds, bs, progress, p["samples"], p["seed"], p["feature_space"])
    dataset_ref = DatasetRef(name=ds.name, kind=ds.kind, content_hash=ds.content_hash, num_items=len(ds.samples),
                             meta={"title": ds.title, "spec": ds.spec, "task": ds.task, "operation": ds.operation,
                                   "categories": list(ds.categories or ()), **ds.meta})
    return save_run(
        loaded=loaded, stats=result.stats, task=spec.task, kind="benchmark", dataset=dataset_ref,
        params={"dataset": ds.spec, "benchmark": p, "allow_random": allow_random, **result.params},
        outputs=result.outputs, metrics=result.metrics, image_metrics=result.image_metrics,
        seed=p["seed"] if spec.task == "generation" else ds.spec.get("seed"), job_id=job_id,
    )


def run_benchmark(engine: Engine, models: list[str], dataset: dict, params: dict[str, Any] | None = None, *,
                  allow_random: bool = False, job_id: int | None = None,
                  progress: Callable[..., None] | None = None,
                  log: Callable[[str], None] | None = None) -> list[ModelOutcome]:
    """Every model in turn; a model that cannot run is reported and the others still run.
    progress(fraction, message, force) is told each phase (forced, so a throttled bar never keeps naming the
    model that finished) and each image."""
    from core.services.results import run_detail

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
        detail = run_detail(run_id)
        values = dict(zip(detail["metrics"]["metric"], detail["metrics"]["value"]))
        log(f"{name}: run {run_id} " + ", ".join(f"{k}={v:.4g}" for k, v in values.items()
                                                 if v is not None and not k.startswith("latency")))
        outcomes.append(ModelOutcome(name, run_id, None, values))
    return outcomes


# -- as a background job ----------------------------------------------------------------------------------
def submit_benchmark(models: list[str], dataset: dict, params: dict[str, Any] | None = None, *,
                     allow_random: bool = False, device: str = "cpu", reproduces: int | None = None,
                     user: User | None = None) -> int:
    """Queue a benchmark job; `reproduces` names the stored run it re-runs (the Leaderboard's reproduce action)."""
    from core.engine import pick_device
    from core.jobs import runner

    owner = acting(user).name
    runner.check_job_room(owner)  # before the dataset is loaded to check the plan
    require_weights(models, allow_random)  # first: refusing must not cost a dataset load
    p, ds, title = plan(models, dataset, params)
    slot = str(pick_device(device))
    job: dict[str, Any] = {"models": list(models), "dataset": canonical_spec(dataset), "params": params or {},
                           "allow_random": allow_random, "device": slot}
    if reproduces is not None:
        job["reproduces"] = int(reproduces)
        title = f"reproduce run #{int(reproduces)}: {title}"
    return runner.submit("benchmark", job, title=title, device=slot, owner=owner)


def run_benchmark_job(job_params: dict[str, Any], ctx) -> dict[str, Any]:
    engine = Engine(job_params.get("device", "cpu"))
    outcomes = run_benchmark(engine, job_params["models"], job_params["dataset"], job_params.get("params"),
                             allow_random=bool(job_params.get("allow_random")), job_id=ctx.job_id,
                             progress=ctx.progress, log=ctx.log)
    ok = [o for o in outcomes if o.run_id is not None]
    if not ok:
        raise InvalidInput("No model could be benchmarked: " + "; ".join(f"{o.model}: {o.error}" for o in outcomes))
    return {"run_ids": [o.run_id for o in ok], "errors": {o.model: o.error for o in outcomes if o.error}}
