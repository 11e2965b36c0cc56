"""KID and precision/recall/density/coverage against their oracles: a direct O(n^2) MMD and the authors' prdc."""

from __future__ import annotations

import numpy as np
import pytest
from prdc import compute_prdc

from server.scoring.diagnostics import InnerProducts, describe, diagnostics, kid, prdc


def _direct_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The estimator written out term by term (Bińkowski et al. 2018, eq. 2) with k = (x.y/d + 1)^3."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_over_full_sets_equals_direct_unbiased_estimator():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(30, 16)), rng.normal(0.3, 1.2, size=(30, 16))
    # One subset of the full size is a permutation of the full sets: the estimate is the full-set estimate.
    mean, std = kid(InnerProducts.of(real, fake), dims=16, subsets=1, subset_size=30)
    assert mean == pytest.approx(_direct_mmd2_unbiased(real, fake), abs=1e-6, rel=1e-9)
    assert std == 0.0


def test_kid_of_identically_distributed_sets_is_near_zero_and_of_shifted_sets_positive():
    rng = np.random.default_rng(1)
    real, same, shifted = rng.normal(size=(400, 32)), rng.normal(size=(400, 32)), rng.normal(1.0, 1.0, (400, 32))
    near, spread = kid(InnerProducts.of(real, same), dims=32, subsets=20, subset_size=200)
    far, _ = kid(InnerProducts.of(real, shifted), dims=32, subsets=20, subset_size=200)
    assert abs(near) < 3 * spread + 1e-3
    assert far > 100 * abs(near)


@pytest.mark.parametrize(("m", "n", "dims"), [(120, 150, 64), (200, 90, 2048)])
def test_prdc_matches_the_prdc_package(m, n, dims):
    rng = np.random.default_rng(m)
    real = rng.normal(size=(m, dims)).astype(np.float32)
    fake = rng.normal(0.1, 1.1, size=(n, dims)).astype(np.float32)
    expected = compute_prdc(real, fake, nearest_k=5)
    got = prdc(InnerProducts.of(real, fake), k=5)
    for name in ("precision", "recall", "density", "coverage"):
        assert got[name] == pytest.approx(float(expected[name]), abs=1e-6), name


def test_copies_give_precision_and_recall_one_and_kid_zero():
    real = np.random.default_rng(3).normal(size=(100, 32))
    result = diagnostics(real, real.copy())
    assert result.precision == 1.0 and result.recall == 1.0 and result.coverage == 1.0
    # Copies are the one case where the unbiased estimator is not ~0: k(x_i, x_i) enters the cross term only, so
    # MMD^2 = 2 S_off / (m (m-1)) - 2 (S_off + S_diag) / m^2 = -2 (mean diagonal - mean off-diagonal) / m, O(1/m).
    kernel = (real @ real.T / 32 + 1.0) ** 3
    m, diagonal = len(real), np.trace(kernel)
    off = kernel.sum() - diagonal
    assert result.kid_mean == pytest.approx(2 * off / (m * (m - 1)) - 2 * (off + diagonal) / m**2, rel=1e-9)
    assert abs(result.kid_mean) < 2 * np.diag(kernel).mean() / m


def test_constant_images_give_finite_diagnostics_and_a_collapse_sentence():
    real = np.random.default_rng(4).normal(size=(50, 16))
    fake = np.tile(real[:1] + 0.5, (40, 1))
    result = diagnostics(real, fake, images=np.zeros((40, 8, 8), np.uint8))
    assert all(np.isfinite(v) for v in result.as_dict().values())
    assert result.distinct_images == 1
    assert "identical" in describe(result.as_dict())


def test_two_images_are_enough():
    rng = np.random.default_rng(5)
    result = diagnostics(rng.normal(size=(2, 8)), rng.normal(size=(2, 8)))
    assert all(np.isfinite(v) for v in result.as_dict().values())


@pytest.mark.parametrize(
    ("precision", "coverage", "distinct", "verdict"),
    [(0.91, 0.62, 1000, "close to the real distribution"), (0.95, 0.3, 1000, "mode collapse"),
     (0.2, 0.8, 1000, "artefacts"), (0.2, 0.2, 1000, "low quality"), (0.9, 0.9, 500, "mode collapse")],
)
def test_sentence_reads_the_numbers(precision, coverage, distinct, verdict):
    values = {"precision": precision, "coverage": coverage, "recall": 0.5, "density": 1.0, "kid_mean": 0.01,
              "kid_std": 0.001, "distinct_images": distinct, "n_images": 1000}
    sentence = describe(values)
    assert verdict in sentence
    assert f"{coverage:.0%} of the real images' neighbourhoods" in sentence
    assert sentence.endswith(".")


def test_near_duplicates_are_the_generated_images_with_a_twin_closer_than_real_images_ever_are():
    rng = np.random.default_rng(6)
    real = rng.normal(size=(200, 16))
    fresh = rng.normal(size=(100, 16))
    modes = rng.normal(size=(5, 16))
    repeated = np.repeat(modes, 20, axis=0) + rng.normal(0, 0.05, size=(100, 16))  # 5 outputs, small variations
    assert diagnostics(real, repeated).near_duplicates == 1.0
    assert diagnostics(real, fresh).near_duplicates <= 0.15  # ~5% by construction, fewer with fewer samples


@pytest.mark.parametrize(("twins", "collapse"), [(0.9, True), (0.3, False), (None, False)])
def test_near_duplicates_make_an_otherwise_good_class_read_as_mode_collapse(twins, collapse):
    values = {"precision": 0.8, "coverage": 0.7, "recall": 0.6, "density": 1.0, "kid_mean": 0.01, "kid_std": 0.001,
              "distinct_images": 100, "n_images": 100}
    if twins is not None:  # reports before scorer 1.3 have no near_duplicates
        values["near_duplicates"] = twins
    sentence = describe(values)
    assert ("likely mode collapse" in sentence) == collapse
    assert ("90% of samples have a near-duplicate" in sentence) == collapse


def test_a_memorization_penalty_leads_the_sentence_and_no_verdict_contradicts_it():
    values = {"precision": 0.95, "coverage": 0.9, "recall": 0.9, "density": 1.0, "kid_mean": 0.0, "kid_std": 0.0,
              "distinct_images": 100, "n_images": 100, "near_duplicates": 0.0}
    sentence = describe(values, (1.2e-7, 0.05))
    assert sentence.startswith("Memorization penalty:") and "1.2e-07 < ε 0.05" in sentence
    assert "close to the real distribution" not in sentence
    assert describe(values, (0.2, 0.05)).endswith("close to the real distribution.")  # above ε: no penalty
