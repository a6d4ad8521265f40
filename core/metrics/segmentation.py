"""Semantic segmentation metrics from one pixel confusion matrix: IoU / Dice per class, mIoU, pixel accuracy.

Pixels labelled `ignore_index` in the target are left out (255, as VOC and Cityscapes). mIoU and mean Dice
average over the classes that occur in the target or the prediction (a class absent from both has no IoU).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import InvalidInput

IGNORE_INDEX = 255


def pixel_confusion(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    pred, target = np.asarray(pred, np.int64), np.asarray(target, np.int64)
    if pred.shape != target.shape:
        raise InvalidInput(f"Prediction {pred.shape} and mask {target.shape} differ in size.")
    keep = target != ignore_index
    p, t = pred[keep], target[keep]
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        raise InvalidInput(f"The mask holds class ids outside [0, {num_classes}) other than {ignore_index}.")
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise InvalidInput(f"The prediction holds class ids outside [0, {num_classes}).")
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class SegmentationScores:
    iou: np.ndarray  # per class, nan where the class is absent from target and prediction
    dice: np.ndarray
    miou: float
    mean_dice: float
    pixel_accuracy: float


def scores(cm: np.ndarray) -> SegmentationScores:
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    union = tp + fp + fn
    present = union > 0
    iou = np.full(len(tp), np.nan)
    dice = np.full(len(tp), np.nan)
    iou[present] = tp[present] / union[present]
    dice[present] = 2 * tp[present] / (2 * tp[present] + fp[present] + fn[present])
    total = cm.sum()
    return SegmentationScores(
        iou, dice, float(np.nanmean(iou)) if present.any() else float("nan"),
        float(np.nanmean(dice)) if present.any() else float("nan"), float(tp.sum() / total) if total else float("nan"),
    )
