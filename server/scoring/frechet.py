"""Statistics and the Fréchet distance, without scipy.linalg.sqrtm.

FID = |mu_r - mu_g|^2 + tr(S_r) + tr(S_g) - 2 tr sqrt(S_r S_g). With R = sqrt(S_r) (symmetric PSD),
S_r S_g is similar to R S_g R, which is symmetric PSD, so tr sqrt(S_r S_g) = sum_i sqrt(eig_i(R S_g R)).
R depends only on the reference, so it is computed once and cached. When the generated set has fewer images than
dimensions (1,000 vs 2,048), S_g = X^T X / (N-1) for the centered features X, and R S_g R = Y^T Y / (N-1) with
Y = X R shares its nonzero eigenvalues with the much smaller N x N matrix Y Y^T / (N-1); that is also better
conditioned (one null eigenvalue instead of 2048 - N + 1 rounding-noise ones).

Computed in torch float64 on the scorer's device (the GPU when present).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReferenceStats:
    """What the distance needs from one reference set: mean, covariance, its trace and its square root."""

    mu: np.ndarray
    sigma: np.ndarray
    sqrt_sigma: np.ndarray
    count: int

    @classmethod
    def of_features(cls, features: np.ndarray, device: str = "cpu") -> ReferenceStats:
        mu, sigma = statistics(features)
        return cls(mu=mu, sigma=sigma, sqrt_sigma=sqrt_covariance_of(features, sigma, device), count=len(features))


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mu and sigma as pytorch-fid computes them: float64 mean and np.cov (N-1 normalization)."""
    features = np.asarray(features, dtype=np.float64)
    if len(features) < 2:
        raise ValueError(f"a covariance needs at least 2 images, got {len(features)}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _torch(array: np.ndarray, device: str):
    import torch

    return torch.as_tensor(np.asarray(array), dtype=torch.float64, device=device)


def sqrt_psd(sigma: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Symmetric square root of a covariance via eigh.

    Rank-deficient covariances (fewer images than dimensions) have eigenvalues that rounding makes slightly
    negative or tiny positive; those below the numerical-rank threshold are set to 0.
    """
    import torch

    values, vectors = torch.linalg.eigh(_torch(sigma, device))
    root = torch.sqrt(values.clamp(min=0) * (values > _rank_threshold(values, len(sigma))))
    return ((vectors * root) @ vectors.T).cpu().numpy()


def sqrt_covariance_of(features: np.ndarray, sigma: np.ndarray, device: str = "cpu") -> np.ndarray:
    """sqrt(sigma) of a feature set; through the N x N Gram matrix when N-1 < dims.

    With centered X = U s V^T, sigma = X^T X / (N-1) and sqrt(sigma) = X^T U diag(1/s) U^T X / sqrt(N-1), which
    needs the eigendecomposition of X X^T (N x N) instead of the 2048 x 2048 one: ~50x less work for 1,000
    images, and the null space is exactly zero instead of rounding noise.
    """
    import torch

    if len(features) - 1 >= len(sigma):
        return sqrt_psd(sigma, device)
    centered = _torch(features, device)
    centered = centered - centered.mean(dim=0)
    gram = centered @ centered.T
    values, vectors = torch.linalg.eigh((gram + gram.T) / 2)
    keep = values > _rank_threshold(values, len(values))
    inverse_singular = torch.where(keep, 1 / values.clamp(min=1e-300).sqrt(), torch.zeros_like(values))
    projected = vectors.T @ centered  # U^T X
    root = projected.T @ (projected * inverse_singular[:, None]) / np.sqrt(len(features) - 1)
    return ((root + root.T) / 2).cpu().numpy()


def _rank_threshold(values, size: int) -> float:
    """numpy.linalg.matrix_rank's tolerance: max eigenvalue x size x machine epsilon."""
    return float(values.abs().max()) * size * np.finfo(np.float64).eps


def trace_sqrt_product(sqrt_sigma_ref, features=None, sigma=None, device: str = "cpu") -> float:
    """tr sqrt(S_ref S) from R = sqrt(S_ref) and either the features (preferred when N-1 < dims) or sigma."""
    import torch

    root = _torch(sqrt_sigma_ref, device)
    if features is not None and len(features) - 1 < len(root):
        centered = _torch(features, device)
        centered = centered - centered.mean(dim=0)
        projected = centered @ root
        product = projected @ projected.T / (len(centered) - 1)
    else:
        if sigma is None:
            sigma = np.cov(np.asarray(features, dtype=np.float64), rowvar=False)
        product = root @ _torch(sigma, device) @ root
    product = (product + product.T) / 2  # symmetric in exact arithmetic; make eigvalsh see it so
    values = torch.linalg.eigvalsh(product)
    # Below the numerical rank the eigenvalues are rounding noise (either sign); their square roots would add up
    # to a visible bias over ~1,000 null directions, so they count as 0.
    kept = values * (values > _rank_threshold(values, len(values)))
    return float(torch.sqrt(kept).sum())


def frechet_distance_to_reference(
    reference: ReferenceStats, features: np.ndarray, device: str = "cpu"
) -> float:
    """FID of a feature set (N, D) against a reference with precomputed sqrt(S_ref)."""
    features = np.asarray(features, dtype=np.float64)
    if len(features) < 2:
        raise ValueError(f"a covariance needs at least 2 images, got {len(features)}")
    diff = features.mean(axis=0) - reference.mu
    trace_generated = float(np.var(features, axis=0, ddof=1).sum())  # tr(S_g) without forming S_g
    tr_sqrt = trace_sqrt_product(reference.sqrt_sigma, features=features, device=device)
    return float(diff @ diff + np.trace(reference.sigma) + trace_generated - 2 * tr_sqrt)


def frechet_distance(mu1, sigma1, mu2, sigma2, device: str = "cpu") -> float:
    """The general form on statistics alone (pytorch-fid's calculate_frechet_distance, without sqrtm)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in shape: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs "
                         f"{sigma2.shape}")
    diff = mu1 - mu2
    tr_sqrt = trace_sqrt_product(sqrt_psd(sigma1, device), sigma=sigma2, device=device)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_sqrt)
