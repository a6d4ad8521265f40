"""An experiment's result: points (arm, x, seed, value) of one metric, and their summary per arm and x: mean,
sample standard deviation and a 95% Student-t interval of the mean over the repeats (scipy.stats)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


@dataclass(frozen=True)
class Point:
    arm: str  # e.g. "from scratch", "self-supervised start"
    x: float  # e.g. the labelled fraction, or the number of real training images
    seed: int
    value: float


@dataclass
class Curve:
    """What a job stores: the metric and axis in words, the arms in order, every point, and notes to show."""

    title: str
    metric: str  # y axis in words, e.g. "test accuracy (%)"
    x_label: str
    arms: list[str]
    points: list[Point] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    log_x: bool = False

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "points": [asdict(p) for p in self.points]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Curve:
        points = [Point(str(p["arm"]), float(p["x"]), int(p["seed"]), float(p["value"])) for p in raw.get("points", [])]
        return cls(str(raw.get("title", "")), str(raw.get("metric", "")), str(raw.get("x_label", "")),
                   [str(a) for a in raw.get("arms", [])], points, [str(n) for n in raw.get("notes", [])],
                   bool(raw.get("log_x", False)))


def summary(curve: Curve) -> pd.DataFrame:
    """One row per (arm, x), arms in the curve's order: mean, std (ddof 1), n, and the 95% interval of the mean
    (mean ± t(0.975, n-1) · std/√n; empty for a single seed)."""
    rows = []
    frame = pd.DataFrame([asdict(p) for p in curve.points], columns=["arm", "x", "seed", "value"])
    for arm in curve.arms:
        for x, grp in frame[frame["arm"] == arm].groupby("x", sort=True):
            values = grp["value"].to_numpy(float)
            n, mean = len(values), float(values.mean())
            std = float(values.std(ddof=1)) if n > 1 else math.nan
            half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
            rows.append({"arm": arm, "x": float(x), "mean": mean, "std": std, "n": n,
                         "ci_low": mean - half, "ci_high": mean + half})
    return pd.DataFrame(rows, columns=["arm", "x", "mean", "std", "n", "ci_low", "ci_high"])


def gain(curve: Curve, better: str, base: str) -> pd.DataFrame:
    """Per x: the paired difference `better` - `base` over the repeats both ran (same seed, same labelled subset),
    its mean and 95% interval; says whether the interval excludes zero."""
    frame = pd.DataFrame([asdict(p) for p in curve.points], columns=["arm", "x", "seed", "value"])
    wide = frame.pivot_table(index=["x", "seed"], columns="arm", values="value")
    rows = []
    if better in wide and base in wide:
        diff = (wide[better] - wide[base]).dropna()
        for x, d in diff.groupby(level="x"):
            values = d.to_numpy(float)
            n = len(values)
            mean = float(values.mean())
            half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
            rows.append({"x": float(x), "difference": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n,
                         "clear": bool(n > 1 and (mean - half > 0 or mean + half < 0))})
    return pd.DataFrame(rows, columns=["x", "difference", "ci_low", "ci_high", "n", "clear"])


def stratified(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` indices (at least one per class, then proportionally to the class sizes), sorted."""
    classes = np.unique(labels)
    count = max(count, len(classes))
    by_class = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    picked = [idx[0] for idx in by_class.values()]
    rest = rng.permutation(np.concatenate([idx[1:] for idx in by_class.values()]))
    picked += list(rest[: max(0, count - len(picked))])
    return np.sort(np.array(picked, dtype=np.int64))
