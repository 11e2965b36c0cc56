"""The packer: canonical layout, identical bytes for identical images, and a round trip through the validator."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from submissions import PackError, pack, validate_zip
from tests.submissions.zips import CLASSES, PER_CLASS, SIZE, gray, small_spec


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    return {cls: np.stack([gray(seed + 10 * c + i) for i in range(PER_CLASS)]) for c, cls in enumerate(CLASSES)}


def packed(source, spec_or_classes=None) -> bytes:
    buffer = io.BytesIO()
    assert pack(source, buffer, spec_or_classes or small_spec()) is None
    return buffer.getvalue()


def test_arrays_round_trip_through_the_validator():
    images = arrays()
    decoded = validate_zip(packed(images), small_spec())
    for cls in CLASSES:
        np.testing.assert_array_equal(decoded.images[cls], images[cls])


def test_layout_is_canonical_and_attributes_fixed():
    with zipfile.ZipFile(io.BytesIO(packed(arrays()))) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == [f"{cls}/{i:05d}.png" for cls in CLASSES for i in range(PER_CLASS)]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}


def test_identical_images_give_identical_bytes_and_different_images_do_not(tmp_path):
    first = packed(arrays())
    second_path = pack(arrays(), tmp_path / "again.zip", CLASSES)
    assert second_path == tmp_path / "again.zip"
    assert second_path.read_bytes() == first
    assert packed(arrays(seed=1)) != first
    assert [p.name for p in tmp_path.iterdir()] == ["again.zip"]  # no temporary left beside it


def test_class_order_in_the_mapping_does_not_matter():
    images = arrays()
    assert packed(dict(reversed(images.items()))) == packed(images)


def test_tensors_in_minus_one_to_one_use_save_image_rounding(tmp_path):
    torch = pytest.importorskip("torch")
    from torchvision.utils import save_image

    tensors = {cls: torch.rand(PER_CLASS, 1, SIZE, SIZE) * 2 - 1 for cls in CLASSES}
    decoded = validate_zip(packed(tensors), small_spec())
    for cls in CLASSES:
        for i in range(PER_CLASS):
            path = tmp_path / f"{cls}{i}.png"
            save_image(tensors[cls][i], path, normalize=True, value_range=(-1, 1))
            np.testing.assert_array_equal(decoded.images[cls][i], np.asarray(Image.open(path))[..., 0])


def test_folder_with_mixed_png_modes_packs_like_the_arrays(tmp_path):
    images = arrays()
    for cls in CLASSES:
        (tmp_path / cls).mkdir()
        for i, image in enumerate(images[cls]):
            mode = ("L", "RGB", "P")[i % 3]
            Image.fromarray(image).convert(mode).save(tmp_path / cls / f"img{i * 10}.png")
        (tmp_path / cls / ".DS_Store").write_bytes(b"\0")
    assert packed(tmp_path) == packed(images)


@pytest.mark.parametrize(
    ("images", "spec_overrides", "message"),
    [
        ({CLASSES[0]: arrays()[CLASSES[0]]}, {}, "classes"),
        ({cls: a[:2] for cls, a in arrays().items()}, {}, "2 images"),
        ({cls: a.astype(np.float32) for cls, a in arrays().items()}, {}, "uint8"),
        ({cls: a[:, :8] for cls, a in arrays().items()}, {}, "16x8"),
        ({cls: a[0] for cls, a in arrays().items()}, {}, "(N, H, W)"),
    ],
)
def test_bad_input_is_refused_before_writing(images, spec_overrides, message):
    out = io.BytesIO()
    with pytest.raises(PackError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pack(images, out, small_spec(**spec_overrides))
    assert out.getvalue() == b""


def test_folder_with_a_colour_image_names_the_file(tmp_path):
    for cls in CLASSES:
        (tmp_path / cls).mkdir()
        Image.fromarray(np.stack([gray(1), gray(2), gray(3)], axis=-1)).save(tmp_path / cls / "0.png")
    with pytest.raises(PackError, match="not grayscale") as caught:
        pack(tmp_path, io.BytesIO(), CLASSES)
    assert "0.png" in str(caught.value)
