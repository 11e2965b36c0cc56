"""The course's own layout (lowercase train/<class>/, test/<class>/, as in
ndb796/Face-Mask-Classification-20000-Dataset) keeps the dataset hash it had before prepare learned messy layouts:
a changed hash would orphan every reference cache and make existing competitions look like different data."""

from __future__ import annotations

from PIL import Image

from server.data import prepare_competition
from tests.server.data.trees import make_tree, write_image

# Computed with the code of 551fc3d (before issue 13) on the tree below; never update it to make a change pass.
COURSE_TREE_HASH = "6b3ef55de6e2e0a7deec30d197ebd9099e2c83bfe53ff4c0d0676858f17db6dd"


def test_course_layout_keeps_its_dataset_hash(tmp_path):
    source = make_tree(tmp_path / "src", train=3, test=4)
    rgb = write_image(tmp_path / "rgb.png", 96, mode="RGB", seed=7)
    Image.open(rgb).save(source / "train" / "with_mask" / "photo.jpg", quality=90)
    result = prepare_competition(source, tmp_path / "out", progress=False, workers=2)
    assert result.competition.manifest.dataset_hash == COURSE_TREE_HASH
