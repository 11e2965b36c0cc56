"""How much a FID moves when the team samples its generator again: a bootstrap over the generated images.

A replicate draws n of the n generated features with replacement (the reference stays fixed); write it as
multiplicities c_i (sum n) and weights w_i = c_i / n. The resampled set's statistics are exact weighted ones:
mean m_w = X^T w and (pytorch-fid's unbiased np.cov) S_w = n/(n-1) X_w^T diag(w) X_w with X_w = X - 1 m_w^T, so
tr(S_w) = n/(n-1) (sum_i w_i |x_i - m_w|^2) needs no d x d matrix.

The expensive term tr sqrt(S_r S_w) uses a factor S_r = F^T F of the fixed reference: F = (Z - mean) / sqrt(m-1)
(r = m rows) when the reference has fewer images than dims, else F = sqrt(S_r) (r = d rows). With P = X F^T (n x r),
S_r^{1/2} S_w S_r^{1/2} shares its non-zero spectrum with both
  - the r x r matrix  M_w = n/(n-1) (P^T diag(w) P - p_w p_w^T),  p_w = P^T w, and
  - the k x k matrix  A_w = n/(n-1) D^{1/2} (P - 1 p_w^T)(P - 1 p_w^T)^T D^{1/2} on the k rows with w_i > 0,
    an O(n^2) update of the Gram matrix G = P P^T (shared/FID-NOISE.md).
Each replicate takes whichever eigenproblem is smaller (k is about 0.632 n: the expected share of distinct draws);
the eigendecompositions are nearly all of the cost. With w = 1/n for all i a replicate
is the engine's FID (a test holds it to 1e-8).

The interval shown is the point estimate +- 1.96 bootstrap standard errors, not the percentile interval: a
resample holds only ~63% distinct images, which inflates every replicate's FID (the sample covariance loses rank), so
the replicates sit above the point estimate while their spread is still the sampling spread. bench/calibration.py
measures how often one sample set's interval covers fresh sets' scores.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from server.scoring.frechet import ReferenceStats

REPLICATES = 100
Z_95 = NormalDist().inv_cdf(0.975)


@dataclass(frozen=True)
class Interval:
    """A score with its bootstrap standard error and 95% interval (point +- 1.96 se)."""

    point: float
    se: float

    @property
    def low(self) -> float:
        return self.point - Z_95 * self.se

    @property
    def high(self) -> float:
        return self.point + Z_95 * self.se


def interval_of(point: float, replicates: np.ndarray) -> Interval:
    """The point estimate with the standard deviation of its replicates (0 when they are all equal)."""
    replicates = np.asarray(replicates, dtype=np.float64)
    se = float(np.std(replicates, ddof=1)) if len(replicates) > 1 else 0.0
    return Interval(point=float(point), se=se if np.isfinite(se) else 0.0)


def seed_of(images: np.ndarray, label: str) -> int:
    """A seed from the images' bytes and a label: a rescore of the same submission draws the same replicates."""
    digest = hashlib.sha256(label.encode() + b"\0" + np.ascontiguousarray(images).tobytes()).digest()
    return int.from_bytes(digest[:8], "little")


def bootstrap_counts(n: int, replicates: int = REPLICATES, seed: int = 0) -> np.ndarray:
    """(replicates, n) multiplicities: each row draws n indices with replacement."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(np.float64)


def reference_factor(reference: ReferenceStats, features: np.ndarray | None) -> np.ndarray:
    """F with S_r = F^T F: the centred reference features / sqrt(m-1) when m-1 < dims, else sqrt(S_r)."""
    if features is not None and len(features) - 1 < len(reference.sigma):
        features = np.asarray(features, dtype=np.float64)
        return (features - features.mean(axis=0)) / np.sqrt(len(features) - 1)
    return reference.sqrt_sigma


def frechet_replicates(
    reference: ReferenceStats, factor: np.ndarray, features: np.ndarray, counts: np.ndarray, device: str = "cpu"
) -> np.ndarray:
    """The FID of each resampled set (one row of `counts` each) against the fixed reference."""
    import torch

    features = np.asarray(features, dtype=np.float64)
    n = len(features)
    weights = counts / n
    # Centre on the full set's mean first: the statistics are shift-invariant and the sums lose no digits.
    centre = features.mean(axis=0)
    centred = features - centre
    means = weights @ centred  # (B, d), relative to centre
    mean_terms = np.sum((means + (centre - reference.mu)) ** 2, axis=1)
    spread = weights @ np.sum(centred**2, axis=1) - np.sum(means**2, axis=1)
    trace_generated = n / (n - 1) * spread
    projected = torch.as_tensor(centred @ factor.T, device=device)  # P, (n, r)
    w = torch.as_tensor(weights, device=device)
    tr_sqrt = _trace_sqrt_batched(projected, w) if projected.is_cuda else _trace_sqrt_threaded(projected, w)
    return mean_terms + np.trace(reference.sigma) + trace_generated - 2 * tr_sqrt


def _uses_gram(projected) -> bool:
    """The k x k Gram form when the reference factor has more rows than a replicate's expected distinct draws."""
    n, r = projected.shape
    return r >= (1 - np.exp(-1)) * n


