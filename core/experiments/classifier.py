"""The classifier runs the experiments repeat: one model, a labelled subset, a fixed step budget, test accuracy.

Written here rather than through the Fine-tune loop (core.training.loops.fit): a label-efficiency study has no
validation labels to pick a best epoch with (1% of the digits is 14 images), so every run trains for the same
fixed number of steps and is scored once at the end, on the held-out test set only. Inputs are prepared once,
as the model's own preprocessing does (core.tasks.inputs.prepare), and kept on the device; the light
augmentation (random shifts of up to 2 px) runs there too, batched.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from core.errors import InvalidInput
from core.models.registry import get_spec
from core.tasks.inputs import prepare


@dataclass(frozen=True)
class Budget:
    steps: int = 300
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4

    def validate(self) -> None:
        if not (1 <= self.steps <= 20_000 and 1 <= self.batch_size <= 512 and 0 < self.lr <= 1.0):
            raise InvalidInput("Fine-tuning takes 1-20000 steps, batches of 1-512 and a learning rate in (0, 1].")

    def words(self) -> str:
        return (f"{self.steps} steps of batch {self.batch_size}, Adam lr {self.lr:g} with cosine decay, weight decay "
                f"{self.weight_decay:g}, shifts of up to 2 px")


def model_inputs(name: str, module: nn.Module, images: list[np.ndarray], size: int | None = None) -> torch.Tensor:
    """(N, 3, H, W) float32: the images as model `name` takes them (its preprocessing), at `size` px when given."""
    spec = get_spec(name)
    out = []
    for i in range(0, len(images), 256):
        tensors, _ = prepare(spec, module, images[i:i + 256], size)
        out.append(torch.stack(tensors))
    return torch.cat(out)


def random_affine(x: torch.Tensor, generator: torch.Generator, shift: float = 0.0, scale: tuple[float, float] = (1.0, 1.0),
                  degrees: float = 0.0) -> torch.Tensor:
    """Each image of the batch moved by its own random shift (px), rotation (degrees) and crop-and-zoom: a centred
    window of `scale` (fraction of the side, e.g. 0.6 to 1.0) stretched back to the full size. On x's device."""
    n, _, h, w = x.shape
    r = torch.rand(n, 4, generator=generator, device=generator.device).to(x.device)
    angle = (r[:, 0] * 2 - 1) * degrees * torch.pi / 180
    s = scale[0] + (scale[1] - scale[0]) * r[:, 1]  # the grid reads input at s times the output's coordinates
    tx, ty = (r[:, 2] * 2 - 1) * shift * 2 / w, (r[:, 3] * 2 - 1) * shift * 2 / h
    theta = torch.stack([torch.stack([s * torch.cos(angle), -s * torch.sin(angle), tx], 1),
                         torch.stack([s * torch.sin(angle), s * torch.cos(angle), ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def train(module: nn.Module, x: torch.Tensor, y: torch.Tensor, budget: Budget, seed: int, device: torch.device,
          check: Callable[[int], None] | None = None) -> nn.Module:
    """Adam with cosine decay for `budget.steps` steps on (x, y), batches drawn at random; `check(step)` is called
    every step (a job's progress, which raises when the job is cancelled). Returns the module in eval mode."""
    module.to(device).train()
    x, y = x.to(device), y.to(device)
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=budget.lr,
                           weight_decay=budget.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, budget.steps)
    gen = torch.Generator(device=device).manual_seed(seed)
    batch = min(budget.batch_size, len(x))
    for step in range(budget.steps):
        idx = torch.randint(len(x), (batch,), generator=gen, device=device)
        loss = F.cross_entropy(module(random_affine(x[idx], gen, shift=2.0)), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if check is not None:
            check(step)
    return module.eval()


@torch.inference_mode()
def accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    """Top-1 accuracy (%) on (x, y)."""
    if not len(x):
        raise InvalidInput("There are no test images to score on.")
    module.eval()
    correct = 0
    for i in range(0, len(x), 256):
        correct += int((module(x[i:i + 256].to(device)).argmax(1).cpu() == y[i:i + 256]).sum())
    return 100.0 * correct / max(1, len(x))
