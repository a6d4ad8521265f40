"""The training loop shared by every supervised task, and the GAN loop.

Per epoch: shuffled batches (the batch halves on out-of-memory and the epoch goes on), one optimiser step
each, then validation; curves are written to the job as they come, the best weights (by the validation
metric) are kept, early stopping after `patience` epochs without improvement, a `max_steps` budget.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import psutil
import torch
import torch.nn as nn

from core.engine import _is_oom
from core.wording import count
from core.training.config import TrainConfig
from core.training.optim import make_optimizer, make_schedule

FAULT_ENV = "IMGLAB_FAULT_OOM_ABOVE_BATCH"  # test hook: batches larger than this raise an out-of-memory error


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


class Budget(Exception):
    """max_steps reached inside an epoch."""


def done_fraction(cfg: TrainConfig, epochs_done: float, steps: int, total_steps: float) -> float:
    """How much of the training is done: by steps under a max_steps budget (out of the steps that will really
    run: the budget or the planned epochs, whichever is smaller), else by epochs."""
    return steps / total_steps if cfg.max_steps else epochs_done / cfg.epochs


def step_text(steps: int, total: float) -> str:
    return f"step {steps}/{total:g}" if steps <= total else f"step {steps}"


def inject_fault(batch_len: int) -> None:
    limit = os.environ.get(FAULT_ENV)
    if limit and batch_len > int(limit):
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
    if not _is_oom(exc) or batch == 1:
        raise exc
    batch = max(1, batch // 2)
    ctx.log(f"out of memory: batch size halved to {batch}")
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return batch


def _record_epoch(ctx, history: list, epoch: int, steps: int, row: dict, best_state: dict) -> None:
    """Curves point, log line, and the best weights so far as the job's partial file."""
    history.append({"epoch": epoch + 1, **row})
    ctx.metrics(epoch + 1, steps, row)
    ctx.log(f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)))
    ctx.save_partial(best_state)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def fit(cfg: TrainConfig, ctx, model: nn.Module, n_train: int,
        step_loss: Callable[[list[int], np.random.Generator], torch.Tensor],
        validate: Callable[[], dict[str, float]], metric: str, higher_is_better: bool, device: torch.device,
        set_train_mode: Callable[[], None] | None = None) -> FitResult:
    """step_loss(indices, rng) returns the loss of one batch; validate() returns {name: value} incl. `metric`."""
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    batch = min(cfg.batch_size, n_train)
    planned = cfg.epochs * math.ceil(n_train / batch)  # the schedule's length (more steps if the batch halves)
    budget = cfg.max_steps or math.inf
    total_steps = min(planned, budget)
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
    schedule = make_schedule(cfg.schedule, optimizer, min(planned, budget))
    memory = PeakMemory(device)
    start = time.perf_counter()
    best = {"value": -math.inf if higher_is_better else math.inf, "epoch": -1, "state": _cpu_state(model), "t": 0.0}
    history, epoch_times, steps, halvings, since_best = [], [], 0, 0, 0
    epoch = 0
    for epoch in range(cfg.epochs):
        (set_train_mode or model.train)()
        t0 = time.perf_counter()
        order = rng.permutation(n_train)
        losses, i = [], 0
        try:
            while i < n_train:
                idx = order[i:i + batch].tolist()
                try:
                    inject_fault(len(idx))
                    optimizer.zero_grad(set_to_none=True)
                    loss = step_loss(idx, rng)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"the loss became {loss.item()} at step {steps}; lower the learning rate")
                    loss.backward()
                    optimizer.step()
                    if steps < min(planned, budget):
                        schedule.step()
                except Exception as exc:
                    batch, halvings = _halved(exc, batch, ctx, device), halvings + 1
                    continue
                losses.append(float(loss.detach()))
                steps += 1
                i += len(idx)
                memory.sample()
                done = done_fraction(cfg, epoch + i / n_train, steps, total_steps)
                ctx.progress(min(1.0, done), f"epoch {epoch + 1}/{cfg.epochs}, {step_text(steps, total_steps)}, "
                                             f"loss {np.mean(losses):.4f}, peak memory {memory.peak:.0f} MB on {device}")
                if steps >= budget:
                    raise Budget
        except Budget:
            pass
        ctx.progress(min(1.0, done_fraction(cfg, epoch + 1, steps, total_steps)),
                     f"epoch {epoch + 1}/{cfg.epochs}: validating", force=True)
        model.eval()
        with torch.inference_mode():
            val = validate()
        elapsed = time.perf_counter() - t0
        epoch_times.append(elapsed)
        value = val[metric]
        improved = value > best["value"] if higher_is_better else value < best["value"]
        if improved or best["epoch"] < 0 or value == best["value"]:
            # a tie keeps the later, longer-trained weights (a saturated metric, e.g. 100% validation accuracy,
            # must not freeze the first epoch that reached it); patience counts only real improvements
            best = {"value": value, "epoch": epoch, "state": _cpu_state(model), "t": time.perf_counter() - start}
        since_best = 0 if improved else since_best + 1
        row = {"train_loss": float(np.mean(losses)) if losses else None, **val, "lr": optimizer.param_groups[0]["lr"],
               "epoch_time_s": elapsed, "peak_mem_mb": memory.sample(), "batch_size": batch}
        _record_epoch(ctx, history, epoch, steps, row, best["state"])
        if steps >= budget:
            break
        if cfg.patience is not None and since_best >= cfg.patience:
            ctx.log(f"early stop: no better {metric} for {count(cfg.patience, 'epoch')}")
            break
    return FitResult(best["state"], best["epoch"] + 1, float(best["value"]), metric, len(history), steps, best["t"],
                     float(np.mean(epoch_times)) if epoch_times else 0.0, memory.peak, batch, halvings, history)


