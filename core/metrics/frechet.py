"""Fréchet distance between Gaussians fitted to feature sets (the formula behind FID).

FID proper means pool3 features of the 2015-12-05 Inception-v3 weights; the same distance in any other
feature space is reported as "FD (<extractor>)" and kept in its own metric column (see core.metrics.features).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from core.errors import InvalidInput


@dataclass(frozen=True)
class GaussianStats:
    mu: np.ndarray
    sigma: np.ndarray
    count: int


def fit_gaussian(features: np.ndarray) -> GaussianStats:
    feats = np.asarray(features, np.float64)
    if feats.ndim != 2:
        raise InvalidInput(f"Features must be N x D, got shape {feats.shape}.")
    if len(feats) < 2:
        raise InvalidInput(f"A Fréchet distance needs at least 2 samples per set (a covariance); got {len(feats)}.")
    if not np.isfinite(feats).all():
        raise InvalidInput("The features hold NaN or infinite values.")
    return GaussianStats(feats.mean(0), np.cov(feats, rowvar=False), len(feats))


def frechet_distance(a: GaussianStats, b: GaussianStats, eps: float = 1e-6) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2), as pytorch-fid computes it (same eps fallback)."""
    if a.mu.shape != b.mu.shape:
        raise InvalidInput(f"Feature sizes differ: {a.mu.shape[0]} vs {b.mu.shape[0]}.")
    diff = a.mu - b.mu
    s1, s2 = np.atleast_2d(a.sigma), np.atleast_2d(b.sigma)
    with warnings.catch_warnings():  # singular products (n < dims) are expected; handled like pytorch-fid
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1.dot(s2))
        if not np.isfinite(covmean).all():
            offset = np.eye(s1.shape[0]) * eps
            covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real  # numerical noise; pytorch-fid raises only above 1e-3 imaginary
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
