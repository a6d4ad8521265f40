"""Segmentation: semantic label maps and instance masks, overlaid on the image with a legend."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.data.datasets import Dataset, Sample
from core.engine import Engine, LoadedModel
from core.metrics import segmentation as seg_metrics
from core.models.registry import ModelSpec
from core.tasks import training_sets
from core.tasks.base import (measured, BenchmarkParams, Evaluation, Phase, Progress, Task,
                             TrainData, TrainPlan, ViewedImage)
from core.tasks.detection import PALETTE, Detection, color_for, draw, evaluate_detections
from core.tasks.evaluation import category_map, run_chunked, scored
from core.tasks.fitting import augmented, trainable_model
from core.tasks.inputs import imagenet_normalized, model_input
from core.tasks.outputs import EvaluationOutputs, SegmentationRow
from core.tasks.registry import register_task
from db.repository import ImageMetric


@dataclass(frozen=True)
class ClassArea:
    label: int
    name: str
    fraction: float  # of the image's pixels
    color: tuple[int, int, int]


def class_color(label: int) -> tuple[int, int, int]:
    return (0, 0, 0) if label == 0 else PALETTE[(label - 1) % len(PALETTE)]


def resize_short_side(img: np.ndarray, short: int) -> np.ndarray:
    """Resize so the short side is `short` (torchvision's SemanticSegmentation preset does this)."""
    from PIL import Image

    h, w = img.shape[:2]
    scale = short / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BILINEAR))


normalize = imagenet_normalized  # torchvision's semantic segmenters take ImageNet-normalised tensors


def label_map(logits: torch.Tensor, size: tuple[int, int] | None = None) -> np.ndarray:
    """Argmax over classes (CxHxW logits), optionally resized to (H, W) first."""
    if size is not None and tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    return logits.argmax(0).to(torch.int64).numpy()


