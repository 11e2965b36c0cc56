from __future__ import annotations

import pytest
import torch

from baselines.augment import diff_augment, random_xflip

POLICY = "translation,cutout,brightness,contrast"


def test_diff_augment_keeps_shape_and_is_reproducible():
    images = torch.rand(6, 1, 64, 64) * 2 - 1
    torch.manual_seed(1)
    first = diff_augment(images, POLICY)
    torch.manual_seed(1)
    second = diff_augment(images, POLICY)
    assert first.shape == images.shape
    assert torch.equal(first, second)
    assert not torch.equal(first, images)


def test_diff_augment_passes_gradients():
    images = torch.rand(2, 1, 64, 64, requires_grad=True)
    diff_augment(images, POLICY).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_cutout_blanks_a_square():
    out = diff_augment(torch.ones(4, 1, 64, 64), "cutout")
    zeros_per_image = (out == 0).flatten(1).sum(1)
    assert ((zeros_per_image > 0) & (zeros_per_image <= 32 * 32)).all()


def test_unknown_policy_is_named():
    with pytest.raises(ValueError, match="saturation"):
        diff_augment(torch.zeros(1, 1, 8, 8), "translation,saturation")


def test_xflip_flips_some_images_exactly():
    torch.manual_seed(0)
    images = torch.rand(32, 1, 8, 8)
    out = random_xflip(images)
    flipped = [torch.equal(o, i.flip(2)) for o, i in zip(out, images, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, images, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 0 < sum(flipped) < 32
