"""The one training loop every task runs (a task supplies its step and validation as a TrainPlan).

Per epoch: shuffled batches (the batch halves on out-of-memory and the epoch goes on), one optimiser step per
phase each, then validation; curves are written to the job as they come, the best weights (by the validation
metric) are kept, early stopping after `patience` epochs without improvement, a `max_steps` budget.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
import psutil
import torch
import torch.nn as nn

from core.config import FAULT_OOM_ENV, get_settings
from core.engine import is_oom
from core.metrics import registry as metric_registry
from core.tasks.base import Phase, TrainPlan
from core.tasks.train_config import TrainConfig
from core.training.optim import make_optimizer, make_schedule
from core.wording import count

FAULT_ENV = FAULT_OOM_ENV  # test hook: batches larger than this raise an out-of-memory error


@dataclass
class FitResult:
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_value: float
    metric: str
    epochs_run: int
    steps: int
    time_to_best_s: float
    epoch_time_s: float
    peak_mem_mb: float
    final_batch_size: int
    oom_halvings: int
    history: list[dict[str, Any]] = field(default_factory=list)


class _Best(TypedDict):
    """The best epoch so far: its validation value, index, CPU weights and seconds since the start."""

    value: float
    epoch: int
    state: dict[str, torch.Tensor]
    t: float


class Budget(Exception):
    """max_steps reached inside an epoch."""


def done_fraction(cfg: TrainConfig, epochs_done: float, steps: int, total_steps: float) -> float:
    """How much of the training is done: by steps under a max_steps budget (out of the steps that will really
    run: the budget or the planned epochs, whichever is smaller), else by epochs."""
    return steps / total_steps if cfg.max_steps else epochs_done / cfg.epochs


def step_text(steps: int, total: float) -> str:
    return f"step {steps}/{total:g}" if steps <= total else f"step {steps}"


def inject_fault(batch_len: int) -> None:
    limit = get_settings().fault_oom_above_batch
    if limit is not None and batch_len > limit:
        raise torch.OutOfMemoryError(f"CUDA out of memory (injected by {FAULT_ENV}={limit})")


class PeakMemory:
    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0.0
        self._proc = psutil.Process(os.getpid())
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def sample(self) -> float:
        if self.device.type == "cuda":
            self.peak = max(self.peak, torch.cuda.max_memory_allocated(self.device) / 2**20)
        else:
            self.peak = max(self.peak, self._proc.memory_info().rss / 2**20)
        return self.peak


def _halved(exc: Exception, batch: int, ctx, device: torch.device) -> int:
    """The next batch size after an out-of-memory error; anything else (or OOM at batch 1) is re-raised."""
    if not is_oom(exc) or batch == 1:
        raise exc
    batch = max(1, batch // 2)
    ctx.log(f"out of memory: batch size halved to {batch}")
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return batch


# how the loop's own curve values are measured (a task's validation values bring their own: TrainPlan.conventions)
LOOP_CONVENTIONS = {
    "lr": "learning rate at the end of the epoch",
    "epoch_time_s": "wall-clock seconds of the epoch (training and validation)",
    "peak_mem_mb": "peak memory so far in MB (CUDA allocated on a GPU, the process's resident memory on the CPU)",
    "batch_size": "batch size at the end of the epoch (halved after an out-of-memory error)",
}


# The losses stay on the device and are read back (one synchronisation) at most this often and at the end of an
# epoch: a read per step stalled the GPU (a DnCNN step took 2x a bare loop's). A non-finite loss is still reported
# with the step it happened at; the steps queued after it only ran on weights that are thrown away.
READ_BACK_S = 0.5


def _read_back(pending: list[tuple[int, list[torch.Tensor]]], phases: list[Phase], losses: dict[str, list[float]]) -> None:
    if not pending:
        return
    values = torch.stack([torch.stack([v.float() for v in step]) for _, step in pending]).cpu().tolist()
    for (step, _), row in zip(pending, values):
        for phase, value in zip(phases, row):
            if not math.isfinite(value):
                raise FloatingPointError(f"the {phase.name.replace('_', ' ')} became {value} at step {step}; "
                                         "lower the learning rate")
            losses[phase.name].append(value)
    pending.clear()


def _record_epoch(ctx, history: list, epoch: int, steps: int, row: dict, best_state: dict,
                  conventions: dict[str, str]) -> None:
    """Curves point, log line, and the best weights so far as the job's partial file."""
    history.append({"epoch": epoch + 1, **row})
    ctx.metrics(epoch + 1, steps, row, conventions)
    ctx.log(f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)))
    ctx.save_partial(best_state)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def _optimizer(cfg: TrainConfig, phase: Phase) -> torch.optim.Optimizer:
    """The chosen optimiser over the phase's trainable parameters (Adam with the phase's betas when it has them)."""
    params = [p for p in phase.parameters() if p.requires_grad]
    if cfg.optimizer == "adam" and phase.adam_betas is not None and params:
        return torch.optim.Adam(params, lr=cfg.lr, betas=phase.adam_betas, weight_decay=cfg.weight_decay)
    return make_optimizer(cfg.optimizer, params, cfg.lr, cfg.momentum, cfg.weight_decay)


