"""Human preference from pairwise votes: Bradley-Terry ratings with bootstrap confidence intervals, and how they
agree with an image metric (rank correlation, the pairs where they disagree most).

Bradley-Terry (1952): P(i beats j) = p_i / (p_i + p_j). Fitted by Hunter's (2004) MM iteration, all bootstrap
resamples at once as one batch of win matrices. A tie counts as half a win for each side (as Chatbot Arena's
Bradley-Terry leaderboard does). Every pair of models also gets one virtual tie (a weak prior), so a model that
never won has a finite rating and a model nobody compared sits at the middle; with a few dozen votes per pair its
pull is negligible. Ratings are on the Elo scale: 400 * log10(p), centred so the models' mean is 1000, so a gap of
400 points means 10:1 odds.

The intervals are a parametric bootstrap: each resample keeps every pair's number of votes and ties and draws
its decisive votes from the fitted model's probability for that pair (binomial), then refits; percentile 95%.
Resampling the votes themselves would give a zero-width interval to a pair whose few votes all agree (one vote
A > B resamples to A > B every time); drawing from the fitted, prior-shrunk probability keeps it honest early in a
round. A model nobody has compared yet has no interval (NaN). Votes are treated as independent, though one
person's votes are not quite, so the intervals are if anything a little narrow. All resamples are fitted at once,
as one batch of win matrices.

Written here rather than taken from a library: scipy has no Bradley-Terry fit, and the batched bootstrap is what
keeps a live leaderboard cheap; tests/test_arena.py checks the fit against scipy.optimize on the same likelihood.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from core.errors import InvalidInput

CONFIDENCE = 0.95
RESAMPLES = 1000
PRIOR_TIES = 1.0  # virtual tied games per pair of models
ELO = 400.0 / math.log(10.0)  # natural-log strength -> Elo points
CENTRE = 1000.0
OUTCOMES = ("a", "b", "tie")
_ITERATIONS = 2000
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Vote:
    """One vote between models a and b (indices into the model list); winner is "a", "b" or "tie"."""

    a: int
    b: int
    winner: str


@dataclass(frozen=True)
class Ratings:
    names: list[str]
    rating: np.ndarray  # Elo points, mean 1000
    low: np.ndarray  # 95% bootstrap interval
    high: np.ndarray
    votes: np.ndarray  # votes each model took part in
    wins: np.ndarray  # wins, ties counted as half
    total_votes: int
    resamples: int

    def order(self) -> list[int]:
        """Models best first (ties in rating by name)."""
        return sorted(range(len(self.names)), key=lambda i: (-self.rating[i], self.names[i]))


def _tallies(votes: list[Vote], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (a, b), a < b, that have votes, and per pair: a's wins, b's wins, ties."""
    counts: dict[tuple[int, int], list[int]] = {}
    for v in votes:
        if not (0 <= v.a < k and 0 <= v.b < k) or v.a == v.b:
            raise InvalidInput(f"A vote compares models {v.a} and {v.b}, which are not two of the {k} models.")
        if v.winner not in OUTCOMES:
            raise InvalidInput(f"A vote's outcome must be one of {', '.join(OUTCOMES)}, not {v.winner!r}.")
        w = OUTCOMES.index(v.winner)
        a, b = v.a, v.b
        if a > b:
            a, b, w = b, a, (1 - w if w < 2 else 2)
        counts.setdefault((a, b), [0, 0, 0])[w] += 1
    pairs = sorted(counts)
    return np.array(pairs, dtype=np.int64).reshape(-1, 2), np.array([counts[p] for p in pairs], dtype=np.float64).reshape(-1, 3)


def _win_matrices(pairs: np.ndarray, wins_a: np.ndarray, wins_b: np.ndarray, ties: np.ndarray, k: int) -> np.ndarray:
    """(B, pairs) tallies -> wins (B, k, k), wins[r, i, j] = times i beat j (ties half each), prior included."""
    wins = np.full((wins_a.shape[0], k, k), PRIOR_TIES / 2.0)
    idx = np.arange(k)
    wins[:, idx, idx] = 0.0
    if len(pairs):
        a, b = pairs[:, 0], pairs[:, 1]
        wins[:, a, b] += wins_a + ties / 2.0
        wins[:, b, a] += wins_b + ties / 2.0
    return wins


def fit(wins: np.ndarray) -> np.ndarray:
    """Log-strengths (B, k), each row centred at mean 0, from win matrices (B, k, k) by Hunter's MM iteration."""
    wins = np.asarray(wins, dtype=np.float64)
    games = wins + np.swapaxes(wins, 1, 2)
    total_wins = wins.sum(axis=2)
    p = np.ones(wins.shape[:2])
    for _ in range(_ITERATIONS):
        denom = (games / (p[:, :, None] + p[:, None, :])).sum(axis=2)
        new = total_wins / denom
        new /= np.exp(np.log(new).mean(axis=1, keepdims=True))
        done = np.max(np.abs(np.log(new) - np.log(p))) < _TOLERANCE
        p = new
        if done:
            break
    return np.log(p)


