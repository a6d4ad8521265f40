"""Paired statistics (core.metrics.paired) against scipy and hand-worked cases."""
import math

import numpy as np
import pytest
from scipy import stats

from core.errors import InvalidInput
from core.metrics.paired import paired_difference, sentence, wilcoxon_p


def test_wilcoxon_on_a_hand_worked_case():
    # five positive differences: the exact null distribution of W+ has 2^5 outcomes, one with W+ = 15
    # and one with W+ = 0, so the two-sided p is 2/32
    assert wilcoxon_p(np.array([1.0, 2, 3, 4, 5])) == pytest.approx(2 / 32)
    # ranks 1..6 with signs + - + + + +: W- = 2, P(W- <= 2) = #{subsets of 1..6 summing to <= 2} / 64 = 3/64
    assert wilcoxon_p(np.array([1.0, -2, 3, 4, 5, 6])) == pytest.approx(2 * 3 / 64)
    assert wilcoxon_p(np.zeros(7)) == 1.0  # no difference at all: no evidence


def test_interval_and_p_value_equal_scipys_own():
    rng = np.random.default_rng(3)
    a = rng.normal(30, 2, 120)
    b = a - 0.4 + rng.normal(0, 1, 120)
    d = paired_difference(a, b, seed=7)
    diff = a - b
    ref = stats.bootstrap((diff,), np.mean, confidence_level=0.95, n_resamples=4000, method="BCa",
                          rng=np.random.default_rng(7)).confidence_interval
    assert (d.ci_low, d.ci_high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert d.p_value == pytest.approx(stats.wilcoxon(diff).pvalue, rel=1e-12)
    assert d.mean_difference == pytest.approx(diff.mean()) and d.n == 120 and d.dropped == 0
    assert d.ci_low < diff.mean() < d.ci_high and d.ci_low > 0
    assert d.verdict == "distinguishable" and d.better == "a"


def test_constant_differences_give_an_exact_interval():
    d = paired_difference(np.full(10, 3.0), np.full(10, 2.0))
    assert (d.ci_low, d.ci_high) == (1.0, 1.0)
    assert d.p_value == pytest.approx(2 / 2**10)  # all ten of the same sign
    assert d.verdict == "distinguishable" and d.better == "a"


def test_direction_follows_the_metric():
    # LPIPS: lower is better, so a's lower values make a the better model
    a, b = np.linspace(0.1, 0.2, 12), np.linspace(0.1, 0.2, 12) + 0.05
    d = paired_difference(a, b, higher_is_better=False)
    assert d.mean_difference == pytest.approx(-0.05) and d.better == "a"
    assert "a is better than b on LPIPS" in sentence(d, "a", "b", "LPIPS")
    # a count with no better direction: distinguishable, but nobody is called better
    d = paired_difference(a, b, higher_is_better=None)
    assert d.verdict == "distinguishable" and d.better == "" and "differ on" in sentence(d, "a", "b", "detections")


def test_noise_only_is_not_distinguishable_and_says_so():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 60), rng.normal(0, 1, 60)
    d = paired_difference(a, b)
    assert d.verdict == "not distinguishable" and d.ci_low < 0 < d.ci_high and d.p_value > 0.05
    assert "not distinguishable from zero" in sentence(d, "x", "y", "PSNR (dB)")


def test_non_finite_pairs_are_left_out_and_counted():
    a = np.array([np.inf, 31.0, 29.0, 30.0, np.nan])
    b = np.array([np.inf, 30.0, 28.5, 29.0, 28.0])
    d = paired_difference(a, b)
    assert d.n == 3 and d.dropped == 2 and d.mean_difference == pytest.approx((1 + 0.5 + 1) / 3)
    assert "2 left out" in sentence(d, "a", "b", "PSNR (dB)")
    few = paired_difference(np.array([1.0]), np.array([0.0]))
    assert few.verdict == "too few images" and math.isnan(few.p_value)
    with pytest.raises(InvalidInput, match="same images"):
        paired_difference(np.zeros(3), np.zeros(4))


