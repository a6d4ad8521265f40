"""A Fine-tune job's training step vs a bare PyTorch loop doing the same step (target: job/bare <= 1.10).

    python -m bench.train_step [--batches 16 64] [--patch 40] [--steps 12] [--repeats 2] [--threads 2]

DnCNN denoising at sigma 25 on photo patches, Adam, fresh noise for every batch, per device (the CPU, and the GPU
when there is one). The job side is core.tasks.restoration's training step through core.training.loops.fit (the
loop every task runs: progress, curves, the out-of-memory guard, the schedule), timed without its validation. The
bare side: the same model and data already on the device, x = round(y*255 + N(0, 25^2))/255, MSE loss, Adam,
nothing else. Both run the same number of steps, interleaved, best of --repeats.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from core.engine import Engine
from core.jobs.context import LocalContext
from core.tasks import get_task
from core.tasks import training_sets
from core.tasks.restoration import to_tensor
from core.tasks.train_config import TrainConfig
from core.training.loops import fit


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def job_seconds(cfg: TrainConfig, td, device: torch.device) -> float:
    """Seconds of the job loop's training steps (its validation subtracted)."""
    plan = get_task("restoration").train_plan(cfg, td, device, Engine(str(device)), lambda message: None)
    spent = [0.0]
    validate = plan.validate

    def timed_validate():
        _sync(device)
        t0 = time.perf_counter()
        out = validate()
        _sync(device)
        spent[0] += time.perf_counter() - t0
        return out

    plan.validate = timed_validate
    _sync(device)
    start = time.perf_counter()
    fit(cfg, LocalContext(), plan, device)
    _sync(device)
    return time.perf_counter() - start - spent[0]


def bare_seconds(cfg: TrainConfig, td, device: torch.device) -> float:
    from core.tasks.fitting import trainable_model

    _, model, train_mode = trainable_model(cfg, None, device)
    train_mode()
    clean = torch.stack([to_tensor(x) for x in td.train.targets]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator(device=device).manual_seed(0)
    _sync(device)
    start = time.perf_counter()
    for _ in range(cfg.max_steps or 0):
        y = clean[torch.randint(len(clean), (cfg.batch_size,), device=device, generator=gen)]
        x = (y * 255 + torch.randn(y.shape, device=device, generator=gen) * cfg.noise_sigma).round().clamp(0, 255) / 255
        loss = F.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--patch", type=int, default=40)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        for batch in args.batches:
            # one epoch of exactly --steps steps, so the job validates once (subtracted)
            cfg = TrainConfig.from_dict({"base": "dncnn", "dataset": "patches", "pretrained": False, "epochs": 1,
                                         "max_steps": args.steps, "batch_size": batch, "lr": 1e-3, "patch": args.patch,
                                         "train_size": batch * args.steps, "seed": 0, "augment": ["flip"]})
            td = training_sets.restoration(cfg, "denoise", None)
            job, bare = float("inf"), float("inf")
            for _ in range(args.repeats + 1):  # the first round warms both (allocator, kernels)
                job, bare = min(job, job_seconds(cfg, td, device)), min(bare, bare_seconds(cfg, td, device))
            print(f"{device.type}, DnCNN batch {batch}, {args.patch} px, {args.steps} steps: job loop "
                  f"{job / args.steps * 1000:.1f} ms/step, bare loop {bare / args.steps * 1000:.1f} ms/step; "
                  f"job/bare {job / bare:.3f}", flush=True)


if __name__ == "__main__":
    main()
