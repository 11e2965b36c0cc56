from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from baselines.data import load_training_data, split_holdout, to_model_range, to_uint8
from tests.utils.competition import make_competition


def test_competition_dir_reads_only_the_train_part(competition):
    data = load_training_data(competition.root)
    assert data.classes == ["with_mask", "without_mask"]
    assert data.images.shape == (24, 64, 64)
    assert data.labels.tolist() == [0] * 12 + [1] * 12
    assert data.competition_root == competition.root
    # The test images must never be trained on: none of them may appear in the training tensor.
    train_set = {bytes(image.numpy()) for image in data.images}
    for cls in competition.classes:
        for path in competition.test_files(cls):
            assert np.asarray(Image.open(path)).tobytes() not in train_set


def test_class_folder_tree_resized_and_labelled_by_class_order(tmp_path):
    for cls, value in (("b_cls", 200), ("a_cls", 10)):
        (tmp_path / "train" / cls).mkdir(parents=True)
        Image.new("L", (224, 224), value).save(tmp_path / "train" / cls / "x.png")
        (tmp_path / "test" / cls).mkdir(parents=True)
        Image.new("L", (224, 224), 99).save(tmp_path / "test" / cls / "y.png")
    data = load_training_data(tmp_path)
    assert data.classes == ["a_cls", "b_cls"]
    assert data.competition_root is None
    assert data.images.shape == (2, 64, 64)
    assert data.images[0].float().mean() == 10 and data.images[1].float().mean() == 200


def test_unreadable_image_names_the_file(tmp_path):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        load_training_data(tmp_path)


def test_empty_folder_says_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="one subfolder of images per class"):
        load_training_data(tmp_path)


def test_tiny_classes_hold_nothing_out(competition):
    data = load_training_data(competition.root)
    train, holdout = split_holdout(data, per_class=100)
    assert holdout == {}  # 12 per class: a tenth is 1 image, too few for an FID
    assert len(train) == len(data)


def test_holdout_is_capped_disjoint_and_fixed(tmp_path):
    data = load_training_data(make_competition(tmp_path, train_per_class=30, test_per_class=2).root)
    train, holdout = split_holdout(data, per_class=100)  # capped at a tenth of each class
    assert {cls: len(v) for cls, v in holdout.items()} == {"with_mask": 3, "without_mask": 3}
    assert len(train) == 60 - 6
    train_set = {bytes(image.numpy()) for image in train.images}
    assert not any(image.tobytes() in train_set for images in holdout.values() for image in images)
    _, again = split_holdout(data, per_class=100)
    assert all(np.array_equal(holdout[c], again[c]) for c in holdout)


def test_range_round_trip():
    images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    model_range = to_model_range(torch.from_numpy(images))
    assert model_range.min() == -1 and model_range.max() == 1
    assert np.array_equal(to_uint8(model_range), images)