def test_an_exact_restoration_on_one_side_counts_in_the_test_as_the_largest_difference():
    # A restores 7 images exactly (PSNR +inf) where B does not, and is slightly worse on the other 3
    a = np.array([np.inf] * 7 + [30.0, 31.0, 32.0])
    b = np.array([25.0, 26, 27, 28, 29, 30, 31, 30.5, 31.2, 31.9])
    d = paired_difference(a, b)
    assert d.n == 3 and d.only_a_infinite == 7 and d.dropped == 0
    assert d.mean_difference == pytest.approx((-0.5 - 0.2 + 0.1) / 3)  # the mean is over the finite pairs
    # the test sees ten differences: seven largest positive ones and the three small ones
    ranked = np.r_[np.full(7, 1.5), [-0.5, -0.2, 0.1]]
    assert d.p_value == pytest.approx(stats.wilcoxon(ranked).pvalue)
    assert d.p_value < 0.05 and d.verdict == "borderline"  # the interval over 3 finite pairs spans zero
    assert "7 where only A is infinite (in the test, not the mean)" in sentence(d, "A", "B", "PSNR (dB)")


def test_large_comparisons_use_the_percentile_interval_within_bounded_memory():
    rng = np.random.default_rng(1)
    a = rng.normal(0.5, 1, 5000)
    d = paired_difference(a, np.zeros(5000))
    ref = stats.bootstrap((a,), np.mean, n_resamples=4000, method="percentile",
                          rng=np.random.default_rng(0)).confidence_interval
    assert (d.ci_low, d.ci_high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    with pytest.raises(InvalidInput, match="more than the 20000"):
        paired_difference(np.zeros(20_001), np.zeros(20_001))


def test_borderline_when_the_test_and_the_interval_disagree():
    # three positive differences: the interval [1, 3] excludes zero but Wilcoxon's smallest p with 3 pairs is 0.25
    d = paired_difference(np.array([2.0, 3, 4]), np.array([1.0, 1, 1]))
    assert d.ci_low > 0 and d.p_value == pytest.approx(0.25)
    assert d.verdict == "borderline" and "borderline" in sentence(d, "a", "b", "PSNR (dB)")


def _record(url, model: str, weights_hash: str, psnr: list[float]) -> int:
    from db import repository
    from db.repository import DatasetRef, ImageMetric, MetricValue, ModelRef, RunRecord

    return repository.record_run(url, RunRecord(
        model=ModelRef(model, "restoration", "classical", "pretrained", weights_hash, "test", 0),
        dataset=DatasetRef("photos-denoise(limit=5)", "builtin", "hash-ds", 5, {"title": "five photos"}),
        task="restoration", kind="benchmark", device="cpu", dtype="float32", batch_size=1, seed=0, params={},
        code_version="test", versions={}, metrics=[MetricValue("psnr", float(np.mean(psnr)), "rgb", True)],
        image_metrics=[ImageMetric(f"img{i}", "psnr", v, "rgb") for i, v in enumerate(psnr)]))


def test_models_sharing_a_name_stay_apart_and_a_reused_run_id_is_not_served_from_the_cache(db_url):
    from core.services import compare, paired
    from core.store import ensure_store
    from db import repository

    url = ensure_store()
    _record(url, "dncnn", "aaaaaaaa11", [30, 31, 32, 33, 34])
    _record(url, "dncnn", "bbbbbbbb22", [29, 30, 31, 32, 33])  # the same model after new weights
    newest = _record(url, "median_denoise", "c", [20, 21, 22, 23, 24])
    board = compare.leaderboard("restoration", "photos-denoise(limit=5)")
    names = paired.model_names(board)
    assert sorted(names) == ["dncnn (weights aaaaaaaa)", "dncnn (weights bbbbbbbb)", "median_denoise"]
    table = paired.against_reference(board, "psnr", "dncnn (weights aaaaaaaa)").set_index("model")
    assert table.loc["dncnn (weights bbbbbbbb)", "difference"] == pytest.approx(-1.0)
    assert table.loc["median_denoise", "difference"] == pytest.approx(-10.0)

    repository.delete_runs(url, [newest])
    again = _record(url, "bilateral_denoise", "d", [25, 26, 27, 28, 29])
    board = compare.leaderboard("restoration", "photos-denoise(limit=5)")
    table = paired.against_reference(board, "psnr", "dncnn (weights aaaaaaaa)").set_index("model")
    assert again == newest or "median_denoise" not in table.index  # SQLite may hand the id on; either way:
    assert table.loc["bilateral_denoise", "difference"] == pytest.approx(-5.0)
