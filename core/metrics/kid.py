"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs").

KID is the unbiased estimate of the squared MMD between two feature sets under the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3, averaged over random subsets of m samples from each set:
    MMD^2_u = [sum_{i!=j} k(x_i, x_j) + sum_{i!=j} k(y_i, y_j)] / (m (m - 1)) - 2 sum_{i,j} k(x_i, y_j) / m^2
This is torchmetrics' KernelInceptionDistance (degree 3, gamma 1/d, coef 1), clean-fid's and StyleGAN2-ADA's
kid (100 subsets of at most 1000). Unlike FID it is unbiased in the sample count, so it is the number to read
beside FID for small sets; it can be slightly negative. Stored raw (papers often print KID x 10^3).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import InvalidInput
from core.metrics.frechet import checked_features

SUBSETS = 100
MAX_SUBSET_SIZE = 1000


@dataclass(frozen=True)
class KID:
    mean: float
    std: float  # over subsets (population std, as torchmetrics' unbiased=False); 0 when every subset is the full set
    subsets: int
    subset_size: int


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef: float = 1.0) -> np.ndarray:
    """(x y^T / d + coef)^degree, d the feature size (torchmetrics' poly_kernel with gamma = 1/d)."""
    return (x @ y.T / x.shape[1] + coef) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-sized samples under the cubic polynomial kernel."""
    m = len(x)
    if len(y) != m or m < 2:
        raise InvalidInput(f"Unbiased MMD needs two samples of the same size >= 2; got {len(x)} and {len(y)}.")
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(generated: np.ndarray, reference: np.ndarray, subsets: int = SUBSETS,
                              max_subset_size: int = MAX_SUBSET_SIZE, seed: int = 0) -> KID:
    """Mean (and std) of MMD^2_u over `subsets` random subsets of m = min(n_gen, n_ref, max_subset_size) samples
    drawn without replacement from each set (clean-fid's subset size rule), with a seeded generator."""
    a, b = checked_features(generated, "KID", "Generated"), checked_features(reference, "KID", "Reference")
    if a.shape[1] != b.shape[1]:
        raise InvalidInput(f"Feature sizes differ: {a.shape[1]} vs {b.shape[1]}.")
    if subsets < 1 or max_subset_size < 2:
        raise InvalidInput("KID needs at least one subset of at least 2 samples.")
    m = min(len(a), len(b), max_subset_size)
    if m == len(a) == len(b):  # every subset is a permutation of both full sets: the same value each time
        value = mmd2_unbiased(a, b)
        return KID(value, 0.0, subsets, m)
    rng = np.random.default_rng(seed)
    values = np.array([mmd2_unbiased(a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)])
                       for _ in range(subsets)])
    return KID(float(values.mean()), float(values.std()), subsets, m)
