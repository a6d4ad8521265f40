"""A detection run's operating points without rerunning the model: every detection's COCO match at each IoU threshold
(.50:.05:.95) is computed once and stored (`MatchTable`); precision, recall, F1, the PR curve and the confusion
matrix at any (IoU threshold, score threshold) are then array lookups.

COCO matching is greedy in score order, so a detection's match does not depend on the detections scored below it:
the matches at IoU t hold for every score threshold, and P/R/F1 at (t, s) equal a fresh evaluation at that
threshold (tests check this against core.metrics.detection).

The confusion matrix starts from those matches (its diagonal is the true positives), then pairs the leftovers across
classes: an unmatched detection of class a and an unmatched ground truth of class b overlapping at IoU >= t (greedy,
highest IoU first, one to one) count as "b taken for a". What is still left is "background" (a detection of nothing)
or "missed" (an object no detection found). So each true class's row sums to its objects and each predicted class's
column to its detections above the threshold.
"""
from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np

from core.annotations import ImagePred, ImageTruth
from core.errors import InvalidInput
from core.metrics.detection import AREA_RANGES, IOU_THRESHOLDS, MAX_DETS, box_area, box_iou, image_ignores, match_image

MIN_PAIR_IOU = float(IOU_THRESHOLDS[0])  # cross-class overlaps below the lowest threshold can never count
ARTIFACT = "detection_matches"  # the name a run stores its table under
MAX_BYTES = 64 * 1024 * 1024  # arrays larger than this (about 1.2M detections) are not stored; the run still is
_FIELDS = ("det_image", "det_class", "det_score", "det_gt", "det_ignored", "gt_image", "gt_class", "gt_ignored",
           "pair_det", "pair_gt", "pair_iou")


