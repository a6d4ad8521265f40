"""Model registry: `@register_model` records a builder and its metadata; `create(name)` builds it.

A builder takes `pretrained: bool` and returns `(module, WeightsInfo)`; it raises WeightsUnavailable when
real weights cannot be found, so random weights are only ever used when the caller asked for them.
"""
from __future__ import annotations

import difflib
import threading
from dataclasses import dataclass, field
from typing import Literal
from collections.abc import Callable

import torch.nn as nn

from core.errors import DuplicateModel, InvalidInput, ModelNotFound
from core.models.reference import ORIGIN

WeightsStatus = Literal["pretrained", "random", "parameter-free"]


@dataclass(frozen=True)
class WeightsInfo:
    status: WeightsStatus
    sha256: str | None  # hash of the weight file (None for random init / parameter-free)
    origin: str  # where they came from, e.g. a file path or "random init (seed 0)"

    @property
    def trained(self) -> bool:
        return self.status != "random"

    @property
    def label(self) -> str:
        """Where the weights come from, in a student's words (tables and captions)."""
        if self.status == "random":
            return "untrained (random weights)"
        if self.status == "parameter-free":
            return "none (classical method)"
        return ORIGIN if self.origin.startswith(ORIGIN) else "pretrained"


@dataclass(frozen=True)
class Availability:
    """Whether pretrained weights can be had without network, and what to do if not."""

    status: Literal["available", "missing", "parameter-free"]
    detail: str


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    source: str  # "timm", "bundled", "classical", ...
    builder: Callable[[bool], tuple[nn.Module, WeightsInfo]] = field(repr=False, compare=False)
    title: str = ""
    description: str = ""
    input_size: tuple[int, int, int] | None = None  # (C, H, W) the model was trained at
    labels: str | None = None  # label set name, e.g. "imagenet-1k"
    categories: tuple[str, ...] | None = None  # class names by index (detection, segmentation)
    weights: str = ""  # how the weights are obtained, in words
    operation: str | None = None  # restoration: denoise | deblur | super-resolution; segmentation: semantic | instance
    scale: int | None = None  # super-resolution factor
    amp: bool = True  # autocast on CUDA is safe for this model
    input_norm: str = "unit"  # "unit": [0, 1] RGB tensors; "imagenet": mean/std normalised (timm has its own)
    latent_dim: int | None = None  # generation: size of the latent vector
    num_classes: int | None = None  # conditional generation: number of labels
    cpu_only: bool = False  # e.g. dynamic int8 kernels
    base: str | None = None  # the registered model a variant or checkpoint derives from
    availability: Callable[[], Availability] | None = field(default=None, repr=False, compare=False)
    license: str | None = None
    trainable: bool | None = None  # Fine-tune: True/False overrides the task's default rule (None)
    # restoration: the model takes the noise level as an input; callers append a 4th channel of sigma/255
    noise_level_input: bool = False

    def check_weights(self) -> Availability:
        if self.availability is None:
            return Availability("parameter-free", "No learned weights: a classical algorithm.")
        return self.availability()


_REGISTRY: dict[str, ModelSpec] = {}
_LOCK = threading.Lock()


def register_model(name: str, *, task: str, source: str, **meta) -> Callable:
    """Decorator registering `builder(pretrained: bool) -> (module, WeightsInfo)` under `name`."""
    if not task:  # the task registry (core.tasks) knows the names; tests check every model's task is one of them
        raise ValueError(f"model {name!r} needs a task")

    def wrap(builder: Callable[[bool], tuple[nn.Module, WeightsInfo]]):
        spec = ModelSpec(name=name, task=task, source=source, builder=builder, **meta)
        with _LOCK:
            if name in _REGISTRY:
                raise DuplicateModel(f"A model named {name!r} is already registered.")
            _REGISTRY[name] = spec
        return builder

    return wrap


def unregister_model(name: str) -> None:
    with _LOCK:
        _REGISTRY.pop(name, None)


_LOAD_LOCK = threading.RLock()
_checkpoints = None  # the checkpoints module, once the adapters are loaded
_loading = False


def _ensure_loaded(refresh: bool = False) -> None:
    """Load the adapter modules once (importing them runs their @register_model decorators) and match the stored
    checkpoints: at start-up and whenever the data folder changed; `refresh` re-reads the folder listing (for
    listings, which must show what another process stored or deleted). A lookup never lists the folder."""
    global _checkpoints, _loading
    if _checkpoints is None:
        with _LOAD_LOCK:
            if _checkpoints is None:
                if _loading:  # an adapter module looks up a model it derives from while the adapters load
                    return
                _loading = True
                try:
                    from core.models import (checkpoints, classical, classifiers, face_mtcnn, ffdnet,  # noqa: F401
                                             shapes_detector, torchvision_models, trainable, variants)
                finally:
                    _loading = False
                _checkpoints = checkpoints
    _checkpoints.sync(only_if_moved=not refresh)


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
