"""The bootstrap of FID: exact replicates (both spectral forms), reproducible seeds, intervals that shrink with n."""

from __future__ import annotations

import numpy as np
import pytest

from server.scoring.frechet import ReferenceStats, frechet_distance_to_reference
from server.scoring.uncertainty import (
    bootstrap_counts,
    frechet_replicates,
    half_sample_counts,
    half_sample_scale,
    interval_of,
    penalized_replicates,
    reference_factor,
    seed_of,
)


def _reference(m: int, dims: int, seed: int = 0):
    features = np.random.default_rng(seed).normal(size=(m, dims)) ** 2
    reference = ReferenceStats.of_features(features)
    return reference, features


@pytest.mark.parametrize(
    ("m", "n", "dims"),
    [(20, 80, 64),  # small reference: r x r batched form
     (120, 60, 64),  # reference larger than half of n: k x k Gram form
     (300, 100, 64)],  # reference with more images than dims: F = sqrt(S_r)
)
def test_equal_weights_reproduce_the_engine_fid(m, n, dims):
    reference, real = _reference(m, dims)
    generated = np.random.default_rng(1).normal(0.4, 1.1, size=(n, dims))
    replicate = frechet_replicates(reference, reference_factor(reference, real), generated, np.ones((1, n)))
    assert replicate[0] == pytest.approx(frechet_distance_to_reference(reference, generated), rel=1e-8)


@pytest.mark.parametrize(("m", "n"), [(20, 80), (120, 60)])
def test_a_replicate_equals_the_fid_of_the_resampled_set(m, n):
    reference, real = _reference(m, 48)
    generated = np.random.default_rng(2).normal(0.2, 1.0, size=(n, 48))
    counts = bootstrap_counts(n, replicates=3, seed=7)
    replicates = frechet_replicates(reference, reference_factor(reference, real), generated, counts)
    for row, value in zip(counts, replicates, strict=True):
        resampled = np.repeat(generated, row.astype(int), axis=0)
        assert value == pytest.approx(frechet_distance_to_reference(reference, resampled), rel=1e-8)


@pytest.mark.parametrize(("m", "n"), [(20, 80), (120, 61)])  # r x r and k x k forms; an odd n
def test_a_half_sample_replicate_equals_the_fid_of_that_half(m, n):
    reference, real = _reference(m, 48)
    generated = np.random.default_rng(2).normal(0.2, 1.0, size=(n, 48))
    counts = half_sample_counts(n, replicates=3, seed=7)
    assert (counts.sum(axis=1) == n // 2).all() and set(np.unique(counts)) == {0.0, 1.0}
    replicates = frechet_replicates(reference, reference_factor(reference, real), generated, counts)
    for row, value in zip(counts, replicates, strict=True):
        half = generated[row > 0]
        assert value == pytest.approx(frechet_distance_to_reference(reference, half), rel=1e-8)
    assert half_sample_scale(80) == 1.0 and half_sample_scale(61) == pytest.approx(np.sqrt(30 / 31))


def test_interval_shrinks_roughly_like_one_over_sqrt_n():
    # Generated N(0.5, I) against a N(0, I) reference: the mean term dominates, so the noise goes like 1/sqrt(n)
    # (for matching distributions the 1/n terms would dominate instead).
    dims = 16
    real = np.random.default_rng(3).normal(size=(2000, dims))
    reference = ReferenceStats.of_features(real)
    factor = reference_factor(reference, real)
    rng = np.random.default_rng(4)
    se = {}
    for n in (100, 400, 1600):
        generated = rng.normal(0.5, 1.0, size=(n, dims))
        reps = frechet_replicates(reference, factor, generated, half_sample_counts(n, 200, seed=n))
        se[n] = interval_of(frechet_distance_to_reference(reference, generated), reps, n).se
    assert se[100] > se[400] > se[1600]
    assert 1.5 < se[100] / se[400] < 3.0 and 1.5 < se[400] / se[1600] < 3.0


def test_seed_depends_on_the_images_and_the_label_only():
    images = np.arange(64, dtype=np.uint8).reshape(1, 8, 8)
    assert seed_of(images, "a") == seed_of(images.copy(), "a")
    assert seed_of(images, "a") != seed_of(images, "b")
    assert seed_of(images, "a") != seed_of(images + 1, "a")
    np.testing.assert_array_equal(bootstrap_counts(50, 5, seed=9), bootstrap_counts(50, 5, seed=9))
    assert (bootstrap_counts(50, 5, seed=9).sum(axis=1) == 50).all()


def test_identical_generated_images_give_a_finite_zero_width_interval():
    reference, real = _reference(30, 16)
    generated = np.tile(real[:1], (40, 1))
    reps = frechet_replicates(reference, reference_factor(reference, real), generated, half_sample_counts(40, 20))
    assert np.isfinite(reps).all()
    result = interval_of(frechet_distance_to_reference(reference, generated), reps, 40)
    assert result.se == pytest.approx(0.0, abs=1e-9) and np.isfinite(result.point)


def test_penalty_applies_per_replicate_with_its_own_distance():
    counts = np.array([[2.0, 0.0], [0.0, 2.0]])
    raw = np.array([10.0, 10.0])
    out = penalized_replicates(raw, np.array([0.05, 0.5]), counts, eps=0.1)
    np.testing.assert_allclose(out, [10.0 / 0.05, 10.0])


@pytest.mark.parametrize(("m", "n"), [(20, 80), (120, 60)])  # the r x r form, then the k x k Gram form
def test_gpu_batched_form_equals_the_cpu_threaded_form(m, n):
    # The GPU path keeps all n rows (undrawn ones weigh 0) and stacks the replicates; run here on CPU tensors.
    import torch

    from server.scoring.uncertainty import _trace_sqrt_batched, _trace_sqrt_threaded

    rng = np.random.default_rng(5)
    projected = torch.as_tensor(rng.normal(size=(n, 64)) @ rng.normal(size=(64, m)))
    weights = torch.as_tensor(bootstrap_counts(n, replicates=7, seed=3) / n)
    unbiased = torch.full((7,), n / (n - 1), dtype=torch.float64)
    np.testing.assert_allclose(_trace_sqrt_batched(projected, weights, unbiased, chunk=3),
                               _trace_sqrt_threaded(projected, weights, unbiased), rtol=1e-9)


def test_threaded_replicates_leave_torch_threads_as_they_were():
    import torch

    reference, real = _reference(20, 32)
    generated = np.random.default_rng(6).normal(size=(50, 32))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        counts = bootstrap_counts(50, 6, seed=1)
        first = frechet_replicates(reference, reference_factor(reference, real), generated, counts)
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)  # the serial path gives the same numbers
        np.testing.assert_allclose(
            frechet_replicates(reference, reference_factor(reference, real), generated, counts), first, rtol=1e-12)
    finally:
        torch.set_num_threads(before)
