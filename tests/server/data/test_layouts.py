"""Datasets as downloaded: split and class folders named any way, validation splits, explicit class mapping,
colliding file names. Each case is a small tree on disk."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from server.data import prepare_competition
from server.data.layout import class_key, output_names
from tests.server.data.test_prepare import assert_refused
from tests.server.data.trees import make_messy_tree, make_tree, write_image


def prepare(source: Path, out: Path, **options):
    return prepare_competition(source, out, progress=False, workers=1, **options)


def counts(competition) -> dict[str, tuple[int, int]]:
    return {cls: (len(competition.train_files(cls)), len(competition.test_files(cls))) for cls in competition.classes}


@pytest.mark.parametrize(
    ("folder", "key"),
    [("WithMask", "with_mask"), ("with-mask", "with_mask"), ("With Mask", "with_mask"), ("with_mask", "with_mask"),
     ("WITHOUT_MASK", "without_mask"), ("Masque Élégant", "masque_elegant"), ("mask2Class", "mask2_class")],
)
def test_class_folder_names_in_snake_case(folder, key):
    assert class_key(folder) == key


def test_messy_download_works_as_it_is(tmp_path):
    result = prepare(make_messy_tree(tmp_path / "download"), tmp_path / "out")
    competition = result.competition
    assert competition.classes == ["with_mask", "without_mask"]
    # Train 4 (+ 10.jpg and 10.png in WithMask); test: Test 3 + Validation 2 (the default --validation test).
    assert counts(competition) == {"with_mask": (6, 5), "without_mask": (4, 5)}
    report = result.report
    assert report.layout.mapping()["with_mask"] == ["Train/WithMask", "Test/WithMask", "Validation/WithMask"]
    assert len(report.renamed) == 10  # 10.jpg/10.png, and 0.png, 1.png in Test and Validation of both classes
    names = [p.name for p in competition.test_files("with_mask")]
    assert len(set(names)) == 5 and "2.png" in names  # only colliding names change
    audit = competition.manifest.audit
    assert audit["validation"] == "test" and audit["renamed"] == report.renamed


def test_colliding_names_are_stable_and_independent_of_other_files(tmp_path):
    source = make_messy_tree(tmp_path / "download")
    first = prepare(source, tmp_path / "a")
    write_image(source / "Face Mask Dataset" / "Train" / "WithMask" / "zz-new.png", seed=999)
    second = prepare(source, tmp_path / "b")
    assert set(first.report.renamed) == set(second.report.renamed)
    again = prepare(source, tmp_path / "b")
    assert again.unchanged and again.competition.manifest.dataset_hash == second.competition.manifest.dataset_hash


def test_output_names_keep_unique_stems_and_hash_colliding_ones():
    files = [(Path("a/10.jpg"), "train/A/10.jpg"), (Path("a/10.png"), "train/A/10.png"), (Path("a/11.png"), "x")]
    names = output_names(files)
    assert names[2] == "11.png" and names[0] != names[1]
    assert all(name.startswith("10-") and len(name) == len("10-12345678.png") for name in names[:2])
    assert output_names(list(reversed(files))) == list(reversed(names))


@pytest.mark.parametrize(("policy", "expected"), [("train", (6, 3)), ("ignore", (4, 3))])
def test_validation_policy(tmp_path, policy, expected):
    result = prepare(make_messy_tree(tmp_path / "download"), tmp_path / "out", validation=policy)
    assert counts(result.competition)["without_mask"] == expected
    if policy == "ignore":
        assert any("Validation" in line and "--validation ignore" in line for line in result.report.layout.left_out)


def test_train_and_validation_only(tmp_path):
    source = make_messy_tree(tmp_path / "download")
    shutil.rmtree(source / "Face Mask Dataset" / "Test")
    assert counts(prepare(source, tmp_path / "out").competition)["without_mask"] == (4, 2)
    assert_refused(source, tmp_path / "refused", "no test/ folder", "--test-source", validation="train")
    shutil.rmtree(source / "Face Mask Dataset" / "Train")
    assert_refused(source, tmp_path / "refused", "no train/ folder and no test/ folder", validation="ignore")
    assert_refused(source, tmp_path / "refused", "no train/ folder (looked for train, training", "found Validation/")


def test_split_aliases_in_any_case(tmp_path):
    make_tree(tmp_path / "plain")
    (tmp_path / "plain" / "train").rename(tmp_path / "plain" / "TRAINING")
    (tmp_path / "plain" / "test").rename(tmp_path / "plain" / "Testing")
    result = prepare(tmp_path / "plain", tmp_path / "out")
    assert counts(result.competition) == {"with_mask": (4, 6), "without_mask": (4, 6)}


def test_two_folders_for_one_split_are_refused(tmp_path):
    source = make_tree(tmp_path / "src")
    shutil.copytree(source / "train", source / "Training")
    assert_refused(source, tmp_path / "out", "same split", str(source / "Training"), str(source / "train"))


def test_ambiguous_class_folders_list_what_was_found(tmp_path):
    source = make_tree(tmp_path / "src")
    write_image(source / "train" / "WithMask" / "x.png")
    error = assert_refused(source, tmp_path / "out", "WithMask, with_mask", "--class NAME=FOLDER")
    assert error.problems == ["WithMask and with_mask would both be class 'with_mask'"]
    result = prepare(source, tmp_path / "out", class_map={"with_mask": ["with_mask"], "without_mask": ["without_mask"]})
    assert counts(result.competition)["with_mask"] == (4, 6)
    assert result.report.layout.left_out == [f"{source / 'train' / 'WithMask'} (not named by --class)"]


def test_explicit_class_names_and_merged_folders(tmp_path):
    source = make_messy_tree(tmp_path / "download")
    renamed = prepare(source, tmp_path / "a", class_map={"masked": ["WithMask"], "bare": ["withoutmask"]})
    assert counts(renamed.competition) == {"bare": (4, 5), "masked": (6, 5)}
    merged = prepare(source, tmp_path / "b", class_map={"face": ["WithMask", "WithoutMask"]})
    assert counts(merged.competition) == {"face": (10, 10)}
    assert len({p.name for p in merged.competition.train_files("face")}) == 10  # 0.png of both folders renamed


def test_explicit_mapping_errors(tmp_path):
    source = make_messy_tree(tmp_path / "download")
    assert_refused(source, tmp_path / "out", "--class with_mask=Masks: no such folder", "WithMask, WithoutMask",
                   class_map={"with_mask": ["Masks"], "without_mask": ["WithoutMask"]})
    assert_refused(source, tmp_path / "out", "submission folder names", "with mask",
                   class_map={"with mask": ["WithMask"]})
