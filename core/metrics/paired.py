"""Is the difference between two models on the same images real? The paired per-image difference, its mean with a
bootstrap 95% confidence interval (scipy.stats.bootstrap, BCa) and a Wilcoxon signed-rank p-value
(scipy.stats.wilcoxon), and a sentence saying whether the difference is distinguishable from zero.

Pairs are the images both runs scored. PSNR is +inf on an image a method restores exactly: where only one side is
exact the difference is infinite, so it counts in the Wilcoxon test as the largest difference of its sign (ranks
are all the test reads) but stays out of the mean and its interval, and the sentence says how many there were.
Where both sides are infinite (or a value is missing) the pair says nothing and is left out, counted.

The interval is BCa for up to BCA_MAX pairs; above that, the percentile bootstrap (the mean's sampling distribution
is close to normal there, and BCa's jackknife grows with the square of the pairs). Resamples are drawn in batches,
so memory stays bounded for the largest comparison allowed.
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
BCA_MAX = 2_000
MAX_PAIRS = 20_000  # the per-run cap of stored per-image values read back (db.analytics.image_values)
_BATCH_ELEMENTS = 2**22  # resampled values held at once (32 MiB of float64)


@dataclass(frozen=True)
class PairedDifference:
    """a - b over the images both have: mean, bootstrap interval, Wilcoxon p and the verdict in words."""

    n: int  # pairs in the mean and its interval (finite differences)
    dropped: int  # pairs left out: a value missing, or infinite on both sides
    only_a_infinite: int  # pairs in the test only: a is +inf (e.g. exact restoration) and b is not, or a is -inf
    only_b_infinite: int
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
    batch = max(1, _BATCH_ELEMENTS // diff.size)

    def boot(method: str) -> tuple[float, float]:
        res = stats.bootstrap((diff,), np.mean, confidence_level=CONFIDENCE, n_resamples=resamples, batch=batch,
                              method=method, rng=np.random.default_rng(seed))
        return float(res.confidence_interval.low), float(res.confidence_interval.high)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCa's degenerate-distribution warning: handled below
        low, high = boot("BCa" if diff.size <= BCA_MAX else "percentile")
        if not (math.isfinite(low) and math.isfinite(high)):  # BCa undefined (e.g. nearly all ties): percentile
            low, high = boot("percentile")
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
    if a.size > MAX_PAIRS:
        raise InvalidInput(f"{a.size} paired images are more than the {MAX_PAIRS} a comparison takes.")
    with np.errstate(invalid="ignore"):
        diff_all = a - b  # inf - inf is NaN: says nothing, left out below
    finite = np.isfinite(diff_all)
    one_sided = np.isinf(diff_all)
    diff = diff_all[finite]
    n, dropped = int(diff.size), int((~finite & ~one_sided).sum())
    a_side = int((one_sided & ~np.isfinite(a)).sum())
    b_side = int((one_sided & np.isfinite(a)).sum())
    mean_a = float(a[finite].mean()) if n else math.nan
    mean_b = float(b[finite].mean()) if n else math.nan
    if n + a_side + b_side < 2 or n < 1:
        return PairedDifference(n, dropped, a_side, b_side, mean_a, mean_b, float(diff.mean()) if n else math.nan,
                                math.nan, math.nan, math.nan, "", "too few images")
    mean = float(diff.mean())
    low, high = _interval(diff, seed, resamples) if n > 1 else (math.nan, math.nan)
    # the test reads ranks only: an infinite difference is the largest of its sign
    largest = float(np.abs(diff).max()) + 1.0 if n else 1.0
    p = wilcoxon_p(np.where(one_sided, np.sign(diff_all) * largest, diff_all)[finite | one_sided])
    excludes_zero, significant = bool(low > 0 or high < 0), p < ALPHA
    verdict = ("distinguishable" if excludes_zero and significant else
               "borderline" if excludes_zero or significant else "not distinguishable")
    better = ""
    if verdict == "distinguishable" and higher_is_better is not None:
        better = "a" if (mean > 0) == higher_is_better else "b"
    return PairedDifference(n, dropped, a_side, b_side, mean_a, mean_b, mean, low, high, p, better, verdict)


def sentence(d: PairedDifference, name_a: str, name_b: str, metric: str, digits: int = 3) -> str:
    """The comparison in a student's words, e.g. "DnCNN is better than Gaussian filter on PSNR (dB): +1.2
    (95% interval +0.9 to +1.5, Wilcoxon p = 0.0001, 100 images)"."""
    if d.verdict == "too few images":
        return f"{name_a} and {name_b} share {d.n} scored image(s) on {metric}: too few to compare."
    f = lambda v: f"{v:+.{digits}g}"  # noqa: E731
    extra = "".join(f", {k} where only {who} is infinite (in the test, not the mean)"
                    for k, who in ((d.only_a_infinite, name_a), (d.only_b_infinite, name_b)) if k)
    facts = f"{f(d.mean_difference)} (95% interval {f(d.ci_low)} to {f(d.ci_high)}, Wilcoxon p = {d.p_value:.2g}, " \
            f"{d.n} images{extra}{f', {d.dropped} left out' if d.dropped else ''})"
    if d.verdict == "distinguishable":
        if d.better:
            winner, loser = (name_a, name_b) if d.better == "a" else (name_b, name_a)
            return f"{winner} is better than {loser} on {metric}: {name_a} − {name_b} = {facts}."
        return f"{name_a} and {name_b} differ on {metric}: {name_a} − {name_b} = {facts}."
    if d.verdict == "borderline":
        return (f"{name_a} − {name_b} on {metric} = {facts}: the interval and the test disagree, so treat the "
                "difference as borderline.")
    return f"{name_a} − {name_b} on {metric} = {facts}: not distinguishable from zero on these images."
