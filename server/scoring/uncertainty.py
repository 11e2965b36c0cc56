"""How much a FID moves when the team samples its generator again: half-sampling of the generated images.

The estimator (chosen by measurement, docs/BENCHMARKS.md "Calibration"): REPLICATES half-samples, each m = n // 2
of the n generated images drawn without replacement (the reference stays fixed); the standard error is
sqrt(m / (n - m)) (= 1 for even n) times the standard deviation of the half-samples' FIDs. Why half-sampling and not
the plain bootstrap: FID is, to second order, a linear term (variance a / n) plus a degenerate quadratic one
(variance b / n^2: the noise of a 2,048-dim covariance estimated from ~1,000 images). A subsample of m of n has
variance a (1/m - 1/n) + b (1/m - 1/n)^2 about the full set, which at m = n/2 is a / n + b / n^2: both terms right.
A bootstrap resample holds only ~63% distinct images (duplicates shrink the sample covariance's rank), so it gets
the linear term right but inflates the quadratic one. Measured (bench/calibration.py, docs/BENCHMARKS.md; mean se
over the real sd between sets, target 0.85-1.2): where the quadratic term dominates (entries close to the real
images, FID 40-70) the bootstrap gave 1.3-1.5 on disjoint sets of real photos and 1.2-2.4 on fresh Gaussian sets
with the real features' spectrum, half-sampling 1.05-1.25; far from them (a CPU-trained baseline, FID ~400, real
Inception features of 3 x 1,000 fresh samples per class) both gave 0.91-1.10, at 200, 500 and 1,000 images.
tests/server/scoring/test_calibration.py checks both against fresh sets. Half-samples are also no dearer: m = n/2 rows
per eigendecomposition instead of ~0.632 n.

What the se estimates: how much the FID moves when the team samples its generator again and is scored against the
same reference (the one every entry of a board is scored against). The reference is held fixed, so its own noise is
not in the se: it is large (the same sets score ~4 FID apart against two disjoint 250-photo references, five times
the se at 1,000) but moves every entry of a board alike (the sets' deviations correlate 0.998 across the two). Its
ground truth is therefore the spread of fresh sets against one reference. The one cell once out of band
(without_mask, 1,000 images, 20 real generator sets: se/sd 1.33-1.35) is within that spread's sampling error (19
degrees of freedom allow 0.91-1.75). On fresh sets of 1,000 from the Gaussian with the generator's moments, against
the same real reference, two independent draws of 40 gave 0.94 and 1.22 (the se 0.83 and 0.85, the sd 0.88 and 0.70:
the sd's own noise), both pooled 1.06 (95% range 0.89-1.23), coverage 81% and 91% (`python -m bench.calibration
--regimes gaussian-generator --classes without_mask --sizes 1000 --gaussian-sets 40 --estimators half-sampling`,
2026-12-06). Settled on real samples (2026-12-07): 40 new fresh sets of 1,000 of the same generator (seeds
1100-1139) gave se/sd 1.08 public and 1.09 private (95% range 0.84-1.33), coverage 86-87%, same-generator ties 96-97%
(`python -m bench.calibration --regimes generator --classes without_mask --sizes 1000 --partitions 2`;
docs/BENCHMARKS.md).

A replicate is an exact weighted FID: with multiplicities c_i (0/1 for a half-sample, counts for the bootstrap kept
for comparison in bench/calibration.py), m = sum c_i and w_i = c_i / m, the drawn set's mean is m_w = X^T w and
its (pytorch-fid's unbiased np.cov) covariance S_w = m/(m-1) X_w^T diag(w) X_w with X_w = X - 1 m_w^T, so
tr(S_w) = m/(m-1) (sum_i w_i |x_i - m_w|^2) needs no d x d matrix.

The expensive term tr sqrt(S_r S_w) uses a factor S_r = F^T F of the fixed reference: F = (Z - mean) / sqrt(k-1)
(r = k rows) when the reference has fewer images than dims, else F = sqrt(S_r) (r = d rows). With P = X F^T (n x r),
S_r^{1/2} S_w S_r^{1/2} shares its non-zero spectrum with both
  - the r x r matrix  M_w = m/(m-1) (P^T diag(w) P - p_w p_w^T),  p_w = P^T w, and
  - the k x k matrix  A_w = m/(m-1) D^{1/2} (P - 1 p_w^T)(P - 1 p_w^T)^T D^{1/2} on the k rows with w_i > 0,
    an O(n^2) update of the Gram matrix G = P P^T (shared/FID-NOISE.md).
Each replicate takes whichever eigenproblem is smaller; the eigendecompositions are nearly all of the cost. A row
drawing every image once is the engine's FID (a test holds it to 1e-8).

The interval shown is the point estimate +- 1.96 standard errors: the half-samples' FIDs sit above the point
estimate (FID's bias grows as the set shrinks), while their spread, rescaled, is the sampling spread of n images.
The totals add the classes' variances (classes are sampled independently).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from server.scoring.frechet import ReferenceStats

REPLICATES = 100


@dataclass(frozen=True)
class Interval:
    """A score with its half-sampling standard error (its 95% interval: `submissions.results.interval_95`)."""

    point: float
    se: float


def interval_of(point: float, replicates: np.ndarray, n: int) -> Interval:
    """The point estimate with the standard error its half-sample replicates give for a set of n images:
    half_sample_scale(n) x their standard deviation (0 when they are all equal)."""
    replicates = np.asarray(replicates, dtype=np.float64)
    se = half_sample_scale(n) * float(np.std(replicates, ddof=1)) if len(replicates) > 1 else 0.0
    return Interval(point=float(point), se=se if np.isfinite(se) else 0.0)


def seed_of(images: np.ndarray, label: str) -> int:
    """A seed from the images' bytes and a label: a rescore of the same submission draws the same replicates."""
    digest = hashlib.sha256(label.encode() + b"\0" + np.ascontiguousarray(images).tobytes()).digest()
    return int.from_bytes(digest[:8], "little")


