"""Common image corruptions at five severities, after ImageNet-C (Hendrycks & Dietterich, "Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations", ICLR 2019): the same kinds and severity values, written here
on uint8 RGB arrays (the reference code is tied to 224 px ImageNet crops and old library calls). Deterministic:
the noise draws come from a seed, so a corrupted dataset has a fixed content hash.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from core.data.degrade import add_gaussian_noise, gaussian_blur
from core.errors import InvalidInput

SEVERITIES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Corruption:
    name: str
    title: str  # on screen
    setting: str  # what the values are, in words
    values: tuple[float, ...]  # per severity 1..5 (ImageNet-C's)
    apply: Callable[[np.ndarray, float, int], np.ndarray]

    def words(self, severity: int) -> str:
        return f"{self.title}, severity {severity} ({self.setting} {self.values[severity - 1]:g})"


def _noise(img: np.ndarray, c: float, seed: int) -> np.ndarray:
    return add_gaussian_noise(img, 255.0 * c, seed)


def _blur(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    return gaussian_blur(img, sigma)


def _jpeg(img: np.ndarray, quality: float, seed: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _downscale(img: np.ndarray, factor: float, seed: int) -> np.ndarray:
    """Down by `factor` and back up to the original size (ImageNet-C's pixelate uses box filters; bicubic here,
    the resampling this project's super-resolution sets use)."""
    h, w = img.shape[:2]
    small = Image.fromarray(img).resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.Resampling.BICUBIC)
    return np.asarray(small.resize((w, h), Image.Resampling.BICUBIC))


def _brightness(img: np.ndarray, c: float, seed: int) -> np.ndarray:
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(img)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return np.clip(np.rint(hsv2rgb(hsv) * 255), 0, 255).astype(np.uint8)


def _contrast(img: np.ndarray, c: float, seed: int) -> np.ndarray:
    x = img.astype(np.float64)
    means = x.mean(axis=(0, 1), keepdims=True)
    return np.clip(np.rint((x - means) * c + means), 0, 255).astype(np.uint8)


CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in (
    Corruption("gaussian_noise", "Gaussian noise", "σ on a 0-1 scale", (0.08, 0.12, 0.18, 0.26, 0.38), _noise),
    Corruption("gaussian_blur", "Gaussian blur", "σ in px", (1, 2, 3, 4, 6), _blur),
    Corruption("jpeg", "JPEG compression", "quality", (25, 18, 15, 10, 7), _jpeg),
    Corruption("downscale", "downscale and upscale", "scale", (0.6, 0.5, 0.4, 0.3, 0.25), _downscale),
    Corruption("brightness", "brightness", "added to HSV value", (0.1, 0.2, 0.3, 0.4, 0.5), _brightness),
    Corruption("contrast", "contrast", "contrast kept", (0.4, 0.3, 0.2, 0.1, 0.05), _contrast),
)}


def get(name: str) -> Corruption:
    if name not in CORRUPTIONS:
        raise InvalidInput(f"Unknown corruption {name!r}; choose one of {', '.join(CORRUPTIONS)}.")
    return CORRUPTIONS[name]


def corrupt(img: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """`img` (HxWx3 uint8) under corruption `name` at severity 1-5; severity 0 returns it unchanged."""
    corruption = get(name)
    if severity == 0:
        return img
    if severity not in SEVERITIES:
        raise InvalidInput(f"Severity must be 0 (clean) to 5, got {severity}.")
    out = corruption.apply(np.ascontiguousarray(img, np.uint8), corruption.values[severity - 1], seed)
    assert out.shape == img.shape and out.dtype == np.uint8
    return out
