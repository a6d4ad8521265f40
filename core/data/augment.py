"""Augmentation presets on uint8 HxWx3 images (before the model's own preprocessing), from a seeded RNG."""
from __future__ import annotations

import numpy as np


def augment(img: np.ndarray, presets: list[str], rng: np.random.Generator, mask: np.ndarray | None = None):
    """flip: horizontal, p=0.5; crop: reflect-pad by 1/8 of the side and crop back at random;
    color: brightness/contrast/saturation x U(0.8, 1.2); noise: Gaussian sigma 8 (0-255 scale).
    A segmentation mask gets the same geometric transforms. Returns (image, mask)."""
    out = img
    if "flip" in presets and rng.random() < 0.5:
        out = out[:, ::-1]
        mask = mask[:, ::-1] if mask is not None else None
    if "crop" in presets:
        h, w = out.shape[:2]
        pad = max(1, min(h, w) // 8)
        padded = np.pad(out, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        y, x = rng.integers(0, 2 * pad + 1, 2)
        out = padded[y:y + h, x:x + w]
        if mask is not None:
            mask = np.pad(mask, ((pad, pad), (pad, pad)), mode="reflect")[y:y + h, x:x + w]
    if "color" in presets or "noise" in presets:
        f: np.ndarray = out.astype(np.float32)  # float64 once noise is added
        if "color" in presets:
            b, c, s = rng.uniform(0.8, 1.2, 3)
            gray = f.mean(axis=2, keepdims=True)
            f = gray + (f - gray) * s
            f = (f - f.mean()) * c + f.mean() * b
        if "noise" in presets:
            f = f + rng.normal(0, 8.0, f.shape)
        out = np.clip(np.rint(f), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out), (np.ascontiguousarray(mask) if mask is not None else None)
