"""Classical restoration baselines as parameter-free modules on [0, 1] float NCHW tensors."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from core.models.registry import WeightsInfo, register_model

PARAMETER_FREE = WeightsInfo("parameter-free", None, "classical algorithm")


class GaussianDenoise(nn.Module):
    def __init__(self, sigma: float = 1.0):
        super().__init__()
        self.sigma = sigma
        self.kernel = 2 * int(3 * sigma + 0.5) + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return TF.gaussian_blur(x, [self.kernel, self.kernel], [self.sigma, self.sigma])


class MedianDenoise(nn.Module):
    def __init__(self, size: int = 3):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        pad = self.size // 2
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        patches = F.unfold(padded.reshape(n * c, 1, h + 2 * pad, w + 2 * pad), self.size)
        return patches.median(dim=1).values.reshape(n, c, h, w)


class NonLocalMeansDenoise(nn.Module):
    """scikit-image non-local means, h = 0.8 * estimated noise sigma (skimage's recommended setting)."""

    def __init__(self, patch_size: int = 5, patch_distance: int = 6, h_factor: float = 0.8):
        super().__init__()
        self.patch_size, self.patch_distance, self.h_factor = patch_size, patch_distance, h_factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from skimage.restoration import denoise_nl_means, estimate_sigma

        out = []
        for img in x.detach().float().cpu().permute(0, 2, 3, 1).numpy().astype(np.float64):
            sigma = float(np.mean(estimate_sigma(img, channel_axis=-1)))
            den = denoise_nl_means(
                img, h=self.h_factor * sigma, sigma=sigma, fast_mode=True,
                patch_size=self.patch_size, patch_distance=self.patch_distance, channel_axis=-1,
            )
            out.append(torch.from_numpy(den).permute(2, 0, 1))
        return torch.stack(out).to(device=x.device, dtype=x.dtype).clamp_(0, 1)


class BicubicUpscale(nn.Module):
    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False).clamp_(0, 1)


def _register(name: str, factory, title: str, description: str, operation: str, scale: int | None = None):
    register_model(
        name, task="restoration", source="classical", title=title, description=description,
        weights="none (classical algorithm)", operation=operation, amp=False, scale=scale,
    )(lambda pretrained: (factory(), PARAMETER_FREE))


_register("gaussian_denoise", lambda: GaussianDenoise(1.0), "Gaussian filter (σ=1)",
          "Gaussian blur, sigma 1.0 px, kernel 7x7.", "denoise")
_register("median_denoise", lambda: MedianDenoise(3), "Median filter (3x3)",
          "Per-channel 3x3 median, reflect padding.", "denoise")
_register("nlm_denoise", lambda: NonLocalMeansDenoise(), "Non-local means",
          "scikit-image non-local means (fast mode, 5x5 patches, 13x13 search, h=0.8·σ̂).", "denoise")
for _s in (2, 3, 4):
    _register(f"bicubic_x{_s}", lambda s=_s: BicubicUpscale(s), f"Bicubic x{_s}",
              f"Bicubic interpolation (a=-0.75), x{_s}.", "super-resolution", scale=_s)
