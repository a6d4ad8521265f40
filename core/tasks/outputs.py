"""What an evaluation reports beside its metrics, typed: per-class tables, the confusion matrix, PR curves, the
max-F1 operating point, the degraded input's own scores, the feature space of a generative score.

A run stores them as JSON (`EvaluationOutputs.as_json`), under the keys runs have always used, so runs stored
before these types existed read back unchanged (`EvaluationOutputs.from_json`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from core.metrics import detection as det_metrics


def row_record(row) -> dict[str, Any]:
    """A per-class row as stored (and tabulated): its class name under "class", then its scores."""
    out = asdict(row)
    return {"class": out.pop("name"), **out}


@dataclass(frozen=True)
class ClassificationRow:
    """One class of a classification run: precision, recall, F1 and how many images are of that class."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class DetectionRow:
    """One class of a detection run: AP (IoU .50:.95 and .50), P/R/F1 at the run's threshold, and the counts."""

    name: str
    ap50: float | None  # None: the class has no ground truth (COCO leaves it out of the mean)
    ap: float | None
    precision: float
    recall: float
    f1: float
    gt: int
    tp: int
    fp: int
    fn: int


@dataclass(frozen=True)
class SegmentationRow:
    """One class of a segmentation run; None where the class is absent from both truth and prediction."""

    name: str
    iou: float | None
    dice: float | None


ClassRow = ClassificationRow | DetectionRow | SegmentationRow
_ROW_TYPES: tuple[type, ...] = (DetectionRow, SegmentationRow, ClassificationRow)


def _row_from_json(d: dict[str, Any]) -> ClassRow:
    """The row type whose fields the stored row has (detection first: its fields include classification's P/R/F1)."""
    for kind in _ROW_TYPES:
        names = [f.name for f in fields(kind) if f.name != "name"]
        if all(n in d for n in names):
            return kind(str(d["class"]), *(d[n] for n in names))
    raise ValueError(f"a per-class row with unknown fields: {sorted(d)}")


@dataclass(frozen=True)
class ConfusionMatrix:
    """Rows: true class; columns: predicted class (counts of images)."""

    labels: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class PRCurve:
    """A class's precision-recall curve at IoU 0.5, thinned to at most 50 points, with the score at each."""

    recall: tuple[float, ...]
    precision: tuple[float, ...]
    score: tuple[float, ...]

    @classmethod
    def of(cls, curve: det_metrics.ClassCurve, points: int = 50) -> PRCurve:
        if not curve.scores.size:
            return cls((), (), ())
        idx = np.unique(np.linspace(0, curve.scores.size - 1, min(points, curve.scores.size)).round().astype(int))
        r4 = lambda a: tuple(float(v) for v in np.round(a[idx], 4))  # noqa: E731
        return cls(r4(curve.recall), r4(curve.precision), r4(curve.scores))


@dataclass(frozen=True)
class OperatingPoint:
    """Where micro F1 over all classes peaks, and the score threshold that gives it."""

    f1: float
    precision: float
    recall: float
    score_threshold: float


@dataclass(frozen=True)
class DetectionTables:
    """A detection report's per-class rows, PR curves and max-F1 point (boxes, or instance masks)."""

    per_class: tuple[DetectionRow, ...]
    pr_curves: dict[str, PRCurve]
    max_f1: OperatingPoint

    @classmethod
    def of(cls, rep: det_metrics.DetectionReport, names: tuple[str, ...]) -> DetectionTables:
        p, r, f = rep.prf()
        has_gt = rep.has_gt
        rows = tuple(DetectionRow(names[c], float(rep.ap[0, c]) if has_gt[c] else None,
                                  float(rep.ap[:, c].mean()) if has_gt[c] else None, float(p[c]), float(r[c]),
                                  float(f[c]), int(rep.curves50[c].num_gt), int(rep.tp[c]), int(rep.fp[c]), int(rep.fn[c]))
                     for c in range(rep.num_classes) if rep.curves50[c].num_gt or rep.fp[c])
        curves = {names[c]: PRCurve.of(rep.curves50[c]) for c in range(rep.num_classes) if rep.curves50[c].num_gt}
        return cls(rows, curves, OperatingPoint(*rep.max_f1()))

    def as_json(self, prefix: str = "") -> dict[str, Any]:
        return {f"{prefix}per_class": [row_record(r) for r in self.per_class],
                f"{prefix}pr_curves": {n: asdict(c) for n, c in self.pr_curves.items()},
                f"{prefix}max_f1": asdict(self.max_f1)}


