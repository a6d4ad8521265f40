"""Restoration: tensors in [0, 1], uint8 out, PSNR/SSIM against the clean image, before/after pictures."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from core.data.datasets import Dataset, Sample
from core.engine import Engine, LoadedModel
from core.errors import InvalidInput, WeightsUnavailable
from core.metrics import perceptual
from core.metrics.image_quality import RGB, Convention, psnr, psnr_ssim
from core.models.ffdnet import ESTIMATOR, estimate_noise_sigma
from core.models.registry import ModelSpec
from core.tasks import training_sets
from core.tasks.base import (measured, BenchmarkParams, Evaluation, Phase, Progress, Task, TrainData, TrainPlan, ViewedImage)
from core.tasks.evaluation import run_chunked, scored
from core.tasks.fitting import trainable_model
from core.tasks.inputs import images_in_unit_range
from core.tasks.outputs import EvaluationOutputs
from core.tasks.registry import register_task
from db.repository import ImageMetric

to_tensor = images_in_unit_range  # restoration models take and give [0, 1] RGB


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
    levels = [NoiseLevel(float(sigma), "degradation") if sigma is not None else
              NoiseLevel(round(estimate_noise_sigma(img), 2), "estimated") for img in images]
    tensors = [torch.cat([t, torch.full_like(t[:1], lv.sigma / 255.0)]) for t, lv in zip(tensors, levels)]
    return tensors, levels


def noise_level_record(levels: list[NoiseLevel], keys: list[str]) -> dict:
    """What a stored run keeps about the noise levels it used: the source, a summary and a sentence."""
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


# -- scoring ------------------------------------------------------------------------------------------
def evaluate_restoration(engine: Engine, loaded: LoadedModel, ds: Dataset, batch_size: int, progress: Progress | None,
                         y_channel: bool | None = None, crop_border: int | None = None) -> Evaluation:
    spec = loaded.spec
    if spec.operation != ds.operation:
        raise InvalidInput(f"{spec.name} does {spec.operation}, but the dataset is for {ds.operation}.")
    if ds.operation == "super-resolution" and spec.scale != ds.scale:
        raise InvalidInput(f"{spec.name} upscales x{spec.scale}, but the dataset is x{ds.scale}.")
    sr = ds.operation == "super-resolution"
    y_channel = sr if y_channel is None else y_channel
    if crop_border is not None:
        crop = crop_border
    elif sr:
        assert ds.scale is not None  # a super-resolution dataset always records its factor
        crop = ds.scale
    else:
        crop = 0
    extra = Convention(channel="y", crop_border=crop) if y_channel else None
    # a noise-level-input model (FFDNet) gets the degradation's sigma when the dataset knows it, else an estimate
    inputs, levels = model_inputs(spec, [s.image for s in ds.samples], known_noise_sigma(ds.meta.get("degradation")))
    outs, stats = run_chunked(engine, loaded, inputs, batch_size, progress, chunk=4)
    per_image: list[ImageMetric] = []
    values: dict[str, list[float]] = {"psnr": [], "ssim": [], "psnr_y": [], "ssim_y": [], "input_psnr": [], "input_ssim": [],
                                      "lpips": []}
    lpips_net, lpips_note = None, None
    try:
        lpips_net = perceptual.lpips_model(engine.device)
    except WeightsUnavailable as exc:
        lpips_note = str(exc)
    for n, (s, o) in enumerate(zip(ds.samples, outs)):
        scored(progress, n, len(outs))
        restored = to_uint8(o)
        if restored.shape != s.target.shape:
            raise InvalidInput(f"{spec.name} returned {restored.shape} for {s.key}, expected {s.target.shape}.")
        p, q = psnr_ssim(restored, s.target, RGB)
        values["psnr"].append(p)
        values["ssim"].append(q)
        per_image += [ImageMetric(s.key, "psnr", p, str(RGB)), ImageMetric(s.key, "ssim", q, str(RGB))]
        if extra is not None:
            py, qy = psnr_ssim(restored, s.target, extra)
            values["psnr_y"].append(py)
            values["ssim_y"].append(qy)
            per_image += [ImageMetric(s.key, "psnr_y", py, str(extra)), ImageMetric(s.key, "ssim_y", qy, str(extra))]
        if lpips_net is not None:
            values["lpips"].append(perceptual.lpips_distance(lpips_net, restored, s.target))
            per_image.append(ImageMetric(s.key, "lpips", values["lpips"][-1], perceptual.CONVENTION))
        if not sr:
            ip, iq = psnr_ssim(s.image, s.target, RGB)
            values["input_psnr"].append(ip)
            values["input_ssim"].append(iq)
    mean = lambda xs: float(np.mean(xs))  # noqa: E731 -- mean of per-image values (inf stays inf)
    metrics = [measured("psnr", mean(values["psnr"]), f"{RGB}, mean of per-image"),
               measured("ssim", mean(values["ssim"]), f"{RGB}, gaussian 11/1.5, mean of per-image")]
    if extra is not None:
        metrics += [measured("psnr_y", mean(values["psnr_y"]), f"{extra}, mean of per-image"),
                    measured("ssim_y", mean(values["ssim_y"]), f"{extra}, gaussian 11/1.5, mean of per-image")]
    if values["lpips"]:
        metrics.append(measured("lpips", mean(values["lpips"]), perceptual.CONVENTION + ", mean of per-image"))
    params: dict[str, Any] = {"y_channel": y_channel, "crop_border": crop}
    if levels is not None:
        params["noise_level"] = noise_level_record(levels, [s.key for s in ds.samples])
    outputs = EvaluationOutputs(input_psnr=mean(values["input_psnr"]) if values["input_psnr"] else None,
                                input_ssim=mean(values["input_ssim"]) if values["input_ssim"] else None,
                                lpips=lpips_note or "computed",
                                noise_level=params["noise_level"]["text"] if levels is not None else None)
    return Evaluation(metrics, per_image, outputs, stats, params)


class RestorationTask(Task):
    """Denoise, deblur and super-resolution: the model's `operation` (and `scale`) must match the dataset's."""

    name = "restoration"
    tables = frozenset({"methods"})
    order = 4
    title = "Restoration"
    headline = ("psnr_y", "psnr")
    per_image_metric = "psnr"
    benchmark_options = ("y_channel", "crop_border")
    train_datasets = ("patches",)
    train_options = frozenset({"augment", "freeze_backbone", "patch", "noise_sigma", "blur_sigma"})  # freeze: U-Nets
    augmentations = ("flip",)
    trains_by_default = True
    viewable = True
    target_is_image = True

    def preprocess(self, loaded: LoadedModel, images: list[np.ndarray]) -> list[torch.Tensor]:
        return model_inputs(loaded.spec, images, None)[0]  # a noise-level model gets each image's estimated level

    def evaluate(self, engine: Engine, loaded: LoadedModel, ds: Dataset, params: BenchmarkParams,
                 progress: Progress | None) -> Evaluation:
        return evaluate_restoration(engine, loaded, ds, params.batch_size, progress, params.y_channel,
                                    params.crop_border)

    def view(self, engine: Engine, loaded: LoadedModel, sample: Sample, meta: dict, run_params: dict) -> ViewedImage:
        # the same noise level as the benchmark gave (FFDNet): the dataset's known sigma, else the same estimate
        inputs, levels = model_inputs(loaded.spec, [sample.image], known_noise_sigma(meta.get("degradation")))
        out, _ = engine.run(loaded, inputs, batch_size=1)
        restored = to_uint8(out[0])
        value = psnr_ssim(restored, sample.target, RGB)[0] if restored.shape == sample.target.shape else None
        return ViewedImage(restored, value, "psnr", levels[0].text if levels is not None else "", "PSNR")

    def training_data(self, cfg, spec: ModelSpec) -> TrainData:
        assert spec.operation is not None  # every restoration model names its operation
        return training_sets.restoration(cfg, spec.operation, spec.scale)

    def train_plan(self, cfg, td: TrainData, device: torch.device, engine: Engine, note) -> TrainPlan:
        spec, model, train_mode = trainable_model(cfg, None, device)
        denoise = spec.operation == "denoise"
        # the training patches live on the device: a batch is one gather there, with no copy from the host per step
        clean = torch.stack([to_tensor(x) for x in td.train.targets]).to(device)
        inputs = clean if denoise else torch.stack([to_tensor(x) for x in td.train.images]).to(device)
        val_clean = torch.stack([to_tensor(x) for x in td.val.targets]).to(device)
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        if denoise:  # fixed validation noise, quantised like a saved image
            val_in = ((val_clean * 255 + torch.randn(val_clean.shape, generator=gen).to(device) * cfg.noise_sigma)
                      .round().clamp(0, 255) / 255)
        else:
            val_in = torch.stack([to_tensor(x) for x in td.val.images]).to(device)

        def batch(idx, rng):
            at = torch.tensor(idx, device=device)
            y = clean[at]
            if denoise:  # fresh noise for every batch, drawn on the device
                x = (y * 255 + torch.randn_like(y) * cfg.noise_sigma).round().clamp(0, 255) / 255
            else:
                x = inputs[at]
            if "flip" in cfg.augment and rng.random() < 0.5:
                x, y = x.flip(-1), y.flip(-1)
            return x, y

        def validate():
            out = torch.cat([model(val_in[i:i + 32]).clamp(0, 1) for i in range(0, len(val_in), 32)])
            return {"val_psnr": float(psnr(out * 255, val_clean * 255).mean())}

        return TrainPlan(model, len(inputs), batch, [Phase("train_loss", [model], lambda b: F.mse_loss(model(b[0]), b[1]))],
                         validate, "val_psnr", train_mode, finish=lambda best: {"val_psnr": best["val_psnr"]},
                         conventions={"val_psnr": f"RGB PSNR (dB), mean over {len(val_in)} validation patches"})


TASK = register_task(RestorationTask())