@dataclass(frozen=True)
class MatchTable:
    """Detections (the top MAX_DETS per image and class, as COCO) and ground truth of a run, with
    `det_gt[i, t]`: the ground truth detection i matched at IoU_THRESHOLDS[t] (-1: none), `det_ignored[i, t]`:
    matched to a crowd region, or unmatched and outside COCO's area range (counted nowhere), and `pair_*`:
    detection / ground-truth overlaps of different classes with IoU >= 0.5, for the confusion matrix."""

    class_names: tuple[str, ...]
    num_images: int
    det_image: np.ndarray  # int32 (N,)
    det_class: np.ndarray  # int32 (N,)
    det_score: np.ndarray  # float64 (N,)
    det_gt: np.ndarray  # int32 (N, T)
    det_ignored: np.ndarray  # bool (N, T)
    gt_image: np.ndarray  # int32 (G,)
    gt_class: np.ndarray  # int32 (G,)
    gt_ignored: np.ndarray  # bool (G,): crowd, or outside the area range; never a miss
    pair_det: np.ndarray  # int32 (P,)
    pair_gt: np.ndarray  # int32 (P,)
    pair_iou: np.ndarray  # float64 (P,): compared with the thresholds exactly as the COCO matching compares

    def num_gt(self) -> np.ndarray:
        """Objects per class that count (not crowd)."""
        return np.bincount(self.gt_class[~self.gt_ignored], minlength=len(self.class_names))

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f).nbytes for f in _FIELDS)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, class_names=np.array(self.class_names, dtype=str),
                            num_images=np.array(self.num_images), **{f: getattr(self, f) for f in _FIELDS})
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> MatchTable:
        """A stored table, checked: arrays that do not fit together are refused like unreadable bytes."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                table = cls(tuple(str(n) for n in z["class_names"]), int(z["num_images"]), *(z[f] for f in _FIELDS))
        except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise InvalidInput("This run's stored matches are unreadable; benchmark the model again.") from exc
        if not table._consistent():
            raise InvalidInput("This run's stored matches are unreadable; benchmark the model again.")
        return table

    def _consistent(self) -> bool:
        n, g, p, k = len(self.det_score), len(self.gt_class), len(self.pair_iou), len(self.class_names)
        shapes = ([a.shape == (n,) for a in (self.det_image, self.det_class, self.det_score)]
                  + [a.shape == (n, len(IOU_THRESHOLDS)) for a in (self.det_gt, self.det_ignored)]
                  + [a.shape == (g,) for a in (self.gt_image, self.gt_class, self.gt_ignored)]
                  + [a.shape == (p,) for a in (self.pair_det, self.pair_gt)])
        if not all(shapes):
            return False
        in_range = [(self.det_class, k), (self.gt_class, k), (self.pair_det, n), (self.pair_gt, g)]
        return (all(a.size == 0 or (a.min() >= 0 and a.max() < hi) for a, hi in in_range)
                and (self.det_gt.size == 0 or (self.det_gt.min() >= -1 and self.det_gt.max() < g)))


def build(preds: Sequence[ImagePred], truths: Sequence[ImageTruth], class_names: Sequence[str]) -> MatchTable:
    """The match table of box detections against ground truth (classes are dataset ids; 0 may be background)."""
    if len(preds) != len(truths):
        raise InvalidInput(f"{len(preds)} prediction sets for {len(truths)} images.")
    num_classes, t_count = len(class_names), len(IOU_THRESHOLDS)
    det_parts: list[tuple] = []
    gt_parts: list[tuple] = []
    pairs: list[tuple] = []
    gt_offset = det_offset = 0
    for img, (pred, truth) in enumerate(zip(preds, truths)):
        t_labels, p_labels = np.asarray(truth.labels, np.int64), np.asarray(pred.labels, np.int64)
        if np.any((t_labels < 0) | (t_labels >= num_classes)) or np.any((p_labels < 0) | (p_labels >= num_classes)):
            raise InvalidInput(f"A class id outside the {num_classes} classes of the dataset.")
        p_scores = np.asarray(pred.scores, np.float64)
        gt_boxes = np.asarray(truth.geoms, np.float64).reshape(-1, 4)
        det_boxes = np.asarray(pred.geoms, np.float64).reshape(-1, 4)
        crowd, gt_ignore, det_outside = image_ignores(pred, truth, box_area, AREA_RANGES["all"])
        kept, gts, ignores = [], [], []
        for c in np.unique(p_labels):  # per class, in score order, the top MAX_DETS (as COCO)
            di = np.flatnonzero(p_labels == c)
            di = di[np.argsort(-p_scores[di], kind="stable")][:MAX_DETS]
            gi = np.flatnonzero(t_labels == c)
            gi = gi[np.argsort(gt_ignore[gi], kind="stable")]  # not ignored first, as COCOeval
            ious = box_iou(det_boxes[di], gt_boxes[gi], crowd[gi]) if len(gi) else np.zeros((len(di), 0))
            _, ignored, taken_by = match_image(ious, crowd[gi], gt_ignore[gi], det_outside[di], IOU_THRESHOLDS)
            kept.append(di)
            ignores.append(ignored.T)
            gts.append(np.where(taken_by >= 0, gi[np.maximum(taken_by, 0)], -1).T if len(gi)
                       else -np.ones((len(di), t_count), np.int64))
        keep = np.concatenate(kept) if kept else np.zeros(0, np.int64)
        det_gt = np.concatenate(gts) if gts else np.zeros((0, t_count), np.int64)
        det_ign = np.concatenate(ignores) if ignores else np.zeros((0, t_count), bool)
        det_gt = np.where(det_gt >= 0, det_gt + gt_offset, -1)
        det_parts.append((np.full(len(keep), img), p_labels[keep], p_scores[keep], det_gt, det_ign))
        gt_parts.append((np.full(len(t_labels), img), t_labels, gt_ignore))
        if len(keep) and len(t_labels):
            ious_all = box_iou(det_boxes[keep], gt_boxes, np.zeros(len(t_labels), bool))
            d, g = np.nonzero((ious_all >= MIN_PAIR_IOU) & (p_labels[keep][:, None] != t_labels[None, :])
                              & ~gt_ignore[None, :])
            pairs.append((d + det_offset, g + gt_offset, ious_all[d, g]))
        gt_offset += len(t_labels)
        det_offset += len(keep)

    def cat(parts: list[tuple], i: int, dtype, shape: tuple[int, ...] = ()) -> np.ndarray:
        return np.concatenate([p[i] for p in parts]).astype(dtype) if parts else np.zeros((0, *shape), dtype)

    return MatchTable(
        tuple(str(n) for n in class_names), len(preds),
        cat(det_parts, 0, np.int32), cat(det_parts, 1, np.int32), cat(det_parts, 2, np.float64),
        cat(det_parts, 3, np.int32, (t_count,)), cat(det_parts, 4, bool, (t_count,)),
        cat(gt_parts, 0, np.int32), cat(gt_parts, 1, np.int32), cat(gt_parts, 2, bool),
        cat(pairs, 0, np.int32), cat(pairs, 1, np.int32), cat(pairs, 2, np.float64))


def threshold_index(iou: float) -> int:
    """The position of an IoU threshold among COCO's .50:.05:.95 (the only ones matches are stored for)."""
    if not math.isfinite(float(iou)):
        raise InvalidInput(f"The IoU threshold must be one of {', '.join(f'{t:.2f}' for t in IOU_THRESHOLDS)}.")
    idx = int(np.argmin(np.abs(IOU_THRESHOLDS - float(iou))))
    if abs(IOU_THRESHOLDS[idx] - float(iou)) > 1e-6:
        raise InvalidInput(f"The IoU threshold must be one of {', '.join(f'{t:.2f}' for t in IOU_THRESHOLDS)}.")
    return idx


