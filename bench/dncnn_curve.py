"""Why DnCNN trained badly, shown as validation curves: its old initialisation vs the PyTorch DnCNN code's one.

    python -m bench.dncnn_curve [--epochs 4] [--train-size 800] [--batch 16] [--patch 32] [--threads 1]

All variants train with the same data, seed, optimiser and budget through the Fine-tune training code
(core.tasks.restoration's training step through core.training.run.train) and print the validation PSNR after every epoch:
- "before": DnCNN as it was: PyTorch's default initialisation (BatchNorm scale 1; the last conv adds a random
  offset of about 0.3 to every pixel) and the [0, 1] clamp in training too, so clipped pixels had no gradient;
- "zero last layer": He initialisation, a zero last conv (the untrained net is the identity), no clamp in
  training: it starts at the noisy input's PSNR but stays there, because no gradient reaches the stack below a
  zero layer and BatchNorm scales of 1 make the deep stack's features a poor basis for the noise at first;
- "after": core.models.small_nets.DnCNN, the PyTorch DnCNN code's initialisation (He-normal convs, BatchNorm scales
  N(0, 2/(9*64)) clipped to +-0.025): the residual starts small but every layer learns from the first step.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn

from core.jobs.context import LocalContext
from core.metrics.image_quality import psnr
from core.models.registry import register_model, unregister_model
from core.models.small_nets import DnCNN
from core.models.weights import seeded_init
from core.models.registry import WeightsInfo
from core.tasks import training_sets as train_data
from core.tasks.train_config import TrainConfig
from core.training.run import train


class DnCNNBefore(DnCNN):
    """The previous DnCNN: default init everywhere and the clamp applied in training as well."""

    def __init__(self):
        super().__init__()
        for m in self.body:
            if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)):
                m.reset_parameters()

    def forward(self, x):
        return (x - self.body(x)).clamp(0, 1)


class DnCNNZeroLast(DnCNN):
    """He init, BatchNorm scale 1, a zero last conv: identity at the start (the first fix tried)."""

    def __init__(self):
        super().__init__()
        for m in self.body:
            if isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)


def _register(name: str, factory) -> None:
    unregister_model(name)
    register_model(name, task="restoration", source="small-net", operation="denoise", title=name)(
        lambda pretrained: (seeded_init(factory), WeightsInfo("random", None, "random init (seed 0)")))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--train-size", type=int, default=800)
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    curves, times = {}, {}
    variants = (("before", DnCNNBefore), ("zero last layer", DnCNNZeroLast), ("after", DnCNN))
    for label, factory in variants:
        name = "dncnn_curve_" + label.replace(" ", "_")
        _register(name, factory)
        cfg = TrainConfig.from_dict({"base": name, "dataset": "patches", "pretrained": False, "epochs": args.epochs,
                                     "batch_size": args.batch, "lr": args.lr, "patch": args.patch,
                                     "train_size": args.train_size, "seed": 0})
        td = train_data.restoration(cfg, "denoise", None)
        t0 = time.perf_counter()
        ctx = LocalContext(echo=lambda line, label=label: print(f"{label}: {line}", flush=True)
                           if line.startswith("epoch") else None)
        _, result, _ = train(cfg, ctx, td, torch.device("cpu"))
        times[label] = time.perf_counter() - t0
        curves[label] = [row["val_psnr"] for row in result.history]
        unregister_model(name)
    # the noisy validation input's own PSNR (same fixed noise as the restoration training step draws)
    from core.tasks.restoration import to_tensor

    val_clean = torch.stack([to_tensor(x) for x in td.val.targets])
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    val_in = (val_clean * 255 + torch.randn(val_clean.shape, generator=gen) * cfg.noise_sigma).round().clamp(0, 255) / 255
    noisy = float(psnr(val_in * 255, val_clean * 255).mean())
    steps = args.epochs * -(-args.train_size // args.batch)
    print(f"\nDnCNN, sigma 25, {args.train_size} patches of {args.patch} px, batch {args.batch}, Adam {args.lr}, "
          f"{steps} steps; noisy validation input: {noisy:.2f} dB\n")
    labels = [label for label, _ in variants]
    print("| steps | " + " | ".join(f"{label}: val PSNR (dB)" for label in labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    per_epoch = steps // args.epochs
    for e in range(args.epochs):
        print(f"| {(e + 1) * per_epoch} | " + " | ".join(f"{curves[label][e]:.2f}" for label in labels) + " |")
    print("\ngain over the noisy input after the last epoch: " + ", ".join(
        f"{label} {curves[label][-1] - noisy:+.2f} dB ({times[label]:.0f} s)" for label in labels))


if __name__ == "__main__":
    main()
