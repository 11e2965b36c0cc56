"""`--source` as a .zip or .tar.gz download: same competition as the folder, safe extraction, clear refusals."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from server.data import prepare_competition
from server.data.sources import DISK_BLOCK, DISK_RESERVE, disk_footprint
from tests.server.data.test_prepare import assert_refused
from tests.server.data.trees import make_messy_tree, make_tree


def prepare(source: Path, out: Path, **options):
    return prepare_competition(source, out, progress=False, workers=1, **options)


def zip_tree(root: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(root.rglob("*")):
            zf.write(path, path.relative_to(root).as_posix())
        zf.writestr("__MACOSX/Face Mask Dataset/._junk", b"resource fork")
    return archive


def no_scratch_left(out: Path) -> bool:
    return not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archive_gives_the_same_competition_as_the_folder(tmp_path, kind):
    source = make_messy_tree(tmp_path / "download")
    archive = tmp_path / f"face-mask.{kind}"
    if kind == "zip":
        zip_tree(source, archive)
    else:
        with tarfile.open(archive, "w:gz") as tf:
            tf.add(source / "Face Mask Dataset", arcname="Face Mask Dataset")
    from_folder = prepare(source, tmp_path / "folder").competition
    from_archive = prepare(archive, tmp_path / "archive")
    assert from_archive.competition.manifest.dataset_hash == from_folder.manifest.dataset_hash
    assert next(iter(from_archive.report.renamed.values())).startswith(f"{archive}:Face Mask Dataset/")
    assert no_scratch_left(tmp_path / "archive")


def test_problems_inside_an_archive_are_named_by_archive_and_member(tmp_path):
    source = make_tree(tmp_path / "src")
    (source / "train" / "with_mask" / "notes.txt").write_text("not an image")
    archive = zip_tree(source, tmp_path / "data.zip")
    assert_refused(archive, tmp_path / "out", f"{archive}:train/with_mask/notes.txt", "not a readable image")
    assert no_scratch_left(tmp_path / "out")


def test_separate_test_archive(tmp_path):
    make_tree(tmp_path / "src")
    test_zip = zip_tree(tmp_path / "src" / "test", tmp_path / "held-out.zip")
    result = prepare(tmp_path / "src" / "train", tmp_path / "out", test_source=test_zip)
    reference = prepare(tmp_path / "src", tmp_path / "reference").competition
    assert result.competition.manifest.dataset_hash == reference.manifest.dataset_hash


@pytest.mark.parametrize("name", ["../escape.png", "/etc/escape.png", "train/../../escape.png"])
def test_path_traversal_is_refused(tmp_path, name):
    archive = zip_tree(make_tree(tmp_path / "src"), tmp_path / "evil.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr(name, b"x")
    assert_refused(archive, tmp_path / "work" / "out", "points outside", name)
    assert not (tmp_path / "escape.png").exists() and not (tmp_path / "work" / "escape.png").exists()
    assert no_scratch_left(tmp_path / "work" / "out")


def test_links_in_a_tar_are_refused(tmp_path):
    source = make_tree(tmp_path / "src")
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(source, arcname="data")
        link = tarfile.TarInfo("data/train/with_mask/secret.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    assert_refused(archive, tmp_path / "out", "secret.png", "is a link")


def test_size_cap(tmp_path):
    archive = zip_tree(make_tree(tmp_path / "src"), tmp_path / "data.zip")
    assert_refused(archive, tmp_path / "out", "more than the limits", "--max-extract-gb", max_extract_bytes=1000)


def test_a_file_that_is_no_archive(tmp_path):
    (tmp_path / "data.rar").write_bytes(b"Rar!\x1a\x07\x00 not supported")
    assert_refused(tmp_path / "data.rar", tmp_path / "out", "neither a folder nor a .zip")
    assert_refused(tmp_path / "missing.zip", tmp_path / "out", "does not exist")


def test_a_damaged_tar_gz(tmp_path):
    source = make_tree(tmp_path / "src")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        tf.add(source, arcname="data")
    (tmp_path / "cut.tar.gz").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    assert_refused(tmp_path / "cut.tar.gz", tmp_path / "out", str(tmp_path / "cut.tar.gz"), "download it again")


# -- issue 22, item 8: archive bombs and the disk --------------------------------------------------------------------


def test_a_zip_entry_with_a_bomb_ratio_is_refused_before_anything_is_written(tmp_path):
    archive = zip_tree(make_tree(tmp_path / "src"), tmp_path / "data.zip")
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train/with_mask/zeros.png", bytes(8 * 1024**2))  # 8 MiB of zeros deflate about 1000:1
    assert_refused(archive, tmp_path / "out", "zeros.png", "compression ratio", "zip bomb")
    assert no_scratch_left(tmp_path / "out")


def test_a_compressed_tar_bomb_is_refused_by_the_ratio_of_the_whole_archive(tmp_path):
    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for index in range(4):  # each member alone says nothing: tar members have no compressed size of their own
            info = tarfile.TarInfo(f"train/with_mask/{index}.png")
            info.size = 4 * 1024**2
            tf.addfile(info, io.BytesIO(bytes(info.size)))
    assert archive.stat().st_size < 200 * 1024
    assert_refused(archive, tmp_path / "out", "compression ratio", "archive bomb")
    assert no_scratch_left(tmp_path / "out")


def test_the_cap_counts_the_space_small_files_take_on_disk(tmp_path):
    """4,000 files of 10 bytes declare 40 kB but take about 32 MB of blocks: the cap and the free-space check count
    blocks (a 3 GiB archive of small files once took 4.9 GiB)."""
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for index in range(4000):
            zf.writestr(f"train/with_mask/{index}.png", b"0123456789")
    assert disk_footprint([10] * 4000) == 4000 * 2 * DISK_BLOCK
    assert_refused(archive, tmp_path / "out", "on disk", "--max-extract-gb", max_extract_bytes=1024**2)
    assert no_scratch_left(tmp_path / "out")


def test_an_archive_larger_than_the_free_space_beyond_the_reserve_is_refused(tmp_path):
    """A sparse .tar (its one member a hole: ratio 1, no disk used) declaring more than the disk has free beyond
    the server's reserve: refused by the real free space before anything is extracted."""
    import shutil

    free = shutil.disk_usage(tmp_path).free
    info = tarfile.TarInfo("train/with_mask/huge.png")
    info.size = free - DISK_RESERVE // 2  # fits the disk, not the reserve the server keeps
    archive = tmp_path / "data.tar"
    with archive.open("wb") as handle:
        handle.write(info.tobuf(format=tarfile.GNU_FORMAT))
        handle.truncate(tarfile.BLOCKSIZE + -(-info.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
                        + 2 * tarfile.BLOCKSIZE)  # the data and the end-of-archive blocks: zeros, not stored
    assert_refused(archive, tmp_path / "out", "free beyond the 1 GiB the server keeps", max_extract_bytes=2 * free)
