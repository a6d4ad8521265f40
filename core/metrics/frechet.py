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


def checked_features(features: np.ndarray, needs: str, what: str = "") -> np.ndarray:
    """float64 N x D features with N >= 2 and finite values; `needs` names the metric in the message."""
    feats = np.asarray(features, np.float64)
    label = f"{what} features" if what else "features"
    if feats.ndim != 2:
        raise InvalidInput(f"{label[0].upper()}{label[1:]} must be N x D, got shape {feats.shape}.")
    if len(feats) < 2:
        raise InvalidInput(f"{needs} needs at least 2 samples per set; {'the ' + what.lower() + ' set has' if what else 'got'} "
                           f"{len(feats)}.")
    if not np.isfinite(feats).all():
        raise InvalidInput(f"The {label.lower()} hold NaN or infinite values.")
    return feats


def fit_gaussian(features: np.ndarray) -> GaussianStats:
    feats = checked_features(features, "A Fréchet distance (a covariance)")
    return GaussianStats(feats.mean(0), np.cov(feats, rowvar=False), len(feats))


IMAGINARY_TOLERANCE = 1e-3  # pytorch-fid refuses a square root with a larger imaginary part


@dataclass(frozen=True)
class Frechet:
    value: float
    imaginary: float = 0.0  # largest |imaginary part| the matrix square root had (its real part is used)

    @property
    def note(self) -> str:
        """Words for the stored convention when the square root was not real (pytorch-fid would have refused)."""
        if self.imaginary <= IMAGINARY_TOLERANCE:
            return ""
        return (f"the covariance product's square root had an imaginary part up to {self.imaginary:.3g} "
                f"(pytorch-fid refuses above {IMAGINARY_TOLERANCE:g}); its real part was used: treat this value "
                "with care")


def frechet(a: GaussianStats, b: GaussianStats, eps: float = 1e-6) -> Frechet:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2), as pytorch-fid computes it (same eps fallback), with the
    size of any imaginary part of the square root, which pytorch-fid raises on and this records."""
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
    imaginary = 0.0
    if np.iscomplexobj(covmean):
        imaginary = float(np.max(np.abs(covmean.imag)))
        if imaginary > IMAGINARY_TOLERANCE:
            warnings.warn(f"Fréchet distance: imaginary component {imaginary:.3g} in the matrix square root; "
                          "using its real part", RuntimeWarning, stacklevel=2)
        covmean = covmean.real
    return Frechet(float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)), imaginary)


def frechet_distance(a: GaussianStats, b: GaussianStats, eps: float = 1e-6) -> float:
    return frechet(a, b, eps).value


def frechet_features(a: np.ndarray, b: np.ndarray) -> Frechet:
    """The same distance between Gaussians fitted to two feature sets, from the features themselves.

    With A, B the centred features scaled by 1/sqrt(n - 1) (so S_a = A^T A, S_b = B^T B), the nonzero eigenvalues
    of S_a S_b are the squared singular values of A B^T, hence Tr((S_a S_b)^1/2) = ||A B^T||_* (nuclear norm) and
    Tr(S) = ||A||_F^2. When a set is smaller than the feature size this is exact and far cheaper than sqrtm of the
    d x d product (2048-d: minutes of CPU under load vs milliseconds for 64 samples), and it has no rounding from
    the square root of a singular matrix; otherwise the Gaussians go through `frechet_distance`."""
    fa, fb = fit_gaussian(a), fit_gaussian(b)  # validates (N x D, N >= 2, finite) and gives the means
    if fa.mu.shape != fb.mu.shape:
        raise InvalidInput(f"Feature sizes differ: {fa.mu.shape[0]} vs {fb.mu.shape[0]}.")
    if min(fa.count, fb.count) >= fa.mu.shape[0]:
        return frechet(fa, fb)
    x = (np.asarray(a, np.float64) - fa.mu) / np.sqrt(fa.count - 1)
    y = (np.asarray(b, np.float64) - fb.mu) / np.sqrt(fb.count - 1)
    diff = fa.mu - fb.mu
    nuclear = np.linalg.svd(x @ y.T, compute_uv=False).sum()
    return Frechet(float(diff.dot(diff) + (x * x).sum() + (y * y).sum() - 2 * nuclear))  # real by construction


def frechet_distance_features(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_features(a, b).value
