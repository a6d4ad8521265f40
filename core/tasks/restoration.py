"""Restoration: tensors in [0, 1], uint8 out, PSNR/SSIM against the clean image, before/after pictures."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float32 in [0, 1]."""
    pixels = np.array(img, dtype=np.uint8)  # a copy: inputs may be read-only arrays
    return torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255.0)


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


def error_figure(err: np.ndarray, title: str) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=err, colorscale="Inferno", zmin=0, zmax=max(1.0, float(np.percentile(err, 99))),
                               colorbar=dict(title="|err|")))
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
