"""Optimisers and learning-rate schedules by name (the choices the Fine-tune page offers)."""
from __future__ import annotations

import torch

from core.errors import InvalidInput


def make_optimizer(name: str, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """weight_decay is L2 added to the gradient for SGD/Adam/Adagrad/RMSprop and decoupled for AdamW."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise InvalidInput("Nothing to train: every parameter is frozen.")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise InvalidInput(f"Unknown optimizer {name!r}.")


def make_schedule(name: str, optimizer: torch.optim.Optimizer, total_steps: int):
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    if name == "step":  # x0.1 at 2/3 of the run
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, int(total_steps * 2 / 3)), gamma=0.1)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    raise InvalidInput(f"Unknown schedule {name!r}.")
