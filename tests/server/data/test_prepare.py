"""`arena data prepare` on small trees built in tmp_path: conversion, split, manifest stability, every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from server.competition_dir import Competition
from server.data import DataPreparationError, prepare_competition
from server.data.prepare import load_competition_image
from tests.server.data.trees import CLASSES, make_tree, write_image


def prepare(source: Path, out: Path, **options):
    return prepare_competition(source, out, progress=False, workers=2, **options)


def test_writes_a_complete_competition(tmp_path):
    result = prepare(make_tree(tmp_path / "src"), tmp_path / "Face Mask 2026", images_per_class=7)
    competition = result.competition
    assert competition.slug == "face-mask-2026"
    config = json.loads((tmp_path / "Face Mask 2026" / "competition.json").read_text())
    assert config["classes"] == list(CLASSES)
    assert config["images_per_class"] == 7 and config["image_size"] == 64 and config["mode"] == "L"
    assert config["metric"] == "fid_sum" and config["memorization_eps"] == "auto"
    assert config["daily_limit"] == 5 and config["deadline"] is None and config["public_fraction"] == 0.5
    assert config["baseline_rules"] and config["team_rules"]
    for cls in CLASSES:
        assert [p.name for p in competition.train_files(cls)] == [f"{cls}-train-{i:03d}.png" for i in range(4)]
        assert len(competition.test_files(cls)) == 6
        for path in competition.train_files(cls) + competition.test_files(cls):
            with Image.open(path) as image:
                assert (image.format, image.mode, image.size) == ("PNG", "L", (64, 64))
    assert (tmp_path / "Face Mask 2026" / "preview.png").is_file()
    assert not result.skipped and not result.unchanged


def test_pixels_are_pil_bicubic_of_the_grayscale_source(tmp_path):
    source = write_image(tmp_path / "a.png", 150, mode="L", seed=1)
    expected = Image.open(source).resize((64, 64), Image.BICUBIC, reducing_gap=None)
    np.testing.assert_array_equal(load_competition_image(source, 64), np.asarray(expected))


def test_rgb_becomes_luma(tmp_path):
    source = write_image(tmp_path / "a.png", 100, mode="RGB", seed=2)
    expected = Image.open(source).convert("L").resize((64, 64), Image.BICUBIC, reducing_gap=None)
    np.testing.assert_array_equal(load_competition_image(source, 64), np.asarray(expected))


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    values = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    pixels = load_competition_image(tmp_path / "deep.png", 64)
    np.testing.assert_array_equal(pixels[0], np.round(values[0].astype(float) * 255 / 65535).astype(np.uint8))
    assert pixels.min() == 0 and pixels.max() == 255 and len(np.unique(pixels)) > 60


def test_transparent_pixels_become_white(tmp_path):
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    Image.new("RGBA", (64, 64), (0, 0, 0, 255)).save(tmp_path / "black.png")
    assert (load_competition_image(tmp_path / "clear.png", 64) == 255).all()
    assert (load_competition_image(tmp_path / "black.png", 64) == 0).all()


def test_mixed_modes_in_one_dataset(tmp_path):
    source = make_tree(tmp_path / "src", train=2, test=2)
    write_image(source / "train" / "with_mask" / "colour.png", 90, mode="RGB")
    write_image(source / "train" / "with_mask" / "alpha.png", 90, mode="RGBA")
    write_image(source / "test" / "without_mask" / "deep.png", 90, mode="I;16")
    competition = prepare(source, tmp_path / "out").competition
    names = {p.name for p in competition.train_files("with_mask") + competition.test_files("without_mask")}
    assert {"colour.png", "alpha.png", "deep.png"} <= names


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.8])
def test_split_fraction_is_exact_per_class(tmp_path, fraction):
    source = make_tree(tmp_path / "src", train=1, test=20)
    competition = prepare(source, tmp_path / "out", public_fraction=fraction).competition
    for cls in CLASSES:
        assert len(competition.test_files(cls, "public")) == round(20 * fraction)
        assert len(competition.test_files(cls, "private")) == 20 - round(20 * fraction)


def test_split_depends_on_seed_and_names_only(tmp_path):
    source = make_tree(tmp_path / "src", train=1, test=20)

    def public(out: str, seed: int) -> set[str]:
        competition = prepare(source, tmp_path / out, seed=seed).competition
        return {p.name for cls in CLASSES for p in competition.test_files(cls, "public")}

    assert public("a", 0) == public("b", 0)
    assert public("c", 1) != public("a", 0)


def test_rerun_gives_same_hash_and_leaves_output_untouched(tmp_path):
    source = make_tree(tmp_path / "src")
    first = prepare(source, tmp_path / "out").competition
    manifest = (tmp_path / "out" / "manifest.json").read_bytes()
    (tmp_path / "out" / "references").mkdir()
    again = prepare(source, tmp_path / "out")
    assert again.unchanged and again.competition.manifest.dataset_hash == first.manifest.dataset_hash
    assert (tmp_path / "out" / "manifest.json").read_bytes() == manifest
    assert (tmp_path / "out" / "references").is_dir()
    elsewhere = prepare(source, tmp_path / "elsewhere").competition
    assert elsewhere.manifest.dataset_hash == first.manifest.dataset_hash
    assert not list(tmp_path.glob(".*.partial-*"))


def test_separate_test_source(tmp_path):
    make_tree(tmp_path / "src")
    result = prepare(tmp_path / "src" / "train", tmp_path / "out", test_source=tmp_path / "src" / "test")
    reference = prepare(tmp_path / "src", tmp_path / "reference").competition
    assert result.competition.manifest.dataset_hash == reference.manifest.dataset_hash


# -- bad input: one clear error naming the path, the rule and the fix; nothing written ----------------------------


def snapshot(directory: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in directory.rglob("*") if p.is_file()} if directory.exists() else {}


def assert_refused(source: Path, out: Path, *fragments: str, **options) -> DataPreparationError:
    before = snapshot(out)
    with pytest.raises(DataPreparationError) as info:
        prepare(source, out, **options)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert "Fix:" in str(info.value)
    assert snapshot(out) == before
    assert not list(out.parent.glob(f".{out.name}.partial-*"))
    return info.value


def test_missing_test_part(tmp_path):
    source = make_tree(tmp_path / "src")
    for path in sorted((source / "test").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (source / "test").rmdir()
    assert_refused(source, tmp_path / "out", str(source), "no test/ folder", "--test-source")


def test_no_class_folders(tmp_path):
    source = make_tree(tmp_path / "src")
    write_image(tmp_path / "loose" / "a.png")
    loose = tmp_path / "loose"
    assert_refused(source, tmp_path / "out", str(loose), "no class folders", test_source=loose)


def test_empty_class_folder(tmp_path):
    source = make_tree(tmp_path / "src")
    for path in (source / "test" / "with_mask").iterdir():
        path.unlink()
    (source / "test" / "with_mask" / ".DS_Store").write_bytes(b"hidden files are ignored")
    assert_refused(source, tmp_path / "out", str(source / "test" / "with_mask"), "empty")


def test_class_only_in_train(tmp_path):
    source = make_tree(tmp_path / "src")
    write_image(source / "train" / "scarf" / "a.png")
    error = assert_refused(source, tmp_path / "out", "'scarf'", str(source / "test"), "same classes")
    assert len(error.problems) == 1


def test_class_only_in_test(tmp_path):
    source = make_tree(tmp_path / "src")
    write_image(source / "test" / "scarf" / "a.png")
    assert_refused(source, tmp_path / "out", "'scarf' is in " + str(source / "test"))


def test_class_folder_without_letters_or_digits(tmp_path):
    source = make_tree(tmp_path / "src", classes=("~~~", "without_mask"))
    assert_refused(source, tmp_path / "out", str(source / "train"), "'~~~' has no letters or digits", "--class")


def test_unreadable_files_are_all_listed(tmp_path):
    source = make_tree(tmp_path / "src")
    (source / "train" / "with_mask" / "notes.txt").write_text("not an image")
    truncated = source / "test" / "without_mask" / "cut.png"
    write_image(truncated, 80)
    truncated.write_bytes(truncated.read_bytes()[:200])
    error = assert_refused(source, tmp_path / "out", "--skip-bad", "notes.txt", "cut.png", "not a readable image")
    assert len(error.problems) == 2


def test_too_small_images_are_listed(tmp_path):
    source = make_tree(tmp_path / "src")
    write_image(source / "train" / "without_mask" / "tiny.png", 40)
    assert_refused(
        source, tmp_path / "out", "tiny.png", "40x40 is smaller than the competition size 64x64", "--small upscale",
        small="error",
    )


def test_skip_bad_leaves_them_out_and_reports_them(tmp_path):
    source = make_tree(tmp_path / "src")
    (source / "train" / "with_mask" / "notes.txt").write_text("not an image")
    write_image(source / "train" / "without_mask" / "tiny.png", 40)
    result = prepare(source, tmp_path / "out", skip_bad=True)
    assert len(result.skipped) == 1 and "notes.txt" in result.skipped[0]
    assert result.report.small == [str(source / "train" / "without_mask" / "tiny.png")]
    paths = {e.path for e in result.competition.manifest.files}
    assert len(paths) == 20 and not any("notes" in p or "tiny" in p for p in paths)


def test_skip_bad_still_refuses_a_class_left_empty(tmp_path):
    source = make_tree(tmp_path / "src", train=1)
    (source / "train" / "with_mask" / "with_mask-train-000.png").write_text("broken")
    assert_refused(source, tmp_path / "out", "train/with_mask", "no images left", skip_bad=True)




def test_folder_inside_a_class_folder(tmp_path):
    source = make_tree(tmp_path / "src")
    (source / "train" / "with_mask" / "more").mkdir()
    assert_refused(source, tmp_path / "out", str(source / "train" / "with_mask" / "more"), "not folders")


def test_invalid_settings(tmp_path):
    assert_refused(make_tree(tmp_path / "src"), tmp_path / "out", "--slug", slug="Not A Slug")


def test_never_overwrites_a_different_competition(tmp_path):
    source = make_tree(tmp_path / "src")
    prepare(source, tmp_path / "out")
    assert_refused(source, tmp_path / "out", "different competition", "image_size: 64 -> 32", image_size=32)
    write_image(source / "train" / "with_mask" / "extra.png")
    assert_refused(source, tmp_path / "out", "other images", str(tmp_path / "out"))
    assert len(Competition.load(tmp_path / "out").train_files("with_mask")) == 4


def test_refuses_an_output_with_a_broken_manifest(tmp_path):
    source = make_tree(tmp_path / "src")
    prepare(source, tmp_path / "out")
    (tmp_path / "out" / "manifest.json").write_text("{not json")
    assert_refused(source, tmp_path / "out", "no valid manifest", str(tmp_path / "out"))


def test_never_writes_into_a_foreign_directory(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("precious")
    assert_refused(make_tree(tmp_path / "src"), tmp_path / "out", "not empty", "new or empty --out")
    assert (tmp_path / "out" / "thesis.tex").read_text() == "precious"
