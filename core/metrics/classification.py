"""Classification metrics: top-k accuracy, confusion matrix, precision/recall/F1 per class, macro and micro.

Conventions follow scikit-learn (rows of the confusion matrix are the true class, columns the prediction;
a class with no predicted or no true samples gets precision or recall 0, its `zero_division=0`).
Checked against sklearn in tests.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.errors import InvalidInput


def topk_correct(scores: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Boolean per sample: is the target among the k highest scores? Tied scores are ranked as scikit-learn's
    top_k_accuracy_score ranks them (a stable ascending sort, reversed: the higher class index first)."""
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets)
    if scores.ndim != 2 or len(scores) != len(targets):
        raise InvalidInput(f"Scores must be N x C with one target per row; got {scores.shape} and {targets.shape}.")
    k = min(k, scores.shape[1])
    top = np.argsort(scores, axis=1, kind="mergesort")[:, ::-1][:, :k]
    return (top == targets[:, None]).any(axis=1)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise InvalidInput(f"{len(y_true)} targets but {len(y_pred)} predictions.")
    if y_true.size and (min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= num_classes):
        raise InvalidInput(f"Class indices must lie in [0, {num_classes}).")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def _div(num: npt.ArrayLike, den: npt.ArrayLike) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


@dataclass(frozen=True)
class PRF:
    precision: np.ndarray  # per class
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray  # true samples per class
    macro: tuple[float, float, float]  # mean over classes present in targets or predictions
    micro: tuple[float, float, float]
    accuracy: float


def precision_recall_f1(cm: np.ndarray) -> PRF:
    """From a confusion matrix. Macro averages over the classes that occur in targets or predictions
    (sklearn's behaviour when `labels` is not given)."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    pred, true = cm.sum(axis=0), cm.sum(axis=1)
    p, r = _div(tp, pred), _div(tp, true)
    f1 = _div(2 * p * r, p + r)
    present = (pred + true) > 0
    total = cm.sum()
    macro_p, macro_r, macro_f = (float(x[present].mean()) if present.any() else 0.0 for x in (p, r, f1))
    macro = (macro_p, macro_r, macro_f)
    micro_p = float(_div(tp.sum(), pred.sum())) if total else 0.0
    micro_r = float(_div(tp.sum(), true.sum())) if total else 0.0
    micro_f = float(_div(2 * micro_p * micro_r, micro_p + micro_r))
    return PRF(p, r, f1, true, macro, (micro_p, micro_r, micro_f), float(tp.sum() / total) if total else 0.0)