@dataclass(frozen=True)
class OperatingPoint:
    """P/R/F1 (micro over classes and per class) and the confusion matrix at one (IoU, score) threshold."""

    iou: float
    score: float
    tp: np.ndarray  # per class
    fp: np.ndarray
    fn: np.ndarray
    confusion: np.ndarray  # (K+1) x (K+1): rows true class then "background", columns predicted then "missed"

    @property
    def micro(self) -> tuple[float, float, float]:
        tp, fp, fn = float(self.tp.sum()), float(self.fp.sum()), float(self.fn.sum())
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def at(table: MatchTable, iou: float, score: float) -> OperatingPoint:
    """Counts at IoU threshold `iou` (one of COCO's ten) and score >= `score`."""
    t = threshold_index(iou)
    k = len(table.class_names)
    active = (table.det_score >= score) & ~table.det_ignored[:, t]
    matched = active & (table.det_gt[:, t] >= 0)
    tp = np.bincount(table.det_class[matched], minlength=k)
    fp = np.bincount(table.det_class[active & ~matched], minlength=k)
    fn = table.num_gt() - tp
    confusion = np.zeros((k + 1, k + 1), np.int64)
    np.add.at(confusion, (table.det_class[matched], table.det_class[matched]), 1)
    gt_free = ~table.gt_ignored.copy()
    gt_free[table.det_gt[matched, t]] = False
    det_free = active & ~matched
    least = min(float(IOU_THRESHOLDS[t]), 1 - 1e-10)  # the COCO matching's own rule (detection.match_image)
    sel = (table.pair_iou >= least) & det_free[table.pair_det] & gt_free[table.pair_gt]
    order = np.flatnonzero(sel)[np.argsort(-table.pair_iou[sel], kind="stable")]
    for i in order:  # leftovers only: a handful of pairs
        d, g = table.pair_det[i], table.pair_gt[i]
        if det_free[d] and gt_free[g]:
            det_free[d] = gt_free[g] = False
            confusion[table.gt_class[g], table.det_class[d]] += 1
    np.add.at(confusion[k], table.det_class[det_free], 1)  # background: detections of nothing
    confusion[:k, k] = np.bincount(table.gt_class[gt_free], minlength=k)  # missed objects
    return OperatingPoint(float(IOU_THRESHOLDS[t]), float(score), tp, fp, fn, confusion)


@dataclass(frozen=True)
class PRCurve:
    """Micro precision and recall over all classes as the score threshold falls, at one IoU threshold."""

    score: np.ndarray  # thresholds where the curve can sit (each distinct score, highest first)
    precision: np.ndarray
    recall: np.ndarray

    @property
    def f1(self) -> np.ndarray:
        s = self.precision + self.recall
        return np.divide(2 * self.precision * self.recall, s, out=np.zeros_like(s), where=s > 0)

    def best(self) -> tuple[float, float, float, float]:
        """(f1, precision, recall, score threshold) where F1 peaks (the highest threshold among ties)."""
        if not self.score.size:
            return 0.0, 0.0, 0.0, 1.0
        i = int(np.argmax(self.f1))
        return float(self.f1[i]), float(self.precision[i]), float(self.recall[i]), float(self.score[i])


def pr_curve(table: MatchTable, iou: float) -> PRCurve:
    t = threshold_index(iou)
    keep = ~table.det_ignored[:, t]
    scores, tp_flags = table.det_score[keep], table.det_gt[keep, t] >= 0
    order = np.argsort(-scores, kind="stable")
    s, tp = scores[order], np.cumsum(tp_flags[order])
    last = np.r_[s[1:] != s[:-1], True] if s.size else np.zeros(0, bool)  # a threshold takes all tied scores
    n = np.arange(1, s.size + 1)
    total = int(table.num_gt().sum())
    precision = (tp / n)[last]
    recall = (tp / total if total else np.zeros(s.size))[last]
    return PRCurve(s[last], precision, recall)
