"""Deterministic synthetic degradations with exact ground truth (clean image known)."""
from __future__ import annotations

import numpy as np
from PIL import Image

from core.errors import InvalidInput


def add_gaussian_noise(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Additive white Gaussian noise, sigma on the 0-255 scale, clipped and rounded to uint8."""
    if not 0 <= sigma <= 255:
        raise InvalidInput(f"Noise sigma must be between 0 and 255, got {sigma}.")
    rng = np.random.default_rng(seed)
    noisy = clean.astype(np.float64) + rng.normal(0.0, sigma, size=clean.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def crop_to_multiple(img: np.ndarray, factor: int) -> np.ndarray:
    h, w = img.shape[:2]
    return img[: h - h % factor, : w - w % factor]


def downscale_bicubic(clean: np.ndarray, factor: int) -> np.ndarray:
    """Low-resolution input for super-resolution: PIL bicubic downscale of a crop divisible by factor."""
    if factor not in (2, 3, 4, 8):
        raise InvalidInput(f"Scale factor must be 2, 3, 4 or 8, got {factor}.")
    hr = crop_to_multiple(clean, factor)
    h, w = hr.shape[:2]
    if min(h, w) // factor < 4:
        raise InvalidInput(f"The image is too small to downscale by {factor}.")
    return np.asarray(Image.fromarray(hr).resize((w // factor, h // factor), Image.Resampling.BICUBIC))


def limit_side(img: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink (never enlarge) so the long side is at most max_side, keeping the aspect ratio."""
    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))


def gaussian_blur(clean: np.ndarray, sigma: float, noise_sigma: float = 0.0, seed: int = 0) -> np.ndarray:
    """Blur with a Gaussian PSF of `sigma` px (reflect borders), then optional Gaussian noise (0-255 scale)."""
    from scipy.ndimage import gaussian_filter

    if not 0.3 <= sigma <= 10:
        raise InvalidInput(f"Blur sigma must be between 0.3 and 10 pixels, got {sigma}.")
    radius = int(3 * sigma + 0.5)
    blurred = gaussian_filter(clean.astype(np.float64), sigma=(sigma, sigma, 0), mode="reflect",
                              truncate=radius / sigma)
    blurred = np.clip(np.rint(blurred), 0, 255).astype(np.uint8)
    return add_gaussian_noise(blurred, noise_sigma, seed) if noise_sigma > 0 else blurred
