"""The duplicate and leakage audit: the hash, exact and near pairs by kind, --dedupe, the printed summary."""

from __future__ import annotations

import shutil

import numpy as np
import scipy.fft
from PIL import Image, ImageEnhance
from typer.testing import CliRunner

from server.cli import app
from server.data import prepare_competition
from server.data.audit import AuditedImage, find_duplicates, perceptual_hash
from server.data.writer import encode_png
from tests.server.data.trees import write_smooth_image


def test_hash_is_the_median_test_of_the_lowest_dct_frequencies():
    pixels = np.random.default_rng(3).integers(0, 256, (64, 64), np.uint8)
    low = scipy.fft.dctn(pixels.astype(np.float64), norm="ortho")[:8, :8]
    bits = "".join("1" if value > np.median(low) else "0" for value in low.ravel())
    assert perceptual_hash(pixels) == int(bits, 2)


def smooth(seed: int) -> np.ndarray:
    coarse = np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((64, 64), Image.Resampling.BICUBIC))


def audited(path: str, pixels: np.ndarray) -> AuditedImage:
    return AuditedImage(path, path.split("/")[0], encode_png(pixels), perceptual_hash(pixels))


def test_pairs_by_kind_train_first():
    base, other = smooth(1), smooth(2)
    brighter = np.asarray(ImageEnhance.Brightness(Image.fromarray(base)).enhance(1.05))
    report = find_duplicates([
        audited("test/a/copy.png", base), audited("train/a/orig.png", base), audited("train/b/again.png", base),
        audited("test/a/bright.png", brighter), audited("test/b/other.png", other),
    ])
    assert report.exact["across_train_test"] == [("train/a/orig.png", "test/a/copy.png"),
                                                 ("train/b/again.png", "test/a/copy.png")]
    assert report.exact["within_train"] == [("train/a/orig.png", "train/b/again.png")]
    near = report.near["across_train_test"]
    assert [pair[:2] for pair in near] == [("train/a/orig.png", "test/a/bright.png"),
                                           ("train/b/again.png", "test/a/bright.png")]
    assert report.near["within_test"][0][:2] == ("test/a/bright.png", "test/a/copy.png")
    assert not any("other.png" in pair[0] + pair[1] for pairs in report.near.values() for pair in pairs)
    assert report.test_images_copying_train() == {"test/a/copy.png", "test/a/bright.png"}


def test_distinct_images_are_not_near_duplicates():
    report = find_duplicates([audited(f"train/a/{seed}.png", smooth(seed)) for seed in range(60)])
    assert report.counts() == {"exact": dict.fromkeys(report.exact, 0), "near": dict.fromkeys(report.near, 0)}


def leaky_tree(root):
    """Train and test of two classes, where one test image is a copy and one a re-encoded copy of training images."""
    for c, cls in enumerate(("with_mask", "without_mask")):
        for i in range(3):
            write_smooth_image(root / "train" / cls / f"t{i}.png", seed=100 * c + i)
            write_smooth_image(root / "test" / cls / f"h{i}.png", seed=100 * c + 50 + i)
    shutil.copy(root / "train" / "with_mask" / "t0.png", root / "test" / "with_mask" / "copy.png")
    Image.open(root / "train" / "without_mask" / "t1.png").save(root / "test" / "without_mask" / "jpeg.jpg", quality=85)
    return root


def test_manifest_lists_leaks_and_dedupe_drops_them(tmp_path):
    source = leaky_tree(tmp_path / "src")
    kept = prepare_competition(source, tmp_path / "kept", progress=False, workers=1).competition
    duplicates = kept.manifest.audit["duplicates"]
    assert duplicates["exact_pairs"]["across_train_test"] == [["train/with_mask/t0.png", "test/with_mask/copy.png"]]
    assert [pair[:2] for pair in duplicates["near_pairs"]["across_train_test"]] == [
        ["train/without_mask/t1.png", "test/without_mask/jpeg.png"]]
    assert duplicates["pair_counts"]["exact"]["within_train"] == 0
    assert len(kept.test_files("with_mask")) == 4

    deduped = prepare_competition(source, tmp_path / "deduped", dedupe=True, progress=False, workers=1)
    assert set(deduped.report.dropped) == {"test/with_mask/copy.png", "test/without_mask/jpeg.png"}
    assert deduped.competition.manifest.audit["dedupe_dropped"]["test/without_mask/jpeg.png"].endswith("jpeg.jpg")
    assert [len(deduped.competition.test_files(cls)) for cls in ("with_mask", "without_mask")] == [3, 3]
    assert deduped.competition.manifest.dataset_hash != kept.manifest.dataset_hash


def test_summary_prints_mapping_and_duplicates(tmp_path):
    source = leaky_tree(tmp_path / "src")
    args = ["data", "prepare", "--source", str(source), "--out", str(tmp_path / "out"), "--images-per-class", "2"]
    result = CliRunner().invoke(app, args, prog_name="arena")
    assert result.exit_code == 0, result.output
    assert "Class   with_mask <- train/with_mask, test/with_mask" in result.output
    assert "across train test  1 / 1" in result.output
    assert "test/with_mask/copy.png ~ train/with_mask/t0.png" in result.output and "--dedupe" in result.output
    deduped = CliRunner().invoke(app, [*args[:-4], "--out", str(tmp_path / "d"), "--dedupe"], prog_name="arena")
    assert deduped.exit_code == 0, deduped.output
    assert "--dedupe left out 2 test image(s)" in deduped.output
