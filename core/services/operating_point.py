"""The detection operating-point explorer: a stored detection run's precision, recall, F1, PR curve and confusion
(with "missed" and "background") at any IoU and score threshold, from the matches stored with the run
(core.metrics.operating_points), without rerunning the model."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from core.errors import InvalidInput
from core.metrics import operating_points as ops
from core.metrics.detection import IOU_THRESHOLDS
from core.services.compare import run_report
from core.store import ensure_store
from db import analytics, repository

IOU_CHOICES = tuple(round(float(t), 2) for t in IOU_THRESHOLDS)
MISSED, BACKGROUND = "missed (no detection)", "background (no object)"
CLASS_COLUMNS = ["class", "objects", "detections", "true positives", "false positives", "missed objects",
                 "precision", "recall", "F1"]


@dataclass(frozen=True)
class Explored:
    """One operating point of a run, with the curve it sits on."""

    run_id: int
    model: str
    iou: float
    score: float
    precision: float
    recall: float
    f1: float
    best: tuple[float, float, float, float]  # max-F1 at this IoU: f1, precision, recall, score threshold
    per_class: pd.DataFrame  # CLASS_COLUMNS
    confusion: pd.DataFrame  # index: true class, then background; columns: predicted class, then missed
    curve: pd.DataFrame  # score threshold, precision, recall, F1 (micro over classes)

    def summary(self) -> pd.DataFrame:
        """The chosen point and the max-F1 point as one table (the CSV/JSON export)."""
        f1, p, r, s = self.best
        return pd.DataFrame([
            {"point": "chosen", "run": self.run_id, "model": self.model, "IoU threshold": self.iou,
             "score threshold": self.score, "precision": self.precision, "recall": self.recall, "F1": self.f1},
            {"point": "max F1 at this IoU", "run": self.run_id, "model": self.model, "IoU threshold": self.iou,
             "score threshold": s, "precision": p, "recall": r, "F1": f1}])


@lru_cache(maxsize=16)
def _table(url: str, run_id: int, stamp: str | None) -> ops.MatchTable | None:
    """A run's match table, read once per process (a stored run never changes; its creation time is in the key
    because SQLite may give a deleted run's id to the next one)."""
    data = repository.run_artifact(url, run_id, ops.ARTIFACT)
    return None if data is None else ops.MatchTable.from_bytes(data)


def match_table(run_id: int) -> tuple[str, ops.MatchTable]:
    """The run's model name and match table."""
    report = run_report(run_id)  # refuses a run that does not exist
    url = ensure_store()
    table = _table(url, int(run_id), repository.run_stamp(url, int(run_id)))
    if table is None:
        raise InvalidInput(f"Run #{int(run_id)} of {report.model} has no stored matches (it is not a detection run, "
                           "or was stored before the explorer existed): benchmark the model again to explore it.")
    return report.model, table


def stored_threshold(run_id: int) -> float:
    """The score threshold the run's own P/R/F1 were taken at (the explorer starts there)."""
    found = analytics.run_outputs(ensure_store(), [int(run_id)])
    value = found.get(int(run_id), {}).get("params", {}).get("score_threshold", 0.5)
    return float(value) if isinstance(value, (int, float)) and 0 <= value <= 1 else 0.5


def explore(run_id: int, iou: float = 0.5, score: float = 0.5) -> Explored:
    """P/R/F1, per-class counts, confusion and the micro PR curve at (IoU `iou`, score >= `score`)."""
    if not 0.0 <= float(score) <= 1.0:
        raise InvalidInput("The score threshold must lie between 0 and 1.")
    model, table = match_table(run_id)
    point = ops.at(table, iou, float(score))
    curve = ops.pr_curve(table, iou)
    names = list(table.class_names)
    num_gt = table.num_gt()
    p_c = np.divide(point.tp, point.tp + point.fp, out=np.zeros(len(names)), where=(point.tp + point.fp) > 0)
    r_c = np.divide(point.tp, num_gt, out=np.zeros(len(names)), where=num_gt > 0)
    f_c = np.divide(2 * p_c * r_c, p_c + r_c, out=np.zeros(len(names)), where=(p_c + r_c) > 0)
    shown = [c for c in range(len(names)) if num_gt[c] or point.tp[c] + point.fp[c]]
    per_class = pd.DataFrame([[names[c], int(num_gt[c]), int(point.tp[c] + point.fp[c]), int(point.tp[c]),
                               int(point.fp[c]), int(point.fn[c]), float(p_c[c]), float(r_c[c]), float(f_c[c])]
                              for c in shown], columns=CLASS_COLUMNS)
    k, labels = len(names), [names[c] for c in shown]
    matrix = point.confusion[np.ix_([*shown, k], [*shown, k])]
    confusion = pd.DataFrame(matrix, index=pd.Index([*labels, BACKGROUND], name="true class"),
                             columns=[*labels, MISSED])
    p, r, f = point.micro
    return Explored(int(run_id), model, point.iou, point.score, p, r, f, curve.best(), per_class,
                    confusion, pd.DataFrame({"score threshold": curve.score, "precision": curve.precision,
                                             "recall": curve.recall, "F1": curve.f1}))


def confusion_frame(explored: Explored) -> pd.DataFrame:
    """The confusion matrix as an exportable table (the true class as its first column)."""
    return explored.confusion.reset_index()
