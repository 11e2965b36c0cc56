"""The diagnostic sentence on failures built from real faces, scored end to end with the real FID weights.

One class of real photographs (shared/data/face-mask-4k, `without_mask`) becomes a competition: 60 training and 80
test images (40 public, against which the diagnostics are measured). Each "generator" is built to show one failure:
- copies: 40 of the training images, byte for byte (memorization: the sentence must lead with the penalty);
- collapse: 5 real faces the competition has never seen, each repeated 8 times with a shift of up to 2 pixels,
  a brightness change and light noise (what a mode-collapsed GAN's grid looks like: a few faces, repeated);
- blur: 40 unseen real faces under a Gaussian blur of radius 3 (low quality);
- good: 40 unseen real faces as they are (a perfect generator: fresh samples of the real distribution).
About 300 images go through the network (~1-2 minutes on 2 CPU cores). The thresholds in
server/scoring/diagnostics.py were calibrated on these cases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from server.scoring import FeatureExtractor, Scorer
from tests.utils.competition import competition_of_images

CLASS = "without_mask"
TRAIN, TEST, UNSEEN, MODES = 60, 80, 40, 5


def face_mask_dir() -> Path:
    """shared/data/face-mask-4k beside the checkout: searched upwards from the repository root (CI runs elsewhere)."""
    root = Path(__file__).resolve().parents[3]
    for folder in (root, *root.parents):
        candidate = folder / "shared" / "data" / "face-mask-4k"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"shared/data/face-mask-4k not found above {root} (see the brief: real faces for tests)")


def real_faces(cls: str, count: int) -> np.ndarray:
    """The first `count` photos of a class (file name order) at least 64 px on a side, as 64x64 grayscale the way
    `arena data prepare` converts them (EXIF rotation, luma, antialiased bicubic)."""
    faces = []
    for path in sorted((face_mask_dir() / cls).iterdir()):
        image = ImageOps.exif_transpose(Image.open(path))
        if min(image.size) < 64:
            continue
        faces.append(np.asarray(image.convert("L").resize((64, 64), Image.BICUBIC, reducing_gap=None)))
        if len(faces) == count:
            break
    return np.stack(faces)


def collapsed(modes: np.ndarray, repeats: int, seed: int = 0) -> np.ndarray:
    """Each mode repeated with a small shift, brightness change and noise: near-duplicates, no two bytes equal."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(len(modes) * repeats):
        image = np.roll(modes[i % len(modes)].astype(float), rng.integers(-2, 3, size=2), axis=(0, 1))
        image = image + rng.uniform(-8, 8) + rng.normal(0, 3, image.shape)
        out.append(image.clip(0, 255).astype(np.uint8))
    return np.stack(out)


def blurred(images: np.ndarray, radius: float = 3.0) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(x).filter(ImageFilter.GaussianBlur(radius))) for x in images])


@pytest.fixture(scope="module")
def scored(tmp_path_factory, real_torch_home):
    faces = real_faces(CLASS, TRAIN + TEST + UNSEEN + MODES)
    train, test = faces[:TRAIN], faces[TRAIN:TRAIN + TEST]
    unseen, modes = faces[TRAIN + TEST:TRAIN + TEST + UNSEEN], faces[TRAIN + TEST + UNSEEN:]
    cases = {"copies": train[:UNSEEN], "collapse": collapsed(modes, UNSEEN // MODES), "blur": blurred(unseen),
             "good": unseen}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(real_torch_home))
        competition = competition_of_images(tmp_path_factory.mktemp("faces"), {CLASS: {"train": train, "test": test}},
                                            images_per_class=UNSEEN)
        scorer = Scorer(FeatureExtractor(device="cpu", allow_download=False))
        results = {name: scorer.score(competition, {CLASS: images}).classes[CLASS] for name, images in cases.items()}
    for name, result in results.items():  # the calibration table, shown with -s
        print(name, f"d={result.memorization_distance:.4f} eps={result.memorization_eps:.4f}",
              {k: round(v, 3) for k, v in (result.diagnostics or {}).items()}, result.diagnosis)
    return results


def test_copies_lead_with_the_memorization_penalty(scored):
    copies = scored["copies"]
    assert copies.penalized
    assert copies.diagnosis.startswith("Memorization penalty: the samples are copies or near-copies of real images")
    assert "close to the real distribution" not in copies.diagnosis  # copies look real on every other measure


def test_a_few_repeated_faces_read_as_mode_collapse(scored):
    collapse = scored["collapse"]
    assert not collapse.penalized  # unseen faces: not memorized, just too few of them
    assert collapse.diagnostics["distinct_images"] == UNSEEN  # no two bytes equal: only the features show it
    assert collapse.diagnostics["near_duplicates"] >= 0.8
    assert "likely mode collapse" in collapse.diagnosis and "near-duplicate" in collapse.diagnosis


def test_blurred_faces_read_as_low_quality(scored):
    blur = scored["blur"]
    assert not blur.penalized and blur.diagnostics["precision"] < 0.5
    assert "low quality" in blur.diagnosis and "mode collapse" not in blur.diagnosis


def test_fresh_real_faces_read_as_close_to_the_real_distribution(scored):
    good = scored["good"]
    assert not good.penalized and good.diagnostics["near_duplicates"] <= 0.2
    assert good.diagnosis.endswith("close to the real distribution.")
