"""PSNR and SSIM following the field's conventions (see DESIGN.md, "Metric conventions").

Functional, batched torch code (PSNR in float64, SSIM's filtering in float32) so one implementation serves the
Playground and benchmarks on any device. Inputs are NxCxHxW (or HxWxC uint8 arrays through the numpy helpers) on the `data_range`
scale. Checked against skimage.metrics in tests.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.errors import InvalidInput


@dataclass(frozen=True)
class Convention:
    """How a PSNR/SSIM value was computed; `str()` is what the store keeps beside the number."""

    data_range: float = 255.0
    channel: str = "rgb"  # "rgb" or "y" (BasicSR: Y of limited-range YCbCr)
    crop_border: int = 0

    def __str__(self) -> str:
        return f"{self.channel},range={self.data_range:g},crop={self.crop_border}"


RGB = Convention()


def _prepare(pred: torch.Tensor, target: torch.Tensor, conv: Convention) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape:
        raise InvalidInput(f"Image sizes differ: {tuple(pred.shape)} vs {tuple(target.shape)}; metrics need equal sizes.")
    if pred.ndim == 3:
        pred, target = pred[None], target[None]
    pred, target = pred.to(torch.float64), target.to(torch.float64)
    if conv.channel == "y":
        pred, target = rgb_to_y(pred, conv.data_range), rgb_to_y(target, conv.data_range)
    elif conv.channel != "rgb":
        raise InvalidInput(f"Unknown channel convention {conv.channel!r}.")
    c = conv.crop_border
    if c:
        if min(pred.shape[-2:]) <= 2 * c:
            raise InvalidInput(f"Image too small for crop_border={c}.")
        pred, target = pred[..., c:-c, c:-c], target[..., c:-c, c:-c]
    return pred, target


def rgb_to_y(x: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """BasicSR's Y channel: Y = 16 + 65.481 R + 128.553 G + 24.966 B on 0-1 RGB, returned on 0-255 scale
    (so the result uses the same data_range as the input)."""
    rgb = x / data_range
    y = 16.0 + 65.481 * rgb[:, 0] + 128.553 * rgb[:, 1] + 24.966 * rgb[:, 2]
    return (y / 255.0 * data_range)[:, None]


def psnr(pred: torch.Tensor, target: torch.Tensor, conv: Convention = RGB) -> torch.Tensor:
    """Per-image PSNR (shape N), 10*log10(R^2/MSE) in float64; +inf where the images are identical."""
    p, t = _prepare(pred, target, conv)
    mse = ((p - t) ** 2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(conv.data_range**2 / mse)  # mse 0 -> +inf


def _gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, conv: Convention = RGB, win_size: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004): Gaussian window 11/1.5, valid filtering, mean of the map,
    channels averaged. Equals skimage's structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=R)."""
    p, t = _prepare(pred, target, conv)
    n, c, h, w = p.shape
    if min(h, w) < win_size:
        raise InvalidInput(f"Images must be at least {win_size}x{win_size} for SSIM, got {w}x{h}.")
    # float32, five filtered maps in one separable grouped convolution: 4x faster than scikit-image on the CPU and
    # equal to it within ~1e-6 (values shifted to be centred on 0 first: variances and covariance do not change,
    # and the smaller magnitudes keep float32's cancellation in E[x^2] - E[x]^2 small)
    shift = conv.data_range / 2
    p, t = (p - shift).to(torch.float32), (t - shift).to(torch.float32)
    g = _gaussian_window(win_size, sigma, p.device).to(torch.float32)
    k = 5 * c
    maps = torch.cat([p, t, p * p, t * t, p * t], 1)
    maps = F.conv2d(maps, g.view(1, 1, win_size, 1).expand(k, 1, win_size, 1), groups=k)
    maps = F.conv2d(maps, g.view(1, 1, 1, win_size).expand(k, 1, 1, win_size), groups=k)
    mu_p, mu_t, pp, tt, pt = maps.split(c, 1)
    var_p, var_t, cov = pp - mu_p * mu_p, tt - mu_t * mu_t, pt - mu_p * mu_t
    mu_p, mu_t = mu_p + shift, mu_t + shift
    c1, c2 = (k1 * conv.data_range) ** 2, (k2 * conv.data_range) ** 2
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p * mu_p + mu_t * mu_t + c1) * (var_p + var_t + c2))
    return ssim_map.to(torch.float64).flatten(1).mean(dim=1)


def to_nchw(img: np.ndarray) -> torch.Tensor:
    """HxWxC (or HxW) array -> 1xCxHxW float64 tensor, values unchanged."""
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[..., None]
    return torch.from_numpy(arr.astype(np.float64)).permute(2, 0, 1)[None]  # astype copies (input may be read-only)


def psnr_ssim(pred: np.ndarray, target: np.ndarray, conv: Convention = RGB) -> tuple[float, float]:
    """PSNR and SSIM of two HxWxC uint8 images."""
    if np.shape(pred) != np.shape(target):
        raise InvalidInput(f"Image sizes differ: {np.shape(pred)} vs {np.shape(target)}; metrics need equal sizes.")
    p, t = to_nchw(pred), to_nchw(target)
    return float(psnr(p, t, conv)[0]), float(ssim(p, t, conv)[0])
