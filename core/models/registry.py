"""The model zoo's front door: `get_spec(name)`, `list_models(task)`, `create(name)`, and setting a model's weights
file. Importing it imports every adapter module (their `@register_model` decorators fill core.models.spec's
table) and matches the stored checkpoints.

A builder takes `pretrained: bool` and returns `(module, WeightsInfo)`; it raises WeightsUnavailable when
real weights cannot be found, so random weights are only ever used when the caller asked for them.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

import torch.nn as nn

from core.errors import InvalidInput, ModelNotFound
# the adapters register their models when imported; variants last, as they derive from models registered before
from core.models import (checkpoints, classical, classifiers, face_mtcnn, ffdnet, grid_detector,  # noqa: F401
                         shapes_detector, torchvision_models, trainable, weight_paths)
from core.models import variants  # noqa: F401,I001
from core.models.spec import (_LOCK, _REGISTRY, Availability, ModelSpec, WeightsInfo, WeightsStatus,  # noqa: F401 (re-exported)
                              register_model, unregister_model)


def _ensure_loaded(refresh: bool = False) -> None:
    """Match the stored checkpoints: when the data folder changed since the last match; `refresh` re-reads the
    folder listing (for listings, which must show what another process stored or deleted). A lookup of a
    registered model never lists the folder."""
    checkpoints.sync(only_if_moved=not refresh)


def get_spec(name: str) -> ModelSpec:
    _ensure_loaded()
    spec = _REGISTRY.get(name)
    if spec is None:  # a checkpoint another process (a training job) stored since: one listing, then give up
        _ensure_loaded(refresh=True)
        spec = _REGISTRY.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ModelNotFound(f"No model named {name!r} is registered.{hint}")
    return spec


def list_models(task: str | None = None, operation: str | None = None) -> list[ModelSpec]:
    _ensure_loaded(refresh=True)
    with _LOCK:  # checkpoints may be registered from another session meanwhile
        specs = [s for s in _REGISTRY.values() if task is None or s.task == task]
    if operation is not None:
        specs = [s for s in specs if s.operation == operation]
    return sorted(specs, key=lambda s: s.name)


def create(name: str, weights: Literal["pretrained", "random"] = "pretrained") -> tuple[nn.Module, WeightsInfo]:
    """Build model `name` in eval mode. weights="random" gives an explicitly untrained model."""
    if weights not in ("pretrained", "random"):
        raise InvalidInput(f"weights must be 'pretrained' or 'random', got {weights!r}.")
    spec = get_spec(name)
    module, info = spec.builder(weights == "pretrained")
    return module.eval(), info


def set_weights_file(name: str, raw: str, owner: str | None = None) -> Path:
    """Point model `name` at a weight file (core.models.weight_paths checks where it lies); it is kept only if
    the model then loads from it."""
    spec = get_spec(name)
    if spec.source in ("classical", "checkpoint") or spec.base is not None:
        raise InvalidInput(f"{name} does not take a weights file.")
    return weight_paths.set_path(name, raw, owner, verify=lambda: create(name, "pretrained"))