def fit_gan(cfg: TrainConfig, ctx, generator: nn.Module, discriminator: nn.Module, real: torch.Tensor,
            labels: torch.Tensor | None, evaluate: Callable[[], dict[str, float]], device: torch.device) -> FitResult:
    """Non-saturating GAN loss (BCE), Adam betas (0.5, 0.999) as in DCGAN unless another optimizer is chosen;
    FD (or FID) of generated samples after every epoch is the validation metric (lower is better)."""
    import torch.nn.functional as F

    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    n = len(real)
    batch = min(cfg.batch_size, n)
    budget = cfg.max_steps or math.inf
    total_steps = min(cfg.epochs * math.ceil(n / batch), budget)

    def opt(params):
        if cfg.optimizer == "adam":
            return torch.optim.Adam([p for p in params if p.requires_grad], lr=cfg.lr, betas=(0.5, 0.999),
                                    weight_decay=cfg.weight_decay)
        return make_optimizer(cfg.optimizer, params, cfg.lr, cfg.momentum, cfg.weight_decay)

    opt_g, opt_d = opt(generator.parameters()), opt(discriminator.parameters())
    memory = PeakMemory(device)
    start = time.perf_counter()
    best = {"value": math.inf, "epoch": -1, "state": _cpu_state(generator), "t": 0.0}
    history, epoch_times, steps, halvings = [], [], 0, 0
    nz = generator.nz
    metric = "fd"
    for epoch in range(cfg.epochs):
        generator.train()
        discriminator.train()
        t0 = time.perf_counter()
        order = rng.permutation(n)
        d_losses, g_losses, i = [], [], 0
        while i < n and steps < budget:
            idx = torch.as_tensor(order[i:i + batch])
            try:
                inject_fault(len(idx))
                x = real[idx].to(device)
                y = labels[idx].to(device) if labels is not None else None
                z = torch.randn(len(idx), nz, device=device)
                if y is not None:
                    z = torch.cat([z, y[:, None].float()], 1)
                fake = generator(z)
                ones, zeros = torch.ones(len(idx), device=device), torch.zeros(len(idx), device=device)
                opt_d.zero_grad(set_to_none=True)
                d_loss = (F.binary_cross_entropy_with_logits(discriminator(x, y), ones)
                          + F.binary_cross_entropy_with_logits(discriminator(fake.detach(), y), zeros))
                d_loss.backward()
                opt_d.step()
                opt_g.zero_grad(set_to_none=True)
                g_loss = F.binary_cross_entropy_with_logits(discriminator(fake, y), ones)
                g_loss.backward()
                opt_g.step()
            except Exception as exc:
                batch, halvings = _halved(exc, batch, ctx, device), halvings + 1
                continue
            d_losses.append(float(d_loss.detach()))
            g_losses.append(float(g_loss.detach()))
            steps += 1
            i += len(idx)
            memory.sample()
            done = done_fraction(cfg, epoch + i / n, steps, total_steps)
            ctx.progress(min(1.0, done), f"epoch {epoch + 1}/{cfg.epochs}, {step_text(steps, total_steps)}, "
                                         f"peak memory {memory.peak:.0f} MB on {device}")
        ctx.progress(min(1.0, done_fraction(cfg, epoch + 1, steps, total_steps)),
                     f"epoch {epoch + 1}/{cfg.epochs}: scoring generated samples", force=True)
        generator.eval()
        with torch.inference_mode():
            val = evaluate()
        elapsed = time.perf_counter() - t0
        epoch_times.append(elapsed)
        metric, value = next(iter(val.items()))
        if value < best["value"]:
            best = {"value": value, "epoch": epoch, "state": _cpu_state(generator), "t": time.perf_counter() - start}
        row = {"d_loss": float(np.mean(d_losses)) if d_losses else None,
               "g_loss": float(np.mean(g_losses)) if g_losses else None, **val, "epoch_time_s": elapsed,
               "peak_mem_mb": memory.sample(), "batch_size": batch}
        _record_epoch(ctx, history, epoch, steps, row, best["state"])
        if steps >= budget:
            break
    return FitResult(best["state"], best["epoch"] + 1, float(best["value"]), metric, len(history), steps, best["t"],
                     float(np.mean(epoch_times)) if epoch_times else 0.0, memory.peak, batch, halvings, history)
