"""With the real FID weights (converted offline): memorization check on copies vs generated-looking images,
and reproducibility of a fixed fixture's score."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from server.scoring import Scorer
from tests.utils.competition import make_competition, random_images


@pytest.fixture(scope="module")
def scored(tmp_path_factory, real_torch_home):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(real_torch_home))
        competition = make_competition(tmp_path_factory.mktemp("real"), train_per_class=4, test_per_class=4)
        copies = {cls: np.stack([np.asarray(Image.open(p)) for p in competition.train_files(cls)[:3]])
                  for cls in competition.classes}
        noisy = {cls: noisy_blobs(3, seed=200 + i, brightness=80 + 100 * i)
                 for i, cls in enumerate(competition.classes)}
        scorer = Scorer(device="cpu", allow_download=False)
        first = scorer.score(competition, noisy)
        again = Scorer(device="cpu", allow_download=False).score(competition, noisy)
        return {"copies": scorer.score(competition, copies), "noisy": first, "again": again}


def noisy_blobs(n, seed, brightness):
    """Fresh samples of the competition's blob distribution with pixel noise: a plausible, imperfect generator."""
    noise = np.random.default_rng(seed).normal(0, 12, size=(n, 64, 64))
    return (random_images(n, seed=seed, brightness=brightness) + noise).clip(0, 255).astype(np.uint8)


def test_copied_training_images_are_penalized(scored):
    for cls, result in scored["copies"].classes.items():
        assert result.penalized, cls
        assert result.memorization_distance < 1e-6
        assert result.fid_all > 1e4 * result.raw_fid_all


def test_generated_looking_images_are_not_penalized(scored):
    for cls, result in scored["noisy"].classes.items():
        assert not result.penalized, (cls, result.memorization_distance, result.memorization_eps)
        assert result.memorization_distance > result.memorization_eps > 0
        assert result.fid_all == result.raw_fid_all


def test_score_is_stable_across_runs(scored):
    first, again = scored["noisy"], scored["again"]
    for split in ("public", "private", "all"):
        assert getattr(again, f"score_{split}") == pytest.approx(getattr(first, f"score_{split}"), rel=1e-9, abs=1e-9)