def ratings(names: list[str], votes: list[Vote], *, resamples: int = RESAMPLES, seed: int = 0) -> Ratings:
    """Bradley-Terry ratings of `names` from `votes`, with parametric bootstrap intervals (NaN for a model
    without votes)."""
    k = len(names)
    if k < 2:
        raise InvalidInput("Ratings need at least two models.")
    pairs, tally = _tallies(votes, k)
    wins_a, wins_b, ties = tally[:, 0], tally[:, 1], tally[:, 2]
    point = fit(_win_matrices(pairs, wins_a[None], wins_b[None], ties[None], k))[0]
    played = np.zeros(k)
    won = np.zeros(k)
    if len(pairs):
        np.add.at(played, pairs[:, 0], tally.sum(axis=1))
        np.add.at(played, pairs[:, 1], tally.sum(axis=1))
        np.add.at(won, pairs[:, 0], wins_a + ties / 2)
        np.add.at(won, pairs[:, 1], wins_b + ties / 2)
    low = np.full(k, np.nan)
    high = np.full(k, np.nan)
    if len(pairs) and resamples > 0:
        rng = np.random.default_rng(seed)
        decisive = (wins_a + wins_b).astype(np.int64)
        p_a = 1.0 / (1.0 + np.exp(point[pairs[:, 1]] - point[pairs[:, 0]]))
        drawn_a = rng.binomial(decisive, p_a, size=(resamples, len(pairs))).astype(np.float64)
        boot = fit(_win_matrices(pairs, drawn_a, decisive - drawn_a, np.broadcast_to(ties, drawn_a.shape), k))
        tail = (1 - CONFIDENCE) / 2 * 100
        lo, hi = np.percentile(boot, [tail, 100 - tail], axis=0)
        low = np.where(played > 0, CENTRE + ELO * lo, np.nan)
        high = np.where(played > 0, CENTRE + ELO * hi, np.nan)
    else:
        resamples = 0
    return Ratings(list(names), CENTRE + ELO * point, low, high, played, won, int(tally.sum()), resamples)


def wilson_lower(share: float, n: int, z: float = 1.959964) -> float:
    """Lower end of the Wilson score interval of a proportion (95% by default): ranks 9 of 10 above 1 of 1."""
    if n <= 0:
        return 0.0
    centre = share + z * z / (2 * n)
    spread = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def win_probability(rating_a: float, rating_b: float) -> float:
    """P(a preferred over b) under the fitted model."""
    return 1.0 / (1.0 + 10 ** ((rating_b - rating_a) / 400.0))


@dataclass(frozen=True)
class Agreement:
    """Rank agreement between preference ratings and a metric over the same models."""

    metric: str
    models: int
    spearman: float | None
    kendall: float | None
    p_value: float | None = None  # Spearman's, two-sided: with a handful of models only a near-perfect order counts

    def sentence(self) -> str:
        if self.spearman is None and self.models < 3:
            return f"{self.metric}: fewer than three models have both a rating and a value, so no rank correlation."
        if self.spearman is None:
            return f"{self.metric}: all models tie on it or on the rating, so no rank correlation."
        return (f"{self.metric}: Spearman ρ = {self.spearman:+.2f} (p = {self.p_value:.2g}), Kendall τ = "
                f"{self.kendall:+.2f} over {self.models} models (+1: the metric orders the models as people did; "
                "−1: the reverse).")


def agreement(metric: str, rating: dict[str, float], values: dict[str, float | None],
              higher_is_better: bool = True) -> Agreement:
    """Spearman and Kendall rank correlation of ratings with a metric, oriented so +1 means the same order.
    Models without a finite metric value are left out (e.g. PSNR inf on every image counts as the best)."""
    names = [m for m in rating if values.get(m) is not None and not math.isnan(values[m])]  # type: ignore[arg-type]
    if len(names) < 3:
        return Agreement(metric, len(names), None, None)
    x = np.array([rating[m] for m in names])
    y = np.array([values[m] for m in names], dtype=np.float64)
    y = np.where(np.isposinf(y), np.finfo(np.float64).max, y)
    if not higher_is_better:
        y = -y
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return Agreement(metric, len(names), None, None)
    rho = stats.spearmanr(x, y)
    return Agreement(metric, len(names), float(rho.statistic), float(stats.kendalltau(x, y).statistic),
                     float(rho.pvalue))