def fit(cfg: TrainConfig, ctx, plan: TrainPlan, device: torch.device) -> FitResult:
    """Every task's training: per batch, plan.batch(indices, rng) then one optimiser step per phase (one phase for
    supervised tasks; discriminator then generator for a GAN), each with its own learning-rate schedule; a
    non-finite loss stops the job with a clear message. After every epoch plan.validate() gives the validation
    metric (its direction from the metric registry); the best weights of plan.model are kept."""
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    n_train, metric = plan.n_train, plan.metric
    higher_is_better = metric_registry.higher_is_better(metric) is not False
    batch = min(cfg.batch_size, n_train)
    planned = cfg.epochs * math.ceil(n_train / batch)  # the schedule's length (more steps if the batch halves)
    budget = cfg.max_steps or math.inf
    total_steps = min(planned, budget)
    optimizers = [_optimizer(cfg, phase) for phase in plan.phases]
    schedules = [make_schedule(cfg.schedule, opt, int(min(planned, budget))) for opt in optimizers]  # planned is finite: an int
    memory = PeakMemory(device)
    start = time.perf_counter()
    model = plan.model
    best: _Best = {"value": -math.inf if higher_is_better else math.inf, "epoch": -1, "state": _cpu_state(model), "t": 0.0}
    history: list[dict[str, Any]] = []
    epoch_times, steps, halvings, since_best = [], 0, 0, 0
    last_read = time.monotonic()
    for epoch in range(cfg.epochs):
        plan.train_mode()
        t0 = time.perf_counter()
        order = rng.permutation(n_train)
        losses: dict[str, list[float]] = {phase.name: [] for phase in plan.phases}
        pending: list[tuple[int, list[torch.Tensor]]] = []  # (step, its losses) still on the device
        i = 0
        try:
            while i < n_train:
                idx = order[i:i + batch].tolist()
                try:
                    inject_fault(len(idx))
                    state = plan.batch(idx, rng)
                    step_losses = []
                    for phase, opt, schedule in zip(plan.phases, optimizers, schedules):
                        opt.zero_grad(set_to_none=True)
                        loss = phase.loss(state)
                        loss.backward()
                        opt.step()
                        if steps < min(planned, budget):
                            schedule.step()
                        step_losses.append(loss.detach())
                except Exception as exc:
                    batch, halvings = _halved(exc, batch, ctx, device), halvings + 1
                    continue
                pending.append((steps, step_losses))
                steps += 1
                i += len(idx)
                if time.monotonic() - last_read >= READ_BACK_S or i >= n_train or steps >= budget:
                    _read_back(pending, plan.phases, losses)
                    last_read = time.monotonic()
                    memory.sample()
                    done = done_fraction(cfg, epoch + i / n_train, steps, total_steps)
                    shown = ", ".join(f"{name.replace('train_', '').replace('_', ' ')} {np.mean(v):.4f}"
                                      for name, v in losses.items() if v)
                    ctx.progress(min(1.0, done), f"epoch {epoch + 1}/{cfg.epochs}, {step_text(steps, total_steps)}, "
                                                 f"{shown}, peak memory {memory.peak:.0f} MB on {device}")
                if steps >= budget:
                    raise Budget
        except Budget:
            pass
        ctx.progress(min(1.0, done_fraction(cfg, epoch + 1, steps, total_steps)),
                     f"epoch {epoch + 1}/{cfg.epochs}: {plan.validating}", force=True)
        for module in [model, *plan.eval_modules]:
            module.eval()
        with torch.inference_mode():
            val = plan.validate()
        elapsed = time.perf_counter() - t0
        epoch_times.append(elapsed)
        value = val[metric]
        improved = value > best["value"] if higher_is_better else value < best["value"]
        if improved or best["epoch"] < 0 or value == best["value"]:
            # a tie keeps the later, longer-trained weights (a saturated metric, e.g. 100% validation accuracy,
            # must not freeze the first epoch that reached it); patience counts only real improvements
            best = {"value": value, "epoch": epoch, "state": _cpu_state(model), "t": time.perf_counter() - start}
        since_best = 0 if improved else since_best + 1
        row = {**{name: float(np.mean(v)) if v else None for name, v in losses.items()}, **val,
               "lr": optimizers[0].param_groups[0]["lr"], "epoch_time_s": elapsed, "peak_mem_mb": memory.sample(),
               "batch_size": batch}
        conventions = {**LOOP_CONVENTIONS, **plan.conventions,
                       **{name: f"mean over the epoch's {len(v)} training steps (training batches, as augmented)"
                          for name, v in losses.items()}}
        _record_epoch(ctx, history, epoch, steps, row, best["state"], conventions)
        if steps >= budget:
            break
        if cfg.patience is not None and since_best >= cfg.patience:
            ctx.log(f"early stop: no better {metric} for {count(cfg.patience, 'epoch')}")
            break
    return FitResult(best["state"], best["epoch"] + 1, float(best["value"]), metric, len(history), steps, best["t"],
                     float(np.mean(epoch_times)) if epoch_times else 0.0, memory.peak, batch, halvings, history)
