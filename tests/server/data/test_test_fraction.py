"""`arena data prepare --test-fraction`: a seeded per-class split that never puts near-copies on both sides."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from server.cli import app
from server.competition_dir import Competition
from server.data import DataPreparationError, prepare_competition
from server.data.audit import AuditedImage, DuplicateReport, find_duplicates, perceptual_hash
from server.data.split import choose_test_images, duplicate_groups
from tests.server.data.trees import CLASSES, write_image


def face_mask_4k() -> Path:
    """The shared real faces beside this checkout or any folder above it (CI keeps shared/ beside the checkout)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "data" / "face-mask-4k"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("shared/data/face-mask-4k not found beside the checkout (see shared/data/README.md)")


def class_folders(root: Path, per_class: int = 10) -> Path:
    for c, cls in enumerate(CLASSES):
        for i in range(per_class):
            write_image(root / cls / f"{i:03d}.png", seed=100 * c + i)
    return root


def audit_of(competition: Competition) -> DuplicateReport:
    """The duplicate audit recomputed from the written files: where each image really ended up."""
    images = []
    for cls in competition.classes:
        for part, paths in (("train", competition.train_files(cls)), ("test", competition.test_files(cls))):
            for path in paths:
                pixels = np.asarray(Image.open(path))
                images.append(AuditedImage(f"{part}/{cls}/{path.name}", part, path.read_bytes(),
                                           perceptual_hash(pixels)))
    return find_duplicates(images)


def test_face_mask_4k_splits_per_class_without_a_near_duplicate_across(tmp_path):
    result = prepare_competition(face_mask_4k(), tmp_path / "masks", test_fraction=0.2, progress=False, workers=2)
    split = result.report.test_split
    competition = result.competition
    for cls in CLASSES:
        train, test = len(competition.train_files(cls)), len(competition.test_files(cls))
        assert split.counts[cls] == {"train": train, "test": test}
        target = round(0.2 * (train + test))
        assert target - 20 <= test <= target  # short of the target by less than a group, never over
    assert split.groups_kept_together > 50  # the folder is full of augmented copies: the rule had work to do
    audit = audit_of(competition)
    assert audit.near["within_train"] and audit.near["within_test"]  # the audit does see copies on each side
    assert not audit.near["across_train_test"] and not audit.exact["across_train_test"]
    # The same groups under a plain per-image random split would straddle: the check above could fail.
    names = [f"{cls}/{p.name}" for cls in CLASSES for p in competition.train_files(cls) + competition.test_files(cls)]
    shuffled_test = set(np.random.default_rng(0).permutation(names)[: len(names) // 5])
    pairs = [(a.split("/", 1)[1], b.split("/", 1)[1]) for kind in ("within_train", "within_test")
             for a, b, *_ in audit.near[kind]]
    assert sum((a in shuffled_test) != (b in shuffled_test) for a, b in pairs) > 10
    manifest = json.loads((competition.root / "manifest.json").read_text())
    assert manifest["audit"]["test_split"]["groups_kept_together"] == split.groups_kept_together


def test_the_split_is_seeded_and_summarized_by_the_cli(tmp_path):
    source = class_folders(tmp_path / "src")
    runner = CliRunner()
    outputs = []
    for out, seed in (("a", 0), ("b", 0), ("c", 5)):
        run = runner.invoke(app, ["data", "prepare", "--source", str(source), "--out", str(tmp_path / out),
                                  "--test-fraction", "0.3", "--seed", str(seed), "--workers", "1"])
        assert run.exit_code == 0, run.output
        assert "Held out 0.3 of each class as test (--test-fraction, seed" in run.output
        assert "with_mask 7 train / 3 test" in run.output and "0 near-duplicate group(s)" in run.output
        outputs.append(sorted(p.name for p in Competition.load(tmp_path / out).test_files("with_mask")))
    assert outputs[0] == outputs[1] != outputs[2]


def test_without_a_test_split_the_error_says_so_and_names_the_flag(tmp_path):
    source = class_folders(tmp_path / "src", per_class=2)
    with pytest.raises(DataPreparationError) as info:
        prepare_competition(source, tmp_path / "out", progress=False)
    assert "no held-out split" in str(info.value) and "--test-fraction" in str(info.value)
    assert "with_mask/" in str(info.value)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5])
def test_a_fraction_outside_0_1_is_refused(tmp_path, fraction):
    with pytest.raises(DataPreparationError, match="--test-fraction .* between 0 and 1"):
        prepare_competition(class_folders(tmp_path / "src", 2), tmp_path / "out", test_fraction=fraction)


def test_a_dataset_with_its_own_test_split_refuses_the_flag(tmp_path):
    for part in ("train", "Test"):
        class_folders(tmp_path / "src" / part, per_class=2)
    with pytest.raises(DataPreparationError, match="Test.*drop --test-fraction"):
        prepare_competition(tmp_path / "src", tmp_path / "out", test_fraction=0.2, progress=False)


def test_a_class_too_small_for_the_fraction_is_named(tmp_path):
    with pytest.raises(DataPreparationError, match="without training or test images") as info:
        prepare_competition(class_folders(tmp_path / "src", 2), tmp_path / "out", test_fraction=0.1, progress=False)
    assert "with_mask: 2 train, 0 test" in info.value.problems


def test_groups_move_whole_and_spanning_groups_count_for_each_class():
    classes_of = {f"a/{i}": "a" for i in range(10)} | {f"b/{i}": "b" for i in range(10)}
    pairs = [("a/0", "a/1"), ("a/1", "a/2"), ("a/5", "b/5"), ("b/7", "b/8")]  # a/0-a/1-a/2 is one group
    near = [(*pair, 3, 0.99) for pair in pairs[2:]]
    report = DuplicateReport(exact={"within_train": pairs[:2]}, near={"within_train": near})
    groups = duplicate_groups(sorted(classes_of), report)
    assert ["a/0", "a/1", "a/2"] in groups and ["a/5", "b/5"] in groups and len(groups) == 20 - 2 - 1 - 1
    for seed in range(30):
        test, split = choose_test_images(classes_of, report, fraction=0.4, seed=seed)
        for group in groups:
            assert len({path in test for path in group}) == 1
        assert all(split.counts[cls]["test"] in (3, 4) for cls in "ab")  # target 4, groups of up to 3
        assert split.groups_kept_together == 3 and split.images_in_groups == 7
