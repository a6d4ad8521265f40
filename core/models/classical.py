"""Classical restoration baselines as parameter-free modules on [0, 1] float NCHW tensors."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from core.models.spec import WeightsInfo, register_model
from core.annotations import SHAPES_CATEGORIES

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


def _per_image_numpy(x: torch.Tensor, fn) -> torch.Tensor:
    """Apply `fn(HxWxC float64 in [0, 1]) -> HxWxC` to each image of a batch, back on x's device."""
    out = [torch.from_numpy(np.ascontiguousarray(fn(img))).permute(2, 0, 1)
           for img in x.detach().float().cpu().permute(0, 2, 3, 1).numpy().astype(np.float64)]
    return torch.stack(out).to(device=x.device, dtype=x.dtype).clamp_(0, 1)


class BilateralDenoise(nn.Module):
    def __init__(self, sigma_color: float = 0.1, sigma_spatial: float = 2.0):
        super().__init__()
        self.sigma_color, self.sigma_spatial = sigma_color, sigma_spatial

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from skimage.restoration import denoise_bilateral

        return _per_image_numpy(x, lambda img: denoise_bilateral(
            img, sigma_color=self.sigma_color, sigma_spatial=self.sigma_spatial, channel_axis=-1))


def gaussian_psf(sigma: float) -> np.ndarray:
    radius = int(3 * sigma + 0.5)
    ax = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma**2))
    return k / k.sum()


class WienerDeblur(nn.Module):
    """Non-blind Wiener deconvolution with a known Gaussian PSF (scikit-image), per channel."""

    def __init__(self, psf_sigma: float = 2.0, balance: float = 0.01):
        super().__init__()
        self.psf, self.balance = gaussian_psf(psf_sigma), balance

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from skimage.restoration import wiener

        return _per_image_numpy(x, lambda img: np.stack(
            [wiener(img[..., c], self.psf, self.balance, clip=True) for c in range(img.shape[2])], axis=2))


class RichardsonLucyDeblur(nn.Module):
    """Richardson-Lucy deconvolution with a known Gaussian PSF (scikit-image), per channel."""

    def __init__(self, psf_sigma: float = 2.0, iterations: int = 30):
        super().__init__()
        self.psf, self.iterations = gaussian_psf(psf_sigma), iterations

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from skimage.restoration import richardson_lucy

        return _per_image_numpy(x, lambda img: np.stack(
            [richardson_lucy(img[..., c], self.psf, num_iter=self.iterations) for c in range(img.shape[2])], axis=2))


def _gray(img: np.ndarray) -> np.ndarray:
    return img @ np.array([0.299, 0.587, 0.114])


def _otsu_foreground(gray: np.ndarray) -> np.ndarray:
    """Otsu threshold; the smaller side of the threshold is taken as the foreground."""
    from skimage.filters import threshold_otsu

    fg = gray > threshold_otsu(gray) if gray.max() > gray.min() else np.zeros_like(gray, dtype=bool)
    return ~fg if fg.mean() > 0.5 else fg


