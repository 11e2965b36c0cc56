"""With the real FID weights (converted offline): memorization check on copies vs generated-looking images,
reproducibility of a fixed fixture's score, and the onnxruntime engine's FIDs against torch and pytorch-fid."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from server.scoring import FeatureExtractor, Scorer
from server.scoring.frechet import frechet_distance
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
        scorer = Scorer(FeatureExtractor(device="cpu", allow_download=False))  # auto: onnxruntime on CPU
        first = scorer.score(competition, noisy)
        again = Scorer(FeatureExtractor(device="cpu", allow_download=False)).score(competition, noisy)
        torch = FeatureExtractor(device="cpu", allow_download=False, engine="torch")
        torch_fp32 = Scorer(torch).score(competition, noisy)
        return {"copies": scorer.score(competition, copies), "noisy": first, "again": again, "torch": torch_fp32,
                "competition": competition, "noisy_images": noisy}


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


def test_onnxruntime_fid_is_within_1e4_of_torch_fp32(scored):
    onnx, torch_fp32 = scored["noisy"], scored["torch"]
    assert (onnx.engine, torch_fp32.engine) == ("onnxruntime", "torch")
    for cls, result in onnx.classes.items():
        for split in ("public", "private", "all"):
            expected = getattr(torch_fp32.classes[cls], f"raw_fid_{split}")
            assert getattr(result, f"raw_fid_{split}") == pytest.approx(expected, rel=1e-4), (cls, split)


def test_onnxruntime_fid_is_within_1e3_of_the_pytorch_fid_cli(scored, real_weights, tmp_path):
    """`python -m pytorch_fid GENERATED REAL` = pytorch-fid's calculate_activation_statistics on both folders, then
    its calculate_frechet_distance, which test_frechet.py shows equal to frechet_distance (its 2048-d sqrtm of a
    singular product takes minutes on 2 cores, so the distance is taken with ours)."""
    from pytorch_fid.fid_score import calculate_activation_statistics
    from pytorch_fid.inception import InceptionV3

    cls = "with_mask"
    for i, image in enumerate(scored["noisy_images"][cls]):
        Image.fromarray(image, mode="L").save(tmp_path / f"{i}.png")
    real = scored["competition"].test_files(cls)
    model = InceptionV3([3]).eval()  # pytorch-fid's own loader, from the hub cache
    stats = [calculate_activation_statistics([str(p) for p in paths], model, 50, 2048, "cpu", 0)
             for paths in (sorted(tmp_path.glob("*.png")), real)]
    expected = frechet_distance(*stats[0], *stats[1])
    assert scored["noisy"].classes[cls].raw_fid_all == pytest.approx(expected, rel=1e-3)


def test_score_is_stable_across_runs(scored):
    first, again = scored["noisy"], scored["again"]
    for split in ("public", "private", "all"):
        assert getattr(again, f"score_{split}") == pytest.approx(getattr(first, f"score_{split}"), rel=1e-9, abs=1e-9)
