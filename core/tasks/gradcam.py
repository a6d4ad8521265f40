"""Grad-CAM (Selvaraju et al. 2017) for classifiers: which regions raised the score of a class."""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# Anchor colours of a perceptual "inferno"-like map, interpolated linearly.
_CMAP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float64)


def last_conv(module: nn.Module) -> nn.Module:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("Grad-CAM needs a convolutional layer; this model has none")
    return convs[-1]


def grad_cam(module: nn.Module, x: torch.Tensor, class_index: int, layer: nn.Module | None = None) -> np.ndarray:
    """Heat map in [0, 1] at the input's resolution, for one image `x` (1xCxHxW). Works on a private copy
    of the module, so a model shared with other sessions never carries hooks."""
    model = copy.deepcopy(module).eval()
    target = layer if layer is not None else last_conv(model)
    saved: dict[str, torch.Tensor] = {}

    def keep(_m, _inp, out):
        saved["act"] = out
        out.register_hook(lambda g: saved.__setitem__("grad", g))

    handle = target.register_forward_hook(keep)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            x = x.clone().to(next(model.parameters()).device)
            score = model(x)[0, class_index]
            score.backward()
    finally:
        handle.remove()
    act, grad = saved["act"].detach(), saved["grad"].detach()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0].float().cpu()
    peak = float(cam.max())
    return (cam / peak).numpy() if peak > 0 else cam.numpy()


def colorize(heat: np.ndarray) -> np.ndarray:
    pos = np.clip(heat, 0, 1) * (len(_CMAP) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_CMAP) - 2)
    frac = (pos - lo)[..., None]
    return (_CMAP[lo] * (1 - frac) + _CMAP[lo + 1] * frac).astype(np.uint8)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    return np.clip((1 - alpha) * image + alpha * colorize(heat), 0, 255).astype(np.uint8)


def unnormalize(t: torch.Tensor, mean, std) -> np.ndarray:
    """A normalised CHW model input back to the HxWx3 uint8 view the model saw."""
    m = torch.tensor(mean).view(3, 1, 1)
    s = torch.tensor(std).view(3, 1, 1)
    return (t * s + m).clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
