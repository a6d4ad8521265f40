"""A training job from its parameters to a registered model: the task's data and training step, the one loop
(core.training.loops), a checkpoint, and a benchmark of the trained model on its held-out set."""
from __future__ import annotations

from typing import Any
from collections.abc import Callable

import torch
import torch.nn as nn
from safetensors.torch import save

from core.benchmark.run import run_benchmark
from core.engine import Engine, pick_device
from core.jobs.context import Stage
from core.jobs.handlers import handler
from core.models.checkpoints import import_checkpoint
from core.models.registry import get_spec
from core.tasks import get_task
from core.tasks.base import TrainData
from core.tasks.train_config import TrainConfig
from core.training.loops import FitResult, fit

TRAIN_SHARE = 0.9  # of the job's bar; the rest is scoring the trained model on its held-out set


def train(cfg: TrainConfig, ctx, td: TrainData, device: torch.device, engine: Engine | None = None,
          note: Callable[[str], None] | None = None) -> tuple[nn.Module, FitResult, dict[str, Any]]:
    """The task's training step through the one loop; returns the model with its best weights (in eval mode),
    the loop's result and the values the task reports with the trained model."""
    task = get_task(cfg.task)
    plan = task.train_plan(cfg, td, device, engine or Engine(str(device)), note or (lambda message: None))
    result = fit(cfg, ctx, plan, device)
    plan.model.load_state_dict(result.best_state)
    plan.model.eval()
    with torch.inference_mode():
        extra = plan.finish(result.history[result.best_epoch - 1])
    return plan.model, result, extra


@handler("train")
def run_training_job(params: dict[str, Any], ctx) -> dict[str, Any]:
    cfg = TrainConfig.from_dict(params["config"])
    device = pick_device(params.get("device") or "cpu")
    spec = get_spec(cfg.base)
    task = get_task(cfg.task)
    engine = Engine(str(device))
    ctx.log(f"training {cfg.base} ({cfg.task}) on {cfg.dataset}, device {device}, optimizer {cfg.optimizer}, lr {cfg.lr}")
    training = Stage(ctx, 0.0, TRAIN_SHARE)
    training.progress(0.0, "preparing the training data", force=True)
    td = task.training_data(cfg, spec)
    training.progress(0.0, f"loading the model {cfg.base}", force=True)
    _, result, extra = train(cfg, training, td, device, engine, lambda message: training.progress(0.0, message, force=True))
    ctx.progress(TRAIN_SHARE, "registering the trained model", force=True)
    name = cfg.name or f"{cfg.base.replace('_', '-')}-job{ctx.job_id}"
    new_head = td.categories is not None and tuple(td.categories) != tuple(spec.categories or ())
    state = {k: v.contiguous() for k, v in result.best_state.items()}
    import_checkpoint(save(state), f"{name}.safetensors", cfg.base, name,
                      title=f"{spec.title or cfg.base} fine-tuned (job #{ctx.job_id})",
                      categories=tuple(td.categories) if new_head and td.categories is not None else None, owner=ctx.owner,
                      meta={"job_id": ctx.job_id, "dataset": cfg.dataset, "optimizer": cfg.optimizer,
                            "best_epoch": result.best_epoch, result.metric: result.best_value})
    ctx.log(f"registered {name} (best {result.metric}={result.best_value:.4g} at epoch {result.best_epoch})")
    test: dict[str, Any] = {}
    if td.test_dataset is not None:
        params_bench: dict[str, Any] = {}
        if "samples" in task.benchmark_options:  # generation: how many samples the held-out FID is taken over
            params_bench["samples"] = min(256, cfg.test_limit or 256)
        elif cfg.test_limit:
            params_bench["limit"] = cfg.test_limit
        testing = Stage(ctx, TRAIN_SHARE, 1.0, "testing on the held-out set: ")
        [outcome] = run_benchmark(engine, [name], td.test_dataset, params_bench, job_id=ctx.job_id, log=ctx.log,
                                  progress=testing.progress)
        test = {"run_id": outcome.run_id, "error": outcome.error, **{f"test_{k}": v for k, v in outcome.metrics.items()
                                                                      if not k.startswith(("latency", "throughput"))}}
    return {"model": name, "metric": result.metric, "best_value": result.best_value, "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run, "steps": result.steps, "time_to_best_s": result.time_to_best_s,
            "epoch_time_s": result.epoch_time_s, "peak_mem_mb": result.peak_mem_mb,
            "final_batch_size": result.final_batch_size, "oom_halvings": result.oom_halvings, **extra, **test}
