"""Every metric the lab stores, in one table: what it is called on screen, which direction is better, its bounds
and unit, and what kind of number it is (a quality score, a timing, a cost). Pages, charts, job summaries and
the results store read these facts from here. Standard library only: this sits at the bottom of core.metrics."""
from __future__ import annotations

from dataclasses import dataclass

KINDS = ("quality", "timing", "cost")
_UNIT = (0.0, 1.0)
_POSITIVE = (0.0, None)
_UNBOUNDED = (None, None)


@dataclass(frozen=True)
class Metric:
    """One stored metric. `bounds` are (low, high) by definition, None where open; `unit` is what its values
    count ("dB", "ms", "images/s", "MB", "parameters", "" for a dimensionless score); `kind` is "quality" (how
    good the output is; also counts a run reports per image), "timing" (latency, throughput) or "cost" (memory,
    parameter count). `percent`: a score between 0 and 1 read as a percentage and drawn on a 0-1 axis."""

    name: str
    title: str
    higher_is_better: bool | None
    bounds: tuple[float | None, float | None]
    unit: str
    kind: str
    percent: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind {self.kind!r} is not one of {KINDS}")
        if self.percent and self.bounds != _UNIT:
            raise ValueError(f"{self.name}: only a score bounded by (0, 1) is shown in percent")

    @property
    def fraction(self) -> bool:
        """A score between 0 and 1 by definition, shown in percent (accuracy, mAP, IoU, SSIM; not a probability)."""
        return self.bounds == _UNIT and self.percent


def _quality(name: str, title: str, higher: bool | None, bounds=_UNIT, unit: str = "", percent: bool = False) -> Metric:
    return Metric(name, title, higher, bounds, unit, "quality", percent)


def _score(name: str, title: str) -> Metric:
    """A higher-is-better score in [0, 1] shown in percent."""
    return _quality(name, title, True, _UNIT, "", True)


_ALL = [
    # restoration
    _quality("psnr", "PSNR (dB)", True, _POSITIVE, "dB"),
    _quality("psnr_y", "PSNR on Y (dB)", True, _POSITIVE, "dB"),
    _score("ssim", "SSIM"),
    _score("ssim_y", "SSIM on Y"),
    _quality("lpips", "LPIPS", False, _POSITIVE),
    _quality("input_psnr", "input PSNR (dB)", True, _POSITIVE, "dB"),  # the degraded input against the target
    _score("input_ssim", "input SSIM"),
    # classification
    _score("top1", "top-1 accuracy"),
    _score("top5", "top-5 accuracy"),
    _quality("top1_prob", "top-1 probability", True),
    _quality("target_prob", "probability of the true class", True),  # per image
    _quality("correct", "top-1 correct", True),  # per image: 1 when the top-1 class is the true one, else 0
    _score("precision", "precision"),
    _score("recall", "recall"),
    _score("f1", "F1"),
    _score("f1_micro", "F1 (micro average)"),
    _score("f1_macro", "F1 (macro average)"),
    _score("f1_max", "F1 at best threshold"),
    _score("precision_macro", "precision (macro average)"),
    _score("recall_macro", "recall (macro average)"),
    # detection and segmentation
    _score("map", "mAP@[.5:.95]"),
    _score("map50", "mAP@0.5"),
    _score("map75", "mAP@0.75"),
    _score("map_small", "mAP@[.5:.95], small objects"),  # COCO area ranges: < 32^2, 32^2-96^2, > 96^2 px
    _score("map_medium", "mAP@[.5:.95], medium objects"),
    _score("map_large", "mAP@[.5:.95], large objects"),
    _score("mask_map", "mask mAP@[.5:.95]"),
    _score("mask_map50", "mask mAP@0.5"),
    _score("mask_map75", "mask mAP@0.75"),
    _quality("detections", "detections", None, _POSITIVE, "count"),  # per image, above the score threshold
    _quality("instances", "instances", None, _POSITIVE, "count"),  # per image
    _quality("foreground_fraction", "foreground fraction", None),  # per image: share of pixels labelled > 0
    _score("miou", "mean IoU"),
    _score("dice", "Dice"),
    _score("pixel_accuracy", "pixel accuracy"),
    # generation (KID's unbiased estimate can fall below 0)
    _quality("fid", "FID", False, _POSITIVE),
    _quality("kid", "KID", False, _UNBOUNDED),
    _quality("fd_efficientnet_lite0", "Fréchet distance (EfficientNet-Lite0 features)", False, _POSITIVE),
    _quality("fd", "Fréchet distance", False, _POSITIVE),
    # training (validation scores a training job reports per epoch)
    _score("val_accuracy", "validation accuracy"),
    _score("train_accuracy", "training accuracy"),
    _quality("val_psnr", "validation PSNR (dB)", True, _POSITIVE, "dB"),
    _score("val_miou", "validation mean IoU"),
    _score("val_map", "validation mAP@[.5:.95]"),
    _score("val_map50", "validation mAP@0.5"),
    # what a run cost (RunStats.as_metrics, and the model's size)
    Metric("latency_ms_per_image", "latency (ms/image)", False, _POSITIVE, "ms", "timing"),
    Metric("latency_p50_ms", "latency, median (ms/batch)", False, _POSITIVE, "ms", "timing"),
    Metric("latency_p95_ms", "latency, 95th percentile (ms/batch)", False, _POSITIVE, "ms", "timing"),
    Metric("throughput_img_s", "throughput (images/s)", True, _POSITIVE, "images/s", "timing"),
    Metric("peak_mem_mb", "peak memory (MB)", False, _POSITIVE, "MB", "cost"),
    Metric("num_params", "parameters", False, _POSITIVE, "parameters", "cost"),
]
METRICS: dict[str, Metric] = {m.name: m for m in _ALL}
if len(METRICS) != len(_ALL):
    raise ValueError("a metric is listed twice")
del _ALL

# Rows stored under names this table does not list are judged by their name, as before there was a registry:
# a name containing one of these parts (and no "prob") is a fraction in [0, 1].
_FRACTION_PARTS = ("accuracy", "top1", "top5", "precision", "recall", "f1", "miou", "dice", "map", "ssim")


def get(name: str) -> Metric | None:
    return METRICS.get(name)


def title(name: str) -> str:
    """'PSNR (dB)', 'latency (ms/image)', 'validation accuracy'; an unknown name with its underscores as spaces."""
    m = METRICS.get(name)
    return m.title if m is not None else name.replace("_", " ")


def higher_is_better(name: str) -> bool | None:
    """True or False for a known metric with a direction; None for a count or an unknown name."""
    m = METRICS.get(name)
    return m.higher_is_better if m is not None else None


def is_fraction(name: str) -> bool:
    """A score between 0 and 1 by definition (shown in percent, drawn on a 0-1 axis)."""
    m = METRICS.get(name)
    if m is not None:
        return m.fraction
    return any(part in name for part in _FRACTION_PARTS) and "prob" not in name


def kind(name: str) -> str | None:
    """'quality', 'timing' or 'cost'; None for an unknown name."""
    m = METRICS.get(name)
    return m.kind if m is not None else None


def names(kind: str | None = None) -> list[str]:
    """Every known metric's name (of one kind when given), in the registry's order."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    return [n for n, m in METRICS.items() if kind is None or m.kind == kind]