@dataclass(frozen=True)
class KernelDistanceSpread:
    """How KID's subset estimates spread (it is the mean of `subsets` random subsets of `subset_size` samples)."""

    std: float
    subsets: int
    subset_size: int


@dataclass(frozen=True)
class EvaluationOutputs:
    """Everything an evaluation reports beyond its metric values; each task fills the parts it has."""

    per_class: tuple[ClassRow, ...] = ()
    confusion: ConfusionMatrix | None = None  # classification
    pr_curves: dict[str, PRCurve] = field(default_factory=dict)  # detection (boxes)
    max_f1: OperatingPoint | None = None  # detection (boxes)
    masks: DetectionTables | None = None  # instance segmentation: the same tables over masks
    input_psnr: float | None = None  # restoration: the degraded input against the target
    input_ssim: float | None = None
    lpips: str | None = None  # restoration: "computed", or why LPIPS was not
    noise_level: str | None = None  # restoration with a blind denoiser: the noise level it estimated, in words
    feature_space: str | None = None  # generation: the features FID/FD were computed in
    kid: KernelDistanceSpread | None = None  # generation, beside KID

    @classmethod
    def of_detection(cls, boxes: DetectionTables, masks: DetectionTables | None = None) -> EvaluationOutputs:
        return cls(per_class=boxes.per_class, pr_curves=boxes.pr_curves, max_f1=boxes.max_f1, masks=masks)

    @property
    def table(self) -> tuple[ClassRow, ...]:
        """The per-class rows to show: boxes (or classes), else instance masks."""
        return self.per_class or (self.masks.per_class if self.masks else ())

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.per_class:
            out["per_class"] = [row_record(r) for r in self.per_class]
        if self.confusion is not None:
            out["confusion"] = {"labels": list(self.confusion.labels), "matrix": [list(r) for r in self.confusion.matrix]}
        if self.max_f1 is not None:
            out["pr_curves"] = {n: asdict(c) for n, c in self.pr_curves.items()}
            out["max_f1"] = asdict(self.max_f1)
        if self.masks is not None:
            out.update(self.masks.as_json("mask_"))
        if self.input_psnr is not None or self.input_ssim is not None or self.lpips is not None:
            out.update(input_psnr=self.input_psnr, input_ssim=self.input_ssim)
        if self.lpips is not None:
            out["lpips"] = self.lpips
        if self.noise_level is not None:
            out["noise_level"] = self.noise_level
        if self.feature_space is not None:
            out["feature_space"] = self.feature_space
        if self.kid is not None:
            out.update(kid_std=self.kid.std, kid_subsets=self.kid.subsets, kid_subset_size=self.kid.subset_size)
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> EvaluationOutputs:
        """A stored run's outputs; keys of other kinds of run (a Playground run's predictions) are ignored."""
        d = d or {}

        def curves(key: str) -> dict[str, PRCurve]:
            return {n: PRCurve(*(tuple(c.get(k) or ()) for k in ("recall", "precision", "score")))
                    for n, c in (d.get(key) or {}).items()}

        def point(key: str) -> OperatingPoint | None:
            m = d.get(key)
            return OperatingPoint(m["f1"], m["precision"], m["recall"], m["score_threshold"]) if m else None

        masks = None
        if d.get("mask_max_f1"):
            mask_point = point("mask_max_f1")
            assert mask_point is not None
            masks = DetectionTables(tuple(r for r in map(_row_from_json, d.get("mask_per_class") or [])
                                          if isinstance(r, DetectionRow)), curves("mask_pr_curves"), mask_point)
        cm = d.get("confusion")
        kid = (KernelDistanceSpread(d["kid_std"], d.get("kid_subsets", 0), d.get("kid_subset_size", 0))
               if d.get("kid_std") is not None else None)
        return cls(per_class=tuple(_row_from_json(r) for r in d.get("per_class") or []),
                   confusion=ConfusionMatrix(tuple(cm["labels"]), tuple(tuple(r) for r in cm["matrix"])) if cm else None,
                   pr_curves=curves("pr_curves"), max_f1=point("max_f1"), masks=masks,
                   input_psnr=d.get("input_psnr"), input_ssim=d.get("input_ssim"), lpips=d.get("lpips"),
                   noise_level=d.get("noise_level"), feature_space=d.get("feature_space"), kid=kid)
