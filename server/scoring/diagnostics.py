"""Why a FID is what it is: KID and precision / recall / density / coverage on the same Inception features.

- KID (Bińkowski et al. 2018): the unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3,
  averaged over random subsets (mean and standard deviation, as torch-fidelity reports it).
- Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020) with k-nearest-neighbour
  balls, k = 5, exactly as the authors' `prdc` package computes them (strict inequalities included).
- Near-duplicates: the share of generated images whose nearest other generated image is closer than all but the
  closest 5% of real images are to theirs. Real faces are rarely that close to one another; a generator that
  collapsed to a few outputs repeats each of them with small variations, so most of its images have such a twin
  (while byte-level distinctness, `distinct_images`, misses repeats that differ by a pixel).

All pairwise quantities come from three inner-product matrices (real-real, fake-fake, real-fake), computed once:
KID's kernels and the Euclidean distances both read them, so each subset costs an index, not a matrix product.
They are diagnostics beside the FID, never part of the ranked score.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

NEAREST_K = 5
NEAR_DUPLICATE_QUANTILE = 5.0  # percent of the real nearest-neighbour distances below which a pair is a near-twin
# Calibrated on real faces (tests/server/scoring/test_diagnosis_real.py): held-aside real images and blurred ones have
# at most ~10% near-duplicates, a generator repeating 5 faces with small variations ~100%.
NEAR_DUPLICATE_SHARE = 0.5
LOW_PRECISION = 0.5  # below it, most samples lie outside every real image's 5-NN ball
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


@dataclass(frozen=True)
class Diagnostics:
    kid_mean: float
    kid_std: float
    precision: float
    recall: float
    density: float
    coverage: float
    distinct_images: int
    n_images: int
    near_duplicates: float  # share of generated images with a near-twin among the others (see the docstring)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class InnerProducts:
    real: np.ndarray  # (m, m)
    fake: np.ndarray  # (n, n)
    cross: np.ndarray  # (m, n)

    @classmethod
    def of(cls, real: np.ndarray, fake: np.ndarray, device: str = "cpu") -> InnerProducts:
        import torch

        r = torch.as_tensor(np.asarray(real, dtype=np.float64), device=device)
        f = torch.as_tensor(np.asarray(fake, dtype=np.float64), device=device)
        return cls(real=(r @ r.T).cpu().numpy(), fake=(f @ f.T).cpu().numpy(), cross=(r @ f.T).cpu().numpy())

    def distances(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Euclidean distances real-real, fake-fake, real-fake from |x|^2 + |y|^2 - 2 x.y (clipped at 0)."""
        real_sq, fake_sq = np.diag(self.real), np.diag(self.fake)
        return (
            _root(real_sq[:, None] + real_sq[None, :] - 2 * self.real),
            _root(fake_sq[:, None] + fake_sq[None, :] - 2 * self.fake),
            _root(real_sq[:, None] + fake_sq[None, :] - 2 * self.cross),
        )


def _root(squared: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(squared, 0.0))


def polynomial_kernel(inner: np.ndarray, dims: int) -> np.ndarray:
    return (inner / dims + 1.0) ** 3


