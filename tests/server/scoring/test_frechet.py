"""The Fréchet distance: closed forms, symmetry, rank deficiency, parity with pytorch-fid's sqrtm version."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from server.scoring.frechet import (
    ReferenceStats,
    frechet_distance,
    frechet_distance_to_reference,
    sqrt_covariance_of,
    sqrt_psd,
    statistics,
)


@pytest.fixture(autouse=True)
def _forbid_sqrtm(monkeypatch):
    """The engine must never call scipy.linalg.sqrtm (SciPy 1.18 broke pytorch-fid's call)."""
    original = scipy.linalg.sqrtm

    def guarded(*args, **kwargs):
        import inspect

        caller = inspect.stack()[1].filename
        assert "server/scoring" not in caller, f"sqrtm called from {caller}"
        return original(*args, **kwargs)

    monkeypatch.setattr(scipy.linalg, "sqrtm", guarded)


def test_identity_covariances_give_squared_mean_difference():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=32), rng.normal(size=32)
    assert frechet_distance(mu1, np.eye(32), mu2, np.eye(32)) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-12)


def test_scaled_identities_closed_form():
    # tr(aI) + tr(bI) - 2 tr sqrt(ab I) = d (sqrt(a) - sqrt(b))^2
    d, a, b = 16, 4.0, 0.25
    expected = d * (np.sqrt(a) - np.sqrt(b)) ** 2
    assert frechet_distance(np.zeros(d), a * np.eye(d), np.zeros(d), b * np.eye(d)) == pytest.approx(expected, 1e-12)


def test_symmetric_in_its_arguments():
    rng = np.random.default_rng(1)
    mu1, s1 = statistics(rng.normal(size=(200, 24)))
    mu2, s2 = statistics(rng.gamma(2.0, size=(200, 24)))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-10)


@pytest.mark.parametrize(("n", "dims"), [(40, 64), (100, 256), (300, 64)])
def test_matches_pytorch_fid(n, dims, pytorch_fid_distance):
    """Rank-deficient (n < dims) and full-rank cases, through both the Gram and the dims x dims path."""
    rng = np.random.default_rng(n)
    real, generated = rng.normal(size=(n, dims)) ** 2, rng.normal(0.2, 1.3, size=(n + 7, dims))
    reference = ReferenceStats.of_features(real)
    mu, sigma = statistics(generated)
    expected = pytorch_fid_distance(mu, sigma, reference.mu, reference.sigma)
    assert frechet_distance_to_reference(reference, generated) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(reference.mu, reference.sigma, mu, sigma) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("n", "dims"), [(50, 2048), (500, 64)])
def test_a_set_against_itself_is_zero(n, dims):
    features = np.random.default_rng(2).normal(size=(n, dims)) ** 2
    reference = ReferenceStats.of_features(features)
    assert abs(frechet_distance_to_reference(reference, features)) < 1e-6


def test_rank_deficient_square_root_from_features_equals_eigh_root():
    features = np.random.default_rng(3).normal(size=(30, 80))
    _, sigma = statistics(features)
    root = sqrt_covariance_of(features, sigma)
    np.testing.assert_allclose(root, sqrt_psd(sigma), atol=1e-12)
    np.testing.assert_allclose(root @ root, sigma, atol=1e-12)


def test_statistics_are_pytorch_fids():
    features = np.random.default_rng(4).normal(size=(20, 8)).astype(np.float32)
    mu, sigma = statistics(features)
    np.testing.assert_allclose(mu, np.mean(features.astype(np.float64), axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(features, rowvar=False), rtol=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        statistics(features[:1])
