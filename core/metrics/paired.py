"""Is the difference between two models on the same images real? The paired per-image difference, its mean with a
bootstrap 95% confidence interval (scipy.stats.bootstrap, BCa) and a Wilcoxon signed-rank p-value
(scipy.stats.wilcoxon), and a sentence saying whether the difference is distinguishable from zero.

Pairs are the images both runs scored; a pair whose difference is not finite (PSNR is +inf on an image a method
restores exactly, on both sides) is left out and counted, never silently averaged.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from core.errors import InvalidInput

CONFIDENCE = 0.95
RESAMPLES = 4000
ALPHA = 0.05
MAX_PAIRS = 100_000  # the bootstrap holds RESAMPLES x batch draws; larger comparisons are refused, not sampled


@dataclass(frozen=True)
class PairedDifference:
    """a - b over the images both have: mean, bootstrap interval, Wilcoxon p and the verdict in words."""

    n: int  # pairs used
    dropped: int  # pairs left out: a missing or non-finite value on either side
    mean_a: float
    mean_b: float
    mean_difference: float
    ci_low: float
    ci_high: float
    p_value: float  # Wilcoxon signed-rank, two-sided; 1.0 when every difference is zero
    better: str  # "a" | "b" | "" — which side the data favour, where distinguishable
    verdict: str  # "distinguishable" | "not distinguishable" | "borderline" | "too few images"

    @property
    def distinguishable(self) -> bool:
        return self.verdict == "distinguishable"


def _interval(diff: np.ndarray, seed: int, resamples: int) -> tuple[float, float]:
    if np.all(diff == diff[0]):
        return float(diff[0]), float(diff[0])  # no spread: every resample has the same mean
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCa's degenerate-distribution warning: handled below
        res = stats.bootstrap((diff,), np.mean, confidence_level=CONFIDENCE, n_resamples=resamples,
                              method="BCa", rng=np.random.default_rng(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if not (math.isfinite(low) and math.isfinite(high)):  # BCa undefined (e.g. nearly all ties): percentile
            res = stats.bootstrap((diff,), np.mean, confidence_level=CONFIDENCE, n_resamples=resamples,
                                  method="percentile", rng=np.random.default_rng(seed))
            low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return low, high


def wilcoxon_p(diff: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the differences (zeros dropped, scipy's default); 1.0 when all
    differences are zero (no evidence of any difference)."""
    if not np.any(diff != 0):
        return 1.0
    return float(stats.wilcoxon(diff).pvalue)


def paired_difference(a: np.ndarray, b: np.ndarray, *, higher_is_better: bool | None = True, seed: int = 0,
                      resamples: int = RESAMPLES) -> PairedDifference:
    """Compare per-image values `a` and `b` (same images, same order). Distinguishable from zero when the
    bootstrap interval excludes zero and Wilcoxon's p is below 0.05; when only one of them says so, borderline."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise InvalidInput(f"Paired values need the same images on both sides ({a.size} against {b.size}).")
    with np.errstate(invalid="ignore"):
        diff_all = a - b  # inf - inf is NaN: left out below
    keep = np.isfinite(diff_all)
    diff = diff_all[keep]
    n, dropped = int(diff.size), int((~keep).sum())
    if n > MAX_PAIRS:
        raise InvalidInput(f"{n} paired images are more than the {MAX_PAIRS} a comparison takes.")
    mean_a = float(a[keep].mean()) if n else math.nan
    mean_b = float(b[keep].mean()) if n else math.nan
    if n < 2:
        return PairedDifference(n, dropped, mean_a, mean_b, float(diff.mean()) if n else math.nan, math.nan, math.nan,
                                math.nan, "", "too few images")
    mean = float(diff.mean())
    low, high = _interval(diff, seed, resamples)
    p = wilcoxon_p(diff)
    excludes_zero, significant = low > 0 or high < 0, p < ALPHA
    verdict = ("distinguishable" if excludes_zero and significant else
               "borderline" if excludes_zero or significant else "not distinguishable")
    better = ""
    if verdict == "distinguishable" and higher_is_better is not None:
        better = "a" if (mean > 0) == higher_is_better else "b"
    return PairedDifference(n, dropped, mean_a, mean_b, mean, low, high, p, better, verdict)


def sentence(d: PairedDifference, name_a: str, name_b: str, metric: str, digits: int = 3) -> str:
    """The comparison in a student's words, e.g. "DnCNN is better than Gaussian filter on PSNR (dB): +1.2
    (95% interval +0.9 to +1.5, Wilcoxon p = 0.0001, 100 images)"."""
    if d.verdict == "too few images":
        return f"{name_a} and {name_b} share {d.n} scored image(s) on {metric}: too few to compare."
    f = lambda v: f"{v:+.{digits}g}"  # noqa: E731
    facts = f"{f(d.mean_difference)} (95% interval {f(d.ci_low)} to {f(d.ci_high)}, Wilcoxon p = {d.p_value:.2g}, " \
            f"{d.n} images{f', {d.dropped} left out' if d.dropped else ''})"
    if d.verdict == "distinguishable":
        if d.better:
            winner, loser = (name_a, name_b) if d.better == "a" else (name_b, name_a)
            return f"{winner} is better than {loser} on {metric}: {name_a} − {name_b} = {facts}."
        return f"{name_a} and {name_b} differ on {metric}: {name_a} − {name_b} = {facts}."
    if d.verdict == "borderline":
        return (f"{name_a} − {name_b} on {metric} = {facts}: the interval and the test disagree, so treat the "
                "difference as borderline.")
    return f"{name_a} − {name_b} on {metric} = {facts}: not distinguishable from zero on these images."
