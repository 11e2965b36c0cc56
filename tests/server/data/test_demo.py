"""`arena data demo` / make_demo_competition: deterministic, sized as asked, classes that differ where masks go."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from server.competition_dir import Competition
from server.data import DataPreparationError, make_demo_competition
from server.data.demo import generate_faces

SMALL = {"train_per_class": 6, "test_per_class": 10, "images_per_class": 5, "progress": False}


def file_hashes(competition: Competition) -> dict[str, str]:
    files = competition.manifest.files
    return {e.path: hashlib.sha256((competition.root / e.path).read_bytes()).hexdigest() for e in files}


def test_same_seed_gives_identical_bytes(tmp_path):
    first = make_demo_competition(tmp_path / "a", seed=3, **SMALL)
    second = make_demo_competition(tmp_path / "b", seed=3, **SMALL)
    assert first.manifest.dataset_hash == second.manifest.dataset_hash
    assert file_hashes(first) == file_hashes(second)
    assert (tmp_path / "a" / "competition.json").read_bytes() == (tmp_path / "b" / "competition.json").read_bytes()


def test_other_seed_gives_other_images(tmp_path):
    first = make_demo_competition(tmp_path / "a", seed=0, **SMALL)
    second = make_demo_competition(tmp_path / "b", seed=1, **SMALL)
    assert first.manifest.dataset_hash != second.manifest.dataset_hash
    assert not set(file_hashes(first).values()) & set(file_hashes(second).values())


def test_sizes_splits_and_config_as_requested(tmp_path):
    competition = make_demo_competition(tmp_path / "demo", slug="my-demo", title="Masks", **SMALL)
    assert competition.slug == "my-demo" and competition.config.title == "Masks"
    assert competition.classes == ["with_mask", "without_mask"]
    assert competition.config.images_per_class == 5
    for cls in competition.classes:
        assert len(competition.train_files(cls)) == 6
        assert len(competition.test_files(cls, "public")) == 5
        assert len(competition.test_files(cls, "private")) == 5
        for path in competition.train_files(cls) + competition.test_files(cls):
            with Image.open(path) as image:
                assert (image.format, image.mode, image.size) == ("PNG", "L", (64, 64))
    assert (tmp_path / "demo" / "preview.png").is_file()


def test_train_and_test_images_are_different_faces(tmp_path):
    competition = make_demo_competition(tmp_path / "demo", **SMALL)
    hashes = {e.split: set() for e in competition.manifest.files}
    for entry in competition.manifest.files:
        hashes[entry.split].add(entry.sha256)
    assert not hashes["train"] & (hashes["public"] | hashes["private"])


@pytest.fixture(scope="module")
def faces() -> dict[bool, np.ndarray]:
    return {with_mask: generate_faces(120, seed=5, with_mask=with_mask).astype(float) for with_mask in (True, False)}


def test_masks_change_the_mouth_region(faces):
    # The mouth sits around rows 38-46, columns 26-37 of a 64x64 face; masks (mostly light) cover it.
    masked, bare = (faces[with_mask][:, 38:47, 26:38].mean(axis=(1, 2)) for with_mask in (True, False))
    standard_error = np.sqrt(masked.var(ddof=1) / len(masked) + bare.var(ddof=1) / len(bare))
    assert masked.mean() - bare.mean() > 3 * standard_error
    # Outside the face (the top corners: background) the classes look alike.
    corners = [faces[with_mask][:, :6, :6].mean() for with_mask in (True, False)]
    assert abs(corners[0] - corners[1]) < 15


def test_faces_vary(faces):
    assert faces[False].std(axis=0).mean() > 20  # pixels differ a lot from face to face
    assert len({face.tobytes() for face in faces[False]}) == len(faces[False])


def test_rerun_keeps_an_identical_competition(tmp_path):
    first = make_demo_competition(tmp_path / "demo", **SMALL)
    (tmp_path / "demo" / "references").mkdir()  # a scoring cache that must survive
    again = make_demo_competition(tmp_path / "demo", **SMALL)
    assert again.manifest.dataset_hash == first.manifest.dataset_hash
    assert (tmp_path / "demo" / "references").is_dir()
    assert not list(tmp_path.glob(".demo.partial-*"))


def test_refuses_to_overwrite_another_demo(tmp_path):
    make_demo_competition(tmp_path / "demo", **SMALL)
    before = (tmp_path / "demo" / "manifest.json").read_bytes()
    with pytest.raises(DataPreparationError, match="(?s)different competition.*images_per_class: 5 -> 7"):
        make_demo_competition(tmp_path / "demo", **{**SMALL, "images_per_class": 7})
    with pytest.raises(DataPreparationError, match="other images"):
        make_demo_competition(tmp_path / "demo", seed=9, **SMALL)
    assert (tmp_path / "demo" / "manifest.json").read_bytes() == before
