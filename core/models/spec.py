"""What a registered model is (ModelSpec, WeightsInfo, Availability) and the table `@register_model` writes to.

The adapter modules import this module to register their models; core.models.registry imports the adapters and
is where the rest of the code looks models up (get_spec, list_models, create).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal
from collections.abc import Callable

import torch.nn as nn

from core.errors import DuplicateModel, ModelNotFound
from core.models.reference import ORIGIN

# "unit": [0, 1] RGB tensors (detectors and small nets normalise themselves); "imagenet": mean/std normalised
# (torchvision's semantic segmenters); "timm": the model's own timm data config (resize, crop, normalise);
# "latent": a generator, which takes latent vectors rather than images
Preprocessing = Literal["unit", "imagenet", "timm", "latent"]
PREPROCESSINGS: tuple[str, ...] = ("unit", "imagenet", "timm", "latent")

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
    preprocessing: Preprocessing = "unit"  # how images become its inputs (core.tasks.inputs.prepare)
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

    if meta.get("preprocessing", "unit") not in PREPROCESSINGS:
        raise ValueError(f"model {name!r}: preprocessing must be one of {', '.join(PREPROCESSINGS)}")

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


def registered(name: str) -> ModelSpec:
    """The spec registered as `name` (no checkpoint sync: for the adapters and checkpoints themselves)."""
    spec = _REGISTRY.get(name)
    if spec is None:
        raise ModelNotFound(f"No model named {name!r} is registered.")
    return spec


def registered_names() -> set[str]:
    with _LOCK:
        return set(_REGISTRY)
