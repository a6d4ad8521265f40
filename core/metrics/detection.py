"""Detection and instance-mask evaluation: COCO mAP, PR curves, P/R/F1 at an IoU and a score threshold.

Written here rather than wrapped around pycocotools because one matching pass has to give the COCO numbers,
the PR curves and the thresholded P/R/F1 at once, for boxes and masks, without writing JSON files.
It follows COCOeval exactly (tests compare with pycocotools): IoU thresholds .50:.05:.95, 101 recall points,
at most 100 detections per image and class, greedy one-to-one matching by score per image and class,
crowd ground truth ignored, precision made monotone, classes without ground truth excluded from the mean, and
COCO's area ranges: in each range ground truth outside it is ignored (matched detections with it) and unmatched
detections outside it are ignored, so a detection with a negative width (negative area) is no false positive.
A ground truth's area is its COCO `area` field when the annotation has one, else its geometry's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable, Sequence

import numpy as np

from core.annotations import ImagePred, ImageTruth
from core.errors import InvalidInput

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_POINTS = np.linspace(0.0, 1.0, int(np.round(1.0 / 0.01)) + 1, endpoint=True)
MAX_DETS = 100
# COCOeval's areaRng: all, small (< 32^2 px), medium, large (> 96^2 px); bounds included, as COCOeval compares
AREA_RANGES: dict[str, tuple[float, float]] = {"all": (0.0, 1e5**2), "small": (0.0, 32.0**2),
                                               "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e5**2)}
AREA_WORDS = {"small": "below 32x32 px", "medium": "32x32 to 96x96 px", "large": "above 96x96 px"}


def box_iou(dets: np.ndarray, gts: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes; against a crowd box the denominator is the detection's area (as COCO)."""
    dets, gts = np.asarray(dets, np.float64).reshape(-1, 4), np.asarray(gts, np.float64).reshape(-1, 4)
    lt = np.maximum(dets[:, None, :2], gts[None, :, :2])
    rb = np.minimum(dets[:, None, 2:], gts[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_d = (dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1])
    area_g = (gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1])
    union = np.where(crowd[None, :], area_d[:, None], area_d[:, None] + area_g[None, :] - inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Width x height of xyxy boxes (negative when one side is: COCO's area of such a box, outside every range)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def mask_area(masks: np.ndarray) -> np.ndarray:
    m = np.asarray(masks, bool)
    return m.reshape(len(m), -1).sum(1).astype(np.float64)


def mask_iou(dets: np.ndarray, gts: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    d = np.asarray(dets, bool).reshape(len(dets), -1).astype(np.float64)
    g = np.asarray(gts, bool).reshape(len(gts), -1).astype(np.float64)
    inter = d @ g.T
    area_d, area_g = d.sum(1), g.sum(1)
    union = np.where(crowd[None, :], area_d[:, None], area_d[:, None] + area_g[None, :] - inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass
class _ClassMatches:
    scores: list[np.ndarray] = field(default_factory=list)
    matched: list[np.ndarray] = field(default_factory=list)  # T x D bool
    ignored: list[np.ndarray] = field(default_factory=list)  # T x D bool (matched to crowd)
    num_gt: int = 0


def match_image(ious: np.ndarray, crowd: np.ndarray, gt_ignore: np.ndarray, det_outside: np.ndarray,
                thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COCOeval.evaluateImg: detections in score order, gts not ignored first; returns matched/ignored (T x D) and
    the column of the gt each detection took (T x D, -1 for none).
    A crowd gt can take many detections; a detection matched to an ignored gt is ignored, and so is an unmatched
    detection whose area lies outside the range (`det_outside`)."""
    t_count, d_count = len(thresholds), ious.shape[0]
    matched = np.zeros((t_count, d_count), bool)
    ignored = np.zeros((t_count, d_count), bool)
    taken_by = -np.ones((t_count, d_count), np.int64)
    for ti, t in enumerate(thresholds):
        gt_taken = np.zeros(ious.shape[1], bool)
        for di in range(d_count):
            best, m = min(t, 1 - 1e-10), -1
            for gi in range(ious.shape[1]):
                if gt_taken[gi] and not crowd[gi]:
                    continue
                if m > -1 and not gt_ignore[m] and gt_ignore[gi]:
                    break  # a real match beats any ignored region (gts are sorted not-ignored first)
                if ious[di, gi] < best:
                    continue
                best, m = ious[di, gi], gi
            if m == -1:
                ignored[ti, di] = det_outside[di]
                continue
            ignored[ti, di] = gt_ignore[m]
            matched[ti, di] = True
            taken_by[ti, di] = m
            gt_taken[m] = True
    return matched, ignored, taken_by


def image_ignores(pred: ImagePred, truth: ImageTruth, area_fn: Callable, area_range: tuple[float, float]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's crowd flags, the ground truth COCO ignores in `area_range` (crowd, or its area outside: the
    annotated `area` where given, else the geometry's) and the detections whose area lies outside the range."""
    crowd = np.zeros(len(truth.labels), bool) if truth.crowd is None else np.asarray(truth.crowd, bool)
    lo, hi = area_range
    gt_area = area_fn(truth.geoms) if len(truth.labels) else np.zeros(0)
    if truth.areas is not None:  # COCO's annotated area where given (NaN: none)
        given = np.asarray(truth.areas, np.float64)
        gt_area = np.where(np.isfinite(given), given, gt_area)
    det_area = area_fn(pred.geoms) if len(pred.labels) else np.zeros(0)
    return crowd, crowd | (gt_area < lo) | (gt_area > hi), (det_area < lo) | (det_area > hi)


def _collect(preds: Sequence[ImagePred], truths: Sequence[ImageTruth], num_classes: int, iou_fn: Callable,
             area_fn: Callable, thresholds: np.ndarray, area_range: tuple[float, float]) -> list[_ClassMatches]:
    if len(preds) != len(truths):
        raise InvalidInput(f"{len(preds)} prediction sets for {len(truths)} images.")
    per_class = [_ClassMatches() for _ in range(num_classes)]
    for pred, truth in zip(preds, truths):
        t_labels, p_labels = np.asarray(truth.labels, np.int64), np.asarray(pred.labels, np.int64)
        p_scores = np.asarray(pred.scores, np.float64)
        crowd_all, ignore_all, det_outside_all = image_ignores(pred, truth, area_fn, area_range)
        for c in np.union1d(t_labels, p_labels):
            if not 0 <= c < num_classes:
                raise InvalidInput(f"Class id {c} outside the {num_classes} classes of the dataset.")
            gi = np.flatnonzero(t_labels == c)
            gi = gi[np.argsort(ignore_all[gi], kind="stable")]  # not ignored first, as COCOeval
            di = np.flatnonzero(p_labels == c)
            di = di[np.argsort(-p_scores[di], kind="stable")][:MAX_DETS]
            crowd, gt_ignore = crowd_all[gi], ignore_all[gi]
            entry = per_class[c]
            entry.num_gt += int((~gt_ignore).sum())
            if len(di) == 0:
                continue
            if len(gi):
                ious = iou_fn(np.asarray(pred.geoms)[di], np.asarray(truth.geoms)[gi], crowd)
            else:
                ious = np.zeros((len(di), 0))
            matched, ignored, _ = match_image(ious, crowd, gt_ignore, det_outside_all[di], thresholds)
            entry.scores.append(p_scores[di])
            entry.matched.append(matched)
            entry.ignored.append(ignored)
    return per_class


@dataclass(frozen=True)
class ClassCurve:
    """At IoU 0.5: a class's detections sorted by score, whether each is a true positive, and the gt count."""

    scores: np.ndarray
    true_positive: np.ndarray
    num_gt: int

    @property
    def precision(self) -> np.ndarray:
        return np.cumsum(self.true_positive) / np.arange(1, len(self.scores) + 1)

    @property
    def recall(self) -> np.ndarray:
        tp = np.cumsum(self.true_positive, dtype=np.float64)
        return tp / self.num_gt if self.num_gt else np.zeros_like(tp)


@dataclass(frozen=True)
class DetectionReport:
    iou_type: str  # bbox | segm
    num_classes: int
    ap: np.ndarray  # T x K, -1 where the class has no ground truth (excluded, as COCO)
    curves50: list[ClassCurve]  # per class at IoU 0.5
    score_threshold: float
    tp: np.ndarray  # per class at IoU 0.5 and score >= threshold
    fp: np.ndarray
    fn: np.ndarray
    ap_by_area: dict[str, np.ndarray] = field(default_factory=dict)  # "small"/"medium"/"large" -> T x K

    def _mean(self, rows: np.ndarray) -> float:
        """Mean over the classes with ground truth (-1 marks the others, as COCOeval); NaN when there are none."""
        valid = rows[rows > -1]
        return float(valid.mean()) if valid.size else float("nan")

    @property
    def map(self) -> float:
        return self._mean(self.ap)

    @property
    def map50(self) -> float:
        return self._mean(self.ap[0])

    @property
    def map75(self) -> float:
        return self._mean(self.ap[5])

    def map_in(self, area: str) -> float:
        """mAP@[.5:.95] over the objects of one COCO area range (NaN when no class has ground truth there)."""
        return self._mean(self.ap_by_area[area])

    @property
    def has_gt(self) -> np.ndarray:
        return np.array([c.num_gt > 0 for c in self.curves50])

    def prf(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-class P/R/F1 at IoU 0.5 and the score threshold; zero_division = 0."""
        p = np.divide(self.tp, self.tp + self.fp, out=np.zeros(self.num_classes), where=(self.tp + self.fp) > 0)
        r = np.divide(self.tp, self.tp + self.fn, out=np.zeros(self.num_classes), where=(self.tp + self.fn) > 0)
        f = np.divide(2 * p * r, p + r, out=np.zeros(self.num_classes), where=(p + r) > 0)
        return p, r, f

    def micro(self) -> tuple[float, float, float]:
        tp, fp, fn = self.tp.sum(), self.fp.sum(), self.fn.sum()
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        return float(p), float(r), float(2 * p * r / (p + r)) if p + r else 0.0

    def macro(self) -> tuple[float, float, float]:
        """Mean over classes that have ground truth or detections."""
        p, r, f = self.prf()
        present = (self.tp + self.fp + self.fn) > 0
        mp, mr, mf = (float(x[present].mean()) if present.any() else 0.0 for x in (p, r, f))
        return mp, mr, mf

    def max_f1(self) -> tuple[float, float, float, float]:
        """(f1, precision, recall, score threshold) where micro F1 over all classes peaks, at IoU 0.5."""
        scores = np.concatenate([c.scores for c in self.curves50]) if self.curves50 else np.zeros(0)
        if scores.size == 0:
            return 0.0, 0.0, 0.0, 1.0
        tp_flags = np.concatenate([c.true_positive for c in self.curves50])
        total_gt = sum(c.num_gt for c in self.curves50)
        order = np.argsort(-scores, kind="stable")
        s, tp = scores[order], np.cumsum(tp_flags[order])
        n = np.arange(1, len(s) + 1)
        last = np.r_[s[1:] != s[:-1], True]  # evaluate only where the threshold can sit (ties grouped)
        p = tp / n
        r = tp / total_gt if total_gt else np.zeros_like(p)
        f = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
        f = np.where(last, f, -1)
        i = int(np.argmax(f))
        return float(f[i]), float(p[i]), float(r[i]), float(s[i])


def _sorted(entry: _ClassMatches) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A class's detections over all images in score order (stable, as COCOeval): scores, matched, ignored."""
    if not entry.scores:
        empty = np.zeros((len(IOU_THRESHOLDS), 0), bool)
        return np.zeros(0), empty, empty
    scores = np.concatenate(entry.scores)
    order = np.argsort(-scores, kind="mergesort")
    return (scores[order], np.concatenate(entry.matched, axis=1)[:, order],
            np.concatenate(entry.ignored, axis=1)[:, order])


def _average_precision(entry: _ClassMatches, matched: np.ndarray, ignored: np.ndarray) -> np.ndarray:
    """AP per IoU threshold (101-point interpolated, precision made monotone); -1 without ground truth."""
    if not entry.num_gt:
        return -np.ones(len(IOU_THRESHOLDS))
    tps = np.cumsum(matched & ~ignored, axis=1, dtype=np.float64)
    fps = np.cumsum(~matched & ~ignored, axis=1, dtype=np.float64)
    out = np.zeros(len(IOU_THRESHOLDS))
    for t in range(len(IOU_THRESHOLDS)):
        rc = tps[t] / entry.num_gt
        pr = tps[t] / (fps[t] + tps[t] + np.spacing(1))
        pr = np.maximum.accumulate(pr[::-1])[::-1] if pr.size else pr  # monotone, as COCOeval
        idx = np.searchsorted(rc, RECALL_POINTS, side="left")
        q = np.where(idx < len(pr), pr[np.minimum(idx, len(pr) - 1)] if len(pr) else 0.0, 0.0)
        out[t] = q.mean()
    return out


def evaluate(preds: Sequence[ImagePred], truths: Sequence[ImageTruth], num_classes: int, *, iou_type: str = "bbox",
             score_threshold: float = 0.5, area_ranges: bool = True) -> DetectionReport:
    """COCO AP over all areas (and, with `area_ranges`, small/medium/large), PR curves and P/R/F1 at IoU 0.5."""
    if iou_type not in ("bbox", "segm"):
        raise InvalidInput(f"iou_type must be bbox or segm, got {iou_type!r}.")
    iou_fn, area_fn = (box_iou, box_area) if iou_type == "bbox" else (mask_iou, mask_area)
    per_class = _collect(preds, truths, num_classes, iou_fn, area_fn, IOU_THRESHOLDS, AREA_RANGES["all"])
    ap = -np.ones((len(IOU_THRESHOLDS), num_classes))
    curves, tp, fp, fn = [], np.zeros(num_classes), np.zeros(num_classes), np.zeros(num_classes)
    for k, entry in enumerate(per_class):
        scores, matched, ignored = _sorted(entry)
        ap[:, k] = _average_precision(entry, matched, ignored)
        keep50 = ~ignored[0]
        s50 = scores[keep50]
        curves.append(ClassCurve(s50, matched[0][keep50], entry.num_gt))
        above = s50 >= score_threshold
        tp[k] = float(matched[0][keep50][above].sum())
        fp[k] = float(above.sum() - tp[k])
        fn[k] = float(entry.num_gt - tp[k])
    by_area: dict[str, np.ndarray] = {}
    for name, rng in list(AREA_RANGES.items())[1:] if area_ranges else []:
        entries = _collect(preds, truths, num_classes, iou_fn, area_fn, IOU_THRESHOLDS, rng)
        by_area[name] = np.stack([_average_precision(e, *_sorted(e)[1:]) for e in entries], axis=1)
    return DetectionReport(iou_type, num_classes, ap, curves, score_threshold, tp, fp, fn, by_area)
