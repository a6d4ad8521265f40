"""Pieces the tasks' training steps share: the base model with a head for the training set's classes, a frozen
backbone, and augmented batches."""
from __future__ import annotations

from typing import TYPE_CHECKING
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn

from core.data.augment import augment
from core.errors import InvalidInput
from core.models import heads
from core.models.registry import ModelSpec, create, get_spec

if TYPE_CHECKING:
    from core.tasks.train_config import TrainConfig


def build_model(cfg: TrainConfig, categories: tuple[str, ...] | None) -> tuple[nn.Module, bool]:
    """The base model (pretrained weights or from scratch), with a head for the dataset's classes.
    Returns (module, head_replaced)."""
    spec = get_spec(cfg.base)
    module, _ = create(cfg.base, weights="pretrained" if cfg.pretrained else "random")
    replaced = False
    if categories is not None and tuple(categories) != tuple(spec.categories or ()):
        heads.set_num_classes(module, len(categories))
        replaced = True
    if cfg.dropout is not None and heads.set_dropout(module, cfg.dropout) == 0:
        raise InvalidInput(f"{cfg.base} has no dropout to set.")
    return module, replaced


def trainable_model(cfg: TrainConfig, categories: tuple[str, ...] | None,
                    device: torch.device) -> tuple[ModelSpec, nn.Module, Callable[[], object]]:
    """The base model's spec, the model to train (a head for `categories`, on `device`) and its train-mode setter
    (a frozen backbone when the config asks for one)."""
    model, _ = build_model(cfg, categories)
    model.to(device)
    return get_spec(cfg.base), model, freeze(model, cfg.freeze_backbone)


def freeze(module: nn.Module, frozen: bool) -> Callable[[], object]:
    """Returns the train-mode setter: with a frozen backbone only the head trains (BatchNorm stats fixed too)."""
    if not frozen:
        for p in module.parameters():
            p.requires_grad = True
        return module.train
    head = heads.classifier_parameters(module)
    head_ids = {id(p) for p in head}
    for p in module.parameters():
        p.requires_grad = id(p) in head_ids
    head_modules = [m for m in module.modules() if any(id(p) in head_ids for p in m.parameters(recurse=False))]

    def train_mode() -> None:
        module.eval()
        for m in head_modules:
            m.train()
    return train_mode


def augmented(images: list[np.ndarray], idx: list[int], presets: list[str], rng: np.random.Generator,
              masks: list[np.ndarray] | None = None) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """The batch `idx` of `images` through the augmentation presets (masks get the same geometric transforms)."""
    out, out_masks = [], []
    for i in idx:
        img, m = augment(images[i], presets, rng, masks[i] if masks is not None else None)
        out.append(img)
        out_masks.append(m)
    return out, out_masks