class OtsuSegment(nn.Module):
    """Semantic baseline: two classes (background, foreground) by Otsu's threshold on luminance."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for img in x.detach().float().cpu().permute(0, 2, 3, 1).numpy():
            fg = torch.from_numpy(_otsu_foreground(_gray(img)))
            out.append(torch.stack([(~fg).float(), fg.float()]))
        return torch.stack(out).to(x.device)


class WatershedInstances(nn.Module):
    """Instance baseline: Otsu foreground of the smoothed image (σ=2, holes filled), distance-transform peaks
    at least `min_distance` px apart as markers, watershed; regions under `min_area` px dropped."""

    def __init__(self, min_distance: int = 15, min_area: int = 100):
        super().__init__()
        self.min_distance, self.min_area = min_distance, min_area

    def forward(self, x: torch.Tensor) -> list[dict]:
        from scipy import ndimage as ndi
        from skimage.feature import peak_local_max
        from skimage.filters import gaussian
        from skimage.segmentation import watershed

        results = []
        for img in x.detach().float().cpu().permute(0, 2, 3, 1).numpy():
            fg = _otsu_foreground(gaussian(_gray(img), sigma=2))
            fg = ndi.binary_fill_holes(ndi.binary_opening(fg, iterations=2))
            dist = ndi.distance_transform_edt(fg)
            peaks = peak_local_max(dist, min_distance=self.min_distance, labels=ndi.label(fg)[0], exclude_border=False)
            markers = np.zeros(fg.shape, dtype=np.int32)
            markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
            regions = watershed(-dist, markers, mask=fg)
            masks, boxes = [], []
            for r in range(1, regions.max() + 1):
                m = regions == r
                if m.sum() < self.min_area:
                    continue
                ys, xs = np.nonzero(m)
                masks.append(m)
                boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            n = len(masks)
            h, w = fg.shape
            results.append({
                "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
                "labels": torch.ones(n, dtype=torch.int64),
                "scores": torch.ones(n),
                "masks": torch.from_numpy(np.stack(masks)[:, None].astype(np.float32)) if n else torch.zeros(0, 1, h, w),
            })
        return results


class ShapeRegionDetector(nn.Module):
    """Detection baseline for uncluttered scenes of flat shapes: the background is fitted as a plane per colour
    channel (least squares, twice with outliers dropped), pixels far from it are foreground, connected regions
    become boxes, and each region's fill ratio of its box names the shape (square ~1, circle ~pi/4,
    triangle ~1/2). The score is how close the ratio sits to that prototype."""

    PROTOTYPES = ((2, 1.0), (1, np.pi / 4), (3, 0.5))  # (class id in SHAPES_CATEGORIES, fill ratio)

    def __init__(self, distance: float = 0.18, min_area: int = 12):
        super().__init__()
        self.distance, self.min_area = distance, min_area

    FIT_PIXELS = 1 << 18  # the plane is fitted on at most this many pixels (a strided sample)
    ROWS_PIXELS = 1 << 18  # residuals computed this many pixels at a time

    def _foreground(self, img: np.ndarray) -> np.ndarray:
        """Fit on a strided sample, then classify the full image in row blocks: memory stays near the image's own
        size (a full float64 design matrix cost 7.8 GB on one 40-megapixel strip). Images up to FIT_PIXELS
        are fitted on every pixel, exactly as before."""
        h, w = img.shape[:2]
        step = max(1, int(np.ceil(np.sqrt(h * w / self.FIT_PIXELS))))
        yy, xx = np.mgrid[0:h:step, 0:w:step]
        design = np.c_[np.ones(yy.size), xx.ravel() / w, yy.ravel() / h]
        sample = img[::step, ::step].reshape(-1, 3)
        keep = np.ones(len(sample), bool)
        for _ in range(3):
            coef, *_ = np.linalg.lstsq(design[keep], sample[keep], rcond=None)
            keep = np.linalg.norm(sample - design @ coef, axis=1) < self.distance
        if step == 1:
            return (~keep).reshape(h, w)
        fg = np.empty((h, w), bool)
        rows = max(1, self.ROWS_PIXELS // w)
        x = np.arange(w) / w
        for top in range(0, h, rows):
            y = np.arange(top, min(h, top + rows)) / h
            plane = coef[0] + x[None, :, None] * coef[1] + y[:, None, None] * coef[2]
            fg[top:top + len(y)] = np.linalg.norm(img[top:top + len(y)] - plane, axis=2) >= self.distance
        return fg

    def forward(self, x: torch.Tensor) -> list[dict]:
        from scipy import ndimage as ndi

        results = []
        for img in x.detach().float().cpu().permute(0, 2, 3, 1).numpy():
            fg = ndi.binary_opening(self._foreground(img))
            regions, n = ndi.label(fg)
            boxes, labels, scores = [], [], []
            for r, sl in enumerate(ndi.find_objects(regions), start=1):
                area = int((regions[sl] == r).sum())
                if area < self.min_area:
                    continue
                ratio = area / ((sl[0].stop - sl[0].start) * (sl[1].stop - sl[1].start))
                cls, proto = min(self.PROTOTYPES, key=lambda cp: abs(cp[1] - ratio))
                boxes.append([sl[1].start, sl[0].start, sl[1].stop, sl[0].stop])
                labels.append(cls)
                scores.append(max(0.05, 1.0 - abs(ratio - proto) / 0.25))
            k = len(boxes)
            results.append({"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(k, 4),
                            "labels": torch.tensor(labels, dtype=torch.int64), "scores": torch.tensor(scores)})
        return results


_register("bilateral_denoise", lambda: BilateralDenoise(), "Bilateral filter",
          "scikit-image bilateral filter (σ_color 0.1, σ_spatial 2 px).", "denoise")
_register("wiener_deblur", lambda: WienerDeblur(2.0), "Wiener (PSF σ=2)",
          "Wiener deconvolution assuming a Gaussian PSF of σ=2 px, balance 0.01.", "deblur")
_register("richardson_lucy_deblur", lambda: RichardsonLucyDeblur(2.0), "Richardson-Lucy (PSF σ=2)",
          "Richardson-Lucy deconvolution, 30 iterations, assuming a Gaussian PSF of σ=2 px.", "deblur")
register_model("shape_regions", task="detection", source="classical", title="Region + fill-ratio shapes",
               description="Classical detector for the synthetic shapes set: background plane fit, connected "
                           "regions, shape named by how much of its box it fills.",
               weights="none (classical algorithm)", amp=False,
               categories=SHAPES_CATEGORIES)(lambda pretrained: (ShapeRegionDetector(), PARAMETER_FREE))
register_model("otsu_segment", task="segmentation", source="classical", title="Otsu threshold",
               description="Two classes by Otsu's threshold on luminance (the smaller side is foreground).",
               weights="none (classical algorithm)", operation="semantic", amp=False,
               categories=("background", "foreground"))(lambda pretrained: (OtsuSegment(), PARAMETER_FREE))
register_model("watershed_instances", task="segmentation", source="classical", title="Watershed",
               description="Otsu foreground split into instances by distance-transform watershed.",
               weights="none (classical algorithm)", operation="instance", amp=False,
               categories=("background", "object"))(lambda pretrained: (WatershedInstances(), PARAMETER_FREE))
