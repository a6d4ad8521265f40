"""How images become a model's inputs, chosen by the model's declared `preprocessing` (core.models.spec): the one
place that choice is made, for benchmarks, training, the Playground and the viewer alike."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from core.errors import InvalidInput
from core.models.spec import ModelSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def images_in_unit_range(img: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float32 in [0, 1] (a copy: inputs may be read-only arrays)."""
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)


def imagenet_normalized(img: np.ndarray) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return (images_in_unit_range(img) - mean) / std


def data_config(module: nn.Module, input_size: tuple[int, int, int] | None = None) -> dict:
    """resize/crop/interpolation/mean/std as timm resolves them (from the model's pretrained_cfg, or for
    other models from their registered input size, whole image, ImageNet statistics); stored with top-k."""
    from timm.data import resolve_data_config, resolve_model_data_config

    if getattr(module, "pretrained_cfg", None):
        cfg = resolve_model_data_config(module)
    else:
        cfg = resolve_data_config({"input_size": input_size or (3, 224, 224), "crop_pct": 1.0,
                                   "interpolation": "bilinear"}, model=module)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}


def prepare(spec: ModelSpec, module: nn.Module, images: list[np.ndarray],
            size: int | None = None) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """uint8 HxWx3 images as the tensors the model takes, and the settings used (stored with a run). `size`: a timm
    model gets the image resized (shorter side) and centre-cropped to size x size, with no crop margin, instead of
    its pretraining resolution (its normalisation kept): a CNN fine-tuned on small images at a lower cost."""
    if spec.preprocessing == "timm":
        from timm.data import create_transform

        cfg = data_config(module, spec.input_size)
        if size is not None:
            cfg |= {"input_size": [3, size, size], "crop_pct": 1.0}
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
        transform = create_transform(**kwargs)
        return [transform(Image.fromarray(img)) for img in images], cfg
    if spec.preprocessing == "imagenet":
        return [imagenet_normalized(img) for img in images], {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    if spec.preprocessing == "unit":
        return [images_in_unit_range(img) for img in images], {"range": [0, 1]}
    raise InvalidInput(f"{spec.title or spec.name} takes latent vectors, not images.")


def model_input(spec: ModelSpec, img: np.ndarray) -> torch.Tensor:
    """One image as `spec`'s model takes it, for the models that need no module to decide (all but timm's)."""
    if spec.preprocessing == "timm":
        raise ValueError("a timm model's input depends on its module: use prepare()")
    return prepare(spec, nn.Identity(), [img])[0][0]