def _replicate_matrix(projected, gram, w):
    """The symmetric matrix of one replicate whose eigenvalues' square roots sum to tr sqrt(S_r S_w).

    Only the k drawn rows (w_i > 0) enter: r x r = B^T B, or k x k = B B^T from the shared Gram matrix, with
    B = sqrt(n/(n-1) w) * (P - 1 p_w^T) on the drawn rows.
    """
    import torch

    n = len(w)
    drawn = torch.nonzero(w > 0).squeeze(1)
    root_w = torch.sqrt(w[drawn] * (n / (n - 1)))
    if gram is None:
        rows = (projected[drawn] - w @ projected) * root_w[:, None]
        return rows.T @ rows
    g = gram @ w
    centred = gram[drawn][:, drawn] - g[drawn][:, None] - g[drawn][None, :] + w @ g
    return root_w[:, None] * centred * root_w[None, :]


def _trace_sqrt_threaded(projected, weights) -> np.ndarray:
    """CPU: one replicate per task on single-threaded torch, as many tasks at once as torch has threads.

    A 500 x 500 eigendecomposition gains little from a second thread inside LAPACK (its tridiagonal reduction is
    memory-bound), while independent replicates on separate cores scale; the threads release the GIL in torch.
    """
    import torch

    gram = projected @ projected.T if _uses_gram(projected) else None

    def one(w) -> float:
        matrix = _replicate_matrix(projected, gram, w)
        return float(_sum_sqrt_eigenvalues(torch.linalg.eigvalsh((matrix + matrix.T) / 2)[None])[0])

    threads = torch.get_num_threads()
    if threads == 1 or len(weights) == 1:
        return np.array([one(w) for w in weights])
    try:
        with ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            return np.array(list(pool.map(one, weights)))
    finally:
        torch.set_num_threads(threads)  # the workers' set_num_threads(1) also lowered the process-wide BLAS pool


def _trace_sqrt_batched(projected, weights, chunk: int = 25) -> np.ndarray:
    """GPU: the replicates' matrices stacked into one batched eigvalsh per chunk.

    Undrawn rows have w_i = 0, so keeping all n rows only adds zero eigenvalues (they count as 0): every replicate has
    the same shape, r x r or n x n, and needs no gather.
    """
    import torch

    n = projected.shape[0]
    gram = projected @ projected.T if _uses_gram(projected) else None
    out = []
    for start in range(0, len(weights), chunk):
        w = weights[start : start + chunk]  # (b, n)
        root_w = torch.sqrt(w * (n / (n - 1)))
        if gram is None:
            rows = (projected[None] - (w @ projected)[:, None, :]) * root_w[..., None]  # (b, n, r)
            matrices = rows.transpose(1, 2) @ rows
        else:
            g = w @ gram  # (b, n)
            c = torch.sum(w * g, dim=1)
            centred = gram[None] - g[:, :, None] - g[:, None, :] + c[:, None, None]
            matrices = root_w[:, :, None] * centred * root_w[:, None, :]
        out.append(_sum_sqrt_eigenvalues(torch.linalg.eigvalsh((matrices + matrices.transpose(1, 2)) / 2)))
    return np.concatenate(out)


def _sum_sqrt_eigenvalues(values) -> np.ndarray:
    """sum sqrt(lambda) per row; eigenvalues below numerical rank are round-off (either sign) and count as 0."""
    import torch

    size = values.shape[-1]
    threshold = values.abs().amax(dim=-1, keepdim=True) * size * np.finfo(np.float64).eps
    kept = torch.where(values > threshold, values, torch.zeros_like(values))
    return torch.sqrt(kept).sum(dim=-1).cpu().numpy()


def penalized_replicates(raw: np.ndarray, nearest: np.ndarray, counts: np.ndarray, eps: float) -> np.ndarray:
    """MiFID of each replicate: its own memorization distance d_b = mean of the drawn images' nearest distances."""
    from server.scoring.memorization import MIN_DISTANCE

    distances = counts @ np.asarray(nearest, dtype=np.float64) / counts.sum(axis=1)
    return np.where(distances < eps, raw / np.maximum(distances, MIN_DISTANCE), raw)
