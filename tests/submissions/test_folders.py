"""One rule for class folders (submissions/folders.py): a folder on disk reads as its zip validates, the packer and
`arena score --images` read folders through it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from submissions import PackError, SubmissionInvalid, pack, validate_zip
from submissions.folders import class_image_files, read_class_folders
from tests.submissions.zips import CLASSES, SIZE, gray, make_zip, png, small_spec

NAMES = ["img10.png", "img2.png", "img1.png"]  # natural order: img1, img2, img10
METADATA = {".DS_Store": b"\0\1", "._img1.png": b"AppleDouble", "Thumbs.db": b"\0", "desktop.ini": b"[x]",
            "__MACOSX/._img2.png": b"AppleDouble"}


def write_tree(root: Path, extra: dict[str, bytes]) -> list[tuple[str, bytes]]:
    """Class folders of PNGs (three modes, equal channels) plus `extra` in every class; returns the same as zip
    entries."""
    entries = []
    for c, cls in enumerate(CLASSES):
        files = {name: png(gray(10 * c + i), mode=("L", "RGB", "P")[i]) for i, name in enumerate(NAMES)} | extra
        for name, data in files.items():
            path = root / cls / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            entries.append((f"{cls}/{name}", data))
    return entries


def test_a_folder_reads_as_its_zip_validates_metadata_left_out_in_natural_order(tmp_path):
    entries = write_tree(tmp_path, METADATA)
    from_disk = read_class_folders(tmp_path, CLASSES)
    from_zip = validate_zip(make_zip(entries), small_spec())
    for c, cls in enumerate(CLASSES):
        expected = np.stack([gray(10 * c + i) for i in (2, 1, 0)])  # img1, img2, img10
        np.testing.assert_array_equal(from_disk[cls], expected)
        np.testing.assert_array_equal(from_zip.images[cls], expected)
    assert [p.name for p in class_image_files(tmp_path / CLASSES[0])] == ["img1.png", "img2.png", "img10.png"]
    assert pack(tmp_path, tmp_path / "out.zip", small_spec()) == tmp_path / "out.zip"
    assert validate_zip(tmp_path / "out.zip", small_spec()).images.keys() == set(CLASSES)


def test_a_stray_file_is_reported_on_disk_and_in_the_zip(tmp_path):
    entries = write_tree(tmp_path, {"notes.txt": b"not an image"})
    with pytest.raises(PackError, match=r"with_mask/notes\.txt"):
        read_class_folders(tmp_path, CLASSES)
    with pytest.raises(SubmissionInvalid) as caught:
        validate_zip(make_zip(entries), small_spec())
    assert any(p.file.endswith("with_mask/notes.txt") for p in caught.value.report.problems)


def test_a_subfolder_inside_a_class_folder_is_an_error_on_disk_and_in_the_zip(tmp_path):
    entries = write_tree(tmp_path, {"more/img3.png": png(gray(99))})
    with pytest.raises(PackError, match=r"with_mask/more: a subfolder inside a class folder"):
        read_class_folders(tmp_path, CLASSES)
    with pytest.raises(SubmissionInvalid) as caught:
        validate_zip(make_zip(entries), small_spec())
    assert {p.rule for p in caught.value.report.problems} == {"unexpected_entry"}


def test_colour_images_missing_classes_and_mixed_sizes_name_the_fix(tmp_path):
    write_tree(tmp_path, {})
    (tmp_path / CLASSES[1] / "img2.png").write_bytes(png(np.stack([gray(1), gray(2), gray(3)], axis=-1)))
    with pytest.raises(PackError, match=r"without_mask/img2\.png.*not grayscale"):
        read_class_folders(tmp_path, CLASSES)
    with pytest.raises(PackError, match="missing class folder"):
        read_class_folders(tmp_path, ["other"])
    (tmp_path / CLASSES[0] / "img2.png").write_bytes(png(gray(1, size=SIZE * 2)))
    with pytest.raises(PackError, match="different sizes"):
        read_class_folders(tmp_path, CLASSES[:1])