def areas(labels: np.ndarray, categories: tuple[str, ...] | None) -> list[ClassArea]:
    values, counts = np.unique(labels, return_counts=True)
    total = labels.size
    out = []
    for v, c in sorted(zip(values.tolist(), counts.tolist()), key=lambda vc: -vc[1]):
        name = categories[v] if categories and v < len(categories) else f"class {v}"
        out.append(ClassArea(int(v), name, c / total, class_color(int(v))))
    return out


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Colour every non-background class over the image; background (0) left untouched."""
    colors = np.array([class_color(i) for i in range(int(labels.max()) + 1)], dtype=np.float64)
    painted = colors[labels]
    mask = (labels > 0)[..., None]
    out = np.where(mask, (1 - alpha) * image + alpha * painted, image)
    return np.clip(out, 0, 255).astype(np.uint8)


def instance_overlay(image: np.ndarray, masks: torch.Tensor, dets: list[Detection], alpha: float = 0.5) -> np.ndarray:
    """Instance masks (Nx1xHxW probabilities, thresholded at 0.5) and their boxes over the image."""
    out = image.astype(np.float64)
    for m, d in zip(masks, dets):
        sel = (m[0] > 0.5).numpy()[..., None]
        out = np.where(sel, (1 - alpha) * out + alpha * np.array(color_for(d.label)), out)
    return draw(np.clip(out, 0, 255).astype(np.uint8), dets, width=2)


def legend_rows(area_list: list[ClassArea]) -> list[dict]:
    return [{"class": a.name, "pixels %": round(100 * a.fraction, 2), "color": "#{:02x}{:02x}{:02x}".format(*a.color)}
            for a in area_list]


# -- scoring ------------------------------------------------------------------------------------------
def evaluate_semantic(engine: Engine, loaded: LoadedModel, ds: Dataset, batch_size: int,
                      progress: Progress | None) -> Evaluation:
    spec = loaded.spec
    outs, stats = run_chunked(engine, loaded, [model_input(spec, s.image) for s in ds.samples], batch_size, progress)
    assert ds.categories is not None  # classification, detection and segmentation datasets always name their classes
    cmap = category_map(ds.categories, spec.categories, "classes")
    assert spec.categories is not None  # category_map raised otherwise
    lut = np.full(max(len(spec.categories), int(cmap.max()) + 1), len(ds.categories), np.int64)  # unknown -> extra
    for d, m in enumerate(cmap):
        if m >= 0:
            lut[m] = d
    k = len(ds.categories) + 1  # plus "other" for model classes the dataset does not have
    total = np.zeros((k, k), np.int64)
    per_image = []
    for n, (s, o) in enumerate(zip(ds.samples, outs)):
        scored(progress, n, len(outs))
        pred = lut[label_map(o, s.target.shape)]
        cm = seg_metrics.pixel_confusion(pred, s.target, k)
        total += cm
        iou = seg_metrics.scores(cm).iou[: k - 1]
        per_image.append(ImageMetric(s.key, "miou", float(np.nanmean(iou)) if np.isfinite(iou).any() else None,
                                     "mean over classes present in the image"))
    sc = seg_metrics.scores(total)
    present = slice(0, len(ds.categories))
    conv = f"ignore={seg_metrics.IGNORE_INDEX}, mean over classes present"
    metrics = [measured("miou", float(np.nanmean(sc.iou[present])), conv),
               measured("dice", float(np.nanmean(sc.dice[present])), conv),
               measured("pixel_accuracy", sc.pixel_accuracy, f"ignore={seg_metrics.IGNORE_INDEX}")]
    finite = lambda v: None if np.isnan(v) else float(v)  # noqa: E731 -- NaN: the class is absent from truth and prediction
    outputs = EvaluationOutputs(per_class=tuple(SegmentationRow(n, finite(sc.iou[i]), finite(sc.dice[i]))
                                                for i, n in enumerate(ds.categories)))
    return Evaluation(metrics, per_image, outputs, stats)


class SegmentationTask(Task):
    """Semantic (label maps: mIoU, Dice, pixel accuracy) and instance segmentation (masks scored like detections,
    on a detection set with masks or an instance segmentation set); a model's `operation` says which."""

    name = "segmentation"
    tables = frozenset({"per_class"})
    order = 3
    title = "Segmentation"
    headline = ("mask_map", "miou")
    per_image_metric = "miou"
    benchmark_options = ("score_threshold",)  # instance segmentation only
    train_datasets = ("shapes",)
    train_options = frozenset({"augment", "freeze_backbone"})
    augmentations = ("flip", "crop", "color", "noise")
    untrainable_note = "Segmentation fine-tuning supports the U-Net (a head of the synthetic set's classes)."
    viewable = True

    def fits(self, spec: ModelSpec, ds: Dataset) -> bool:
        if spec.operation == "instance":
            return ds.task == "detection" and any(s.masks is not None for s in ds.samples[:1]) or (
                ds.task == self.name and ds.operation == "instance")
        return ds.task == self.name and ds.operation == spec.operation

    def options_for(self, operation: str | None) -> tuple[str, ...]:
        return self.benchmark_options if operation == "instance" else ()

    def lists_upload(self, upload_task: str, has_masks: bool) -> bool:
        return upload_task == self.name or (upload_task == "detection" and has_masks)  # scored as instance masks

    def operation_for(self, dataset_task: str, dataset_operation: str | None) -> str | None:
        return "instance" if dataset_task == "detection" else dataset_operation  # boxes with masks

    def evaluate(self, engine: Engine, loaded: LoadedModel, ds: Dataset, params: BenchmarkParams,
                 progress: Progress | None) -> Evaluation:
        if loaded.spec.operation == "instance":
            return evaluate_detections(engine, loaded, ds, params.batch_size, progress, params.score_threshold,
                                       masks=True)
        return evaluate_semantic(engine, loaded, ds, params.batch_size, progress)

    def view(self, engine: Engine, loaded: LoadedModel, sample: Sample, meta: dict, run_params: dict) -> ViewedImage:
        if loaded.spec.operation != "semantic":
            return super().view(engine, loaded, sample, meta, run_params)
        out, _ = engine.run(loaded, [model_input(loaded.spec, sample.image)], batch_size=1)
        labels = label_map(out[0], sample.image.shape[:2])
        return ViewedImage(overlay(sample.image, labels), None, "miou")

    def training_data(self, cfg, spec: ModelSpec) -> TrainData:
        return training_sets.segmentation(cfg)

    def train_plan(self, cfg, td: TrainData, device: torch.device, engine: Engine, note) -> TrainPlan:
        spec, model, train_mode = trainable_model(cfg, td.categories, device)
        assert td.categories is not None  # segmentation training data always names its classes
        k = len(td.categories)

        def batch(idx, rng):
            imgs, masks = augmented(td.train.images, idx, cfg.augment, rng, td.train.targets)
            x = torch.stack([model_input(spec, i) for i in imgs]).to(device)
            return x, torch.from_numpy(np.stack(masks).astype(np.int64)).to(device)

        def validate():
            cm = np.zeros((k, k), np.int64)
            for img, mask in zip(td.val.images, td.val.targets):
                logits = model(model_input(spec, img)[None].to(device))[0].cpu()
                cm += seg_metrics.pixel_confusion(label_map(logits, mask.shape), mask, k)
            return {"val_miou": seg_metrics.scores(cm).miou}

        return TrainPlan(model, len(td.train.images), batch,
                         [Phase("train_loss", [model], lambda b: F.cross_entropy(model(b[0]), b[1],
                                                                                 ignore_index=seg_metrics.IGNORE_INDEX))],
                         validate, "val_miou", train_mode, finish=lambda best: {"val_miou": best["val_miou"]},
                         conventions={"val_miou": f"mIoU over the classes present, validation split "
                                                  f"({len(td.val.images)} images)"})


TASK = register_task(SegmentationTask())