def bootstrap_counts(n: int, replicates: int = REPLICATES, seed: int = 0) -> np.ndarray:
    """(replicates, n) multiplicities: each row draws n indices with replacement."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(np.float64)


def half_size(n: int) -> int:
    """m = n // 2 images per half-sample, at least the 2 a covariance needs (all of them below 3 images)."""
    return min(n, max(2, n // 2))


def half_sample_counts(n: int, replicates: int = REPLICATES, seed: int = 0) -> np.ndarray:
    """(replicates, n) 0/1 rows: each draws m = half_size(n) of the n images without replacement."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((replicates, n))
    for row in counts:
        row[rng.choice(n, half_size(n), replace=False)] = 1.0
    return counts


def half_sample_scale(n: int) -> float:
    """sqrt(m / (n - m)): the spread of FIDs of m of the n images, rescaled to the spread of the FID of n fresh
    images (1 for even n; see the module docstring). 0 when every half-sample is the whole set (n < 3)."""
    m = half_size(n)
    return float(np.sqrt(m / (n - m))) if n > m else 0.0


def reference_factor(reference: ReferenceStats, features: np.ndarray | None) -> np.ndarray:
    """F with S_r = F^T F: the centred reference features / sqrt(m-1) when m-1 < dims, else sqrt(S_r)."""
    if features is not None and len(features) - 1 < len(reference.sigma):
        features = np.asarray(features, dtype=np.float64)
        return (features - features.mean(axis=0)) / np.sqrt(len(features) - 1)
    return reference.sqrt_sigma


def frechet_replicates(
    reference: ReferenceStats, factor: np.ndarray, features: np.ndarray, counts: np.ndarray, device: str = "cpu"
) -> np.ndarray:
    """The FID of each resampled set (one row of `counts` each: multiplicities, or 0/1 for a subsample) against the
    fixed reference. A row drawing m images is that set's FID: weights c_i / m, covariance normalized by m - 1."""
    import torch

    features = np.asarray(features, dtype=np.float64)
    sizes = counts.sum(axis=1)
    weights = counts / sizes[:, None]
    unbiased = sizes / (sizes - 1)
    # Centre on the full set's mean first: the statistics are shift-invariant and the sums lose no digits.
    centre = features.mean(axis=0)
    centred = features - centre
    means = weights @ centred  # (B, d), relative to centre
    mean_terms = np.sum((means + (centre - reference.mu)) ** 2, axis=1)
    spread = weights @ np.sum(centred**2, axis=1) - np.sum(means**2, axis=1)
    trace_generated = unbiased * spread
    projected = torch.as_tensor(centred @ factor.T, device=device)  # P, (n, r)
    w = torch.as_tensor(weights, device=device)
    scale = torch.as_tensor(unbiased, device=device)
    if projected.is_cuda:
        tr_sqrt = _trace_sqrt_batched(projected, w, scale)
    else:
        tr_sqrt = _trace_sqrt_threaded(projected, w, scale)
    return mean_terms + np.trace(reference.sigma) + trace_generated - 2 * tr_sqrt


def _uses_gram(projected, weights) -> bool:
    """The k x k Gram form when the reference factor has more rows than a replicate's mean count of drawn images
    (k: about 0.632 n for a bootstrap resample, m for a subsample of m)."""
    return projected.shape[1] >= float((weights > 0).sum(dim=1).double().mean())


def _replicate_matrix(projected, gram, w, unbiased):
    """The symmetric matrix of one replicate whose eigenvalues' square roots sum to tr sqrt(S_r S_w).

    Only the k drawn rows (w_i > 0) enter: r x r = B^T B, or k x k = B B^T from the shared Gram matrix, with
    B = sqrt(m/(m-1) w) * (P - 1 p_w^T) on the drawn rows (m images drawn; `unbiased` = m/(m-1)).
    """
    import torch

    drawn = torch.nonzero(w > 0).squeeze(1)
    root_w = torch.sqrt(w[drawn] * unbiased)
    if gram is None:
        rows = (projected[drawn] - w @ projected) * root_w[:, None]
        return rows.T @ rows
    g = gram @ w
    centred = gram[drawn][:, drawn] - g[drawn][:, None] - g[drawn][None, :] + w @ g
    return root_w[:, None] * centred * root_w[None, :]


def _trace_sqrt_threaded(projected, weights, unbiased) -> np.ndarray:
    """CPU: one replicate per task on single-threaded torch, as many tasks at once as torch has threads.

    A 500 x 500 eigendecomposition gains little from a second thread inside LAPACK (its tridiagonal reduction is
    memory-bound), while independent replicates on separate cores scale; the threads release the GIL in torch.
    """
    import torch

    gram = projected @ projected.T if _uses_gram(projected, weights) else None

    def one(row: int) -> float:
        matrix = _replicate_matrix(projected, gram, weights[row], unbiased[row])
        return float(_sum_sqrt_eigenvalues(torch.linalg.eigvalsh((matrix + matrix.T) / 2)[None])[0])

    threads = torch.get_num_threads()
    if threads == 1 or len(weights) == 1:
        return np.array([one(row) for row in range(len(weights))])
    try:
        with ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            return np.array(list(pool.map(one, range(len(weights)))))
    finally:
        torch.set_num_threads(threads)  # the workers' set_num_threads(1) also lowered the process-wide BLAS pool


def _trace_sqrt_batched(projected, weights, unbiased, chunk: int = 25) -> np.ndarray:
    """GPU: the replicates' matrices stacked into one batched eigvalsh per chunk.

    Undrawn rows have w_i = 0, so keeping all n rows only adds zero eigenvalues (they count as 0): every replicate has
    the same shape, r x r or n x n, and needs no gather.
    """
    import torch

    gram = projected @ projected.T if _uses_gram(projected, weights) else None
    out = []
    for start in range(0, len(weights), chunk):
        w = weights[start : start + chunk]  # (b, n)
        root_w = torch.sqrt(w * unbiased[start : start + chunk, None])
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
