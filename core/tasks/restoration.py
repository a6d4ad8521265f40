"""Restoration: tensors in [0, 1], uint8 out, PSNR/SSIM against the clean image, before/after pictures."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float32 in [0, 1]."""
    pixels = np.array(img, dtype=np.uint8)  # a copy: inputs may be read-only arrays
    return torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255.0)


@dataclass(frozen=True)
class NoiseLevel:
    """The noise level a noise-level-input model (FFDNet) was given for one image, 0-255 scale."""

    sigma: float
    source: str  # "degradation" (the known sigma of the synthetic noise) | "estimated" (from the image)

    @property
    def text(self) -> str:
        if self.source == "degradation":
            return f"noise level {self.sigma:g} (from the degradation)"
        return f"noise level {self.sigma:.1f} (estimated)"


def known_noise_sigma(degradation: dict | None) -> float | None:
    """The sigma of added Gaussian noise when the degradation says so (photos-denoise, the Playground)."""
    if isinstance(degradation, dict) and degradation.get("type") == "gaussian_noise" and degradation.get("sigma") is not None:
        return float(degradation["sigma"])
    return None


def model_inputs(spec, images: list[np.ndarray], sigma: float | None) -> tuple[list[torch.Tensor], list[NoiseLevel] | None]:
    """Input tensors for restoration model `spec`. A model with `noise_level_input` gets a 4th channel holding
    sigma/255: the known sigma when given, else one estimated from each image (the same estimator the model
    would use by itself), so the value used is always known to the caller and recorded with the run."""
    tensors = [to_tensor(img) for img in images]
    if not getattr(spec, "noise_level_input", False):
        return tensors, None
    from core.models.ffdnet import estimate_noise_sigma

    levels = [NoiseLevel(float(sigma), "degradation") if sigma is not None else
              NoiseLevel(round(estimate_noise_sigma(img), 2), "estimated") for img in images]
    tensors = [torch.cat([t, torch.full_like(t[:1], lv.sigma / 255.0)]) for t, lv in zip(tensors, levels)]
    return tensors, levels


def noise_level_record(levels: list[NoiseLevel], keys: list[str]) -> dict:
    """What a stored run keeps about the noise levels it used: the source, a summary and a sentence."""
    from core.models.ffdnet import ESTIMATOR

    values = [lv.sigma for lv in levels]
    if all(lv.source == "degradation" for lv in levels) and len(set(values)) == 1:
        return {"source": "degradation", "sigma": values[0], "text": levels[0].text}
    mean = float(np.mean(values))
    text = (levels[0].text if len(levels) == 1 else
            f"noise level {mean:.1f} (estimated; mean over {len(levels)} images, {min(values):.1f}-{max(values):.1f})")
    return {"source": "estimated", "estimator": ESTIMATOR, "mean": mean, "min": min(values), "max": max(values),
            "per_image": dict(zip(keys, values)), "text": text}


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """3xHxW float in [0, 1] -> HxWx3 uint8, rounded (as image writers do)."""
    return t.detach().float().cpu().clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()


def before_after(before: np.ndarray, after: np.ndarray, split: float) -> np.ndarray:
    """One image: `before` left of the split (0-1 of the width), `after` right of it, a white divider."""
    if before.shape != after.shape:
        raise ValueError("before/after images must have the same shape")
    w = before.shape[1]
    x = int(round(np.clip(split, 0.0, 1.0) * w))
    out = after.copy()
    out[:, :x] = before[:, :x]
    if 0 < x < w:
        out[:, max(0, x - 1): x + 1] = 255
    return out


def zoom(image: np.ndarray, cx: float, cy: float, factor: float) -> np.ndarray:
    """The window of 1/factor of the image around (cx, cy) (fractions of width/height), enlarged back by
    nearest-neighbour so pixels stay visible as pixels."""
    if factor <= 1:
        return image
    h, w = image.shape[:2]
    ch, cw = max(1, int(round(h / factor))), max(1, int(round(w / factor)))
    y0 = int(np.clip(round(cy * h - ch / 2), 0, h - ch))
    x0 = int(np.clip(round(cx * w - cw / 2), 0, w - cw))
    crop = image[y0:y0 + ch, x0:x0 + cw]
    reps = max(1, int(factor))
    return np.repeat(np.repeat(crop, reps, axis=0), reps, axis=1)


def same_size(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """`before` enlarged (nearest) to `after`'s size: a super-resolution input shown beside its output."""
    if before.shape == after.shape:
        return before
    fy, fx = max(1, after.shape[0] // before.shape[0]), max(1, after.shape[1] // before.shape[1])
    big = np.repeat(np.repeat(before, fy, axis=0), fx, axis=1)[: after.shape[0], : after.shape[1]]
    if big.shape != after.shape:
        pad = [(0, after.shape[0] - big.shape[0]), (0, after.shape[1] - big.shape[1])] + [(0, 0)] * (after.ndim - 2)
        big = np.pad(big, pad, mode="edge")
    return big


def error_map(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-pixel absolute error, channel mean, on the 0-255 scale."""
    return np.abs(pred.astype(np.int16) - target.astype(np.int16)).mean(axis=2)


# White is "no error" (the calm end), dark red the largest errors: a sequential scale read one way only.
ERROR_COLORSCALE = [[0.0, "#ffffff"], [0.2, "#fee0d2"], [0.4, "#fcbba1"], [0.6, "#fb6a4a"], [0.8, "#cb181d"],
                    [1.0, "#67000d"]]


def error_figure(err: np.ndarray, title: str) -> go.Figure:
    """Heatmap of |error| on the 0-255 scale; the top of the scale is the 99th percentile (at least 1)."""
    top = max(1.0, float(np.percentile(err, 99)))
    ticks = [0.0, top / 2, top]
    fig = go.Figure(go.Heatmap(
        z=err, colorscale=ERROR_COLORSCALE, zmin=0, zmax=top,
        colorbar=dict(title=dict(text="|error|<br>(0-255)"), tickvals=ticks,
                      ticktext=["0 (exact)", f"{ticks[1]:.3g}", f"≥ {top:.3g}"]),
        hovertemplate="x %{x}, y %{y}<br>|error| %{z:.1f} of 255<extra></extra>"))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", visible=False)
    fig.update_xaxes(visible=False)
    fig.update_layout(title=title, height=360, margin=dict(l=0, r=0, t=40, b=0))
    return fig


def quality_figure(rows: list[dict]) -> go.Figure:
    """PSNR bars per method (the degraded input as the first, grey bar), SSIM in the hover."""
    fig = go.Figure(
        go.Bar(
            x=[r["method"] for r in rows], y=[r["psnr"] for r in rows],
            marker_color=["#9e9e9e" if r.get("is_input") else "#1f77b4" for r in rows],
            text=[f"{r['psnr']:.2f}" for r in rows], textposition="auto",
            customdata=[r["ssim"] for r in rows],
            hovertemplate="%{x}<br>PSNR %{y:.2f} dB<br>SSIM %{customdata:.4f}<extra></extra>",
        )
    )
    fig.update_layout(yaxis_title="PSNR (dB, RGB)", height=340, margin=dict(l=10, r=10, t=30, b=10))
    return fig