def mmd2_unbiased(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased MMD^2: off-diagonal means of k_xx and k_yy minus twice the mean of k_xy."""
    m, n = len(k_xx), len(k_yy)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def kid(
    products: InnerProducts, dims: int, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE, seed: int = 0
) -> tuple[float, float]:
    """KID mean and standard deviation over `subsets` random subsets of min(subset_size, m, n) of each set."""
    m, n = len(products.real), len(products.fake)
    size = min(subset_size, m, n)
    if size < 2:
        raise ValueError(f"KID needs at least 2 images in each set, got {m} real and {n} generated")
    k_rr, k_ff = polynomial_kernel(products.real, dims), polynomial_kernel(products.fake, dims)
    k_rf = polynomial_kernel(products.cross, dims)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        r, f = rng.choice(m, size, replace=False), rng.choice(n, size, replace=False)
        values.append(mmd2_unbiased(k_rr[np.ix_(r, r)], k_ff[np.ix_(f, f)], k_rf[np.ix_(r, f)]))
    return float(np.mean(values)), float(np.std(values))


def kth_neighbour_radii(distances: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row's point to its k-th nearest neighbour in the same set (itself excluded)."""
    return np.partition(distances, k, axis=1)[:, k]


def prdc(products: InnerProducts, k: int = NEAREST_K) -> dict[str, float]:
    """Precision, recall, density, coverage with k-NN balls (k capped at set size - 1 for tiny sets)."""
    return prdc_of_distances(*products.distances(), k=k)


def prdc_of_distances(
    real_real: np.ndarray, fake_fake: np.ndarray, real_fake: np.ndarray, k: int = NEAREST_K
) -> dict[str, float]:
    k = min(k, len(real_real) - 1, len(fake_fake) - 1)
    real_radii = kth_neighbour_radii(real_real, k)
    fake_radii = kth_neighbour_radii(fake_fake, k)
    inside_real_balls = real_fake < real_radii[:, None]  # (m, n): fake j inside real i's ball
    return {
        "precision": float(inside_real_balls.any(axis=0).mean()),
        "recall": float((real_fake < fake_radii[None, :]).any(axis=1).mean()),
        "density": float(inside_real_balls.sum(axis=0).mean() / k),
        "coverage": float((real_fake.min(axis=1) < real_radii).mean()),
    }


def near_duplicate_share(real_real: np.ndarray, fake_fake: np.ndarray) -> float:
    """Share of generated images nearer to another generated image than NEAR_DUPLICATE_QUANTILE % of the real
    images are to their nearest real neighbour."""
    real_nearest = kth_neighbour_radii(real_real, 1)
    fake_nearest = kth_neighbour_radii(fake_fake, 1)
    return float((fake_nearest < np.percentile(real_nearest, NEAR_DUPLICATE_QUANTILE)).mean())


def diagnostics(
    real: np.ndarray, fake: np.ndarray, images: np.ndarray | None = None, seed: int = 0, device: str = "cpu"
) -> Diagnostics:
    """All diagnostics of one class: generated features `fake` against the real features `real`."""
    products = InnerProducts.of(real, fake, device)
    kid_mean, kid_std = kid(products, dims=np.shape(real)[1], seed=seed)
    source = images if images is not None else np.asarray(fake)
    distinct = len({row.tobytes() for row in np.ascontiguousarray(source).reshape(len(source), -1)})
    real_real, fake_fake, real_fake = products.distances()
    return Diagnostics(
        kid_mean=kid_mean, kid_std=kid_std, **prdc_of_distances(real_real, fake_fake, real_fake),
        distinct_images=distinct, n_images=len(fake), near_duplicates=near_duplicate_share(real_real, fake_fake),
    )


def describe(values: dict, memorization: tuple[float, float] | None = None) -> str:
    """One plain sentence that reads a class's diagnostics for the team; a memorization penalty comes first.

    `memorization` is (mean distance d, threshold ε): below ε the class is penalized, and copies of real images
    look real on every other measure, so nothing else is said about them.
    """
    if memorization is not None and memorization[0] < memorization[1]:
        distance, eps = memorization
        return (f"Memorization penalty: the samples are copies or near-copies of real images (mean distance "
                f"{distance:.2g} < ε {eps:.2g}), so the FID was divided by the distance; generate new images "
                f"instead of reproducing the data.")
    n, distinct = int(values["n_images"]), int(values["distinct_images"])
    coverage, precision, recall = values["coverage"], values["precision"], values["recall"]
    if distinct < 2:
        return f"All {n} images are identical: the generator has collapsed to a single output."
    facts = (
        f"covers {coverage:.0%} of the real images' neighbourhoods; {precision:.0%} of samples look real "
        f"(precision), and the samples reach {recall:.0%} of the real images (recall)"
    )
    twins = values.get("near_duplicates")  # absent from reports before scorer 1.3
    if isinstance(twins, int | float) and twins >= NEAR_DUPLICATE_SHARE:
        facts += f"; {twins:.0%} of samples have a near-duplicate among the others"
    if distinct < n:
        facts += f"; only {distinct} of {n} images are distinct"
    collapsed = _collapsed(precision, coverage, distinct / n, twins)
    return f"{facts[0].upper()}{facts[1:]}: {_verdict(precision, coverage, collapsed)}."


def _collapsed(precision: float, coverage: float, distinct_share: float, twins: object) -> bool:
    """Too little variety: repeated images, repeated near-twins, or realistic samples that cover little."""
    repeated = isinstance(twins, int | float) and twins >= NEAR_DUPLICATE_SHARE
    return repeated or distinct_share < 0.9 or (precision >= 0.7 and coverage < 0.5)


def _verdict(precision: float, coverage: float, collapsed: bool) -> str:
    if collapsed and precision < LOW_PRECISION:
        return "samples look unlike real images and alike each other (low quality and likely mode collapse)"
    if collapsed:
        return "likely mode collapse (a few outputs repeated, too little variety)"
    if precision < LOW_PRECISION and coverage >= 0.5:
        return "varied, but many samples look unlike real images (artefacts or blur)"
    if precision < LOW_PRECISION:
        return "most samples look unlike real images (low quality: blur, artefacts or noise)"
    return "close to the real distribution"
