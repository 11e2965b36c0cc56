"""Where a dataset's files come from: a folder as it is, or a `.zip` / `.tar(.gz|.bz2|.xz)` download extracted safely.

An archive is extracted into a hidden scratch folder next to the output (the same disk the competition is written
to, not a possibly small /tmp) and removed afterwards. Extraction never writes outside that folder: absolute member
names, `..` components, links and device files are refused; before anything is written the member count, the
compression ratio (of each zip entry and of the whole archive, as for submission zips) and the space the files
will take on disk (whole blocks per file: 3 GiB of small files once took 4.9 GiB) are checked against the cap and
the free space of the output disk, less a reserve the running server needs; each file is copied with a byte limit
in case a header lies about its size. macOS and hidden metadata (`__MACOSX/`, `.DS_Store`, `._*`) are skipped.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO

from server.data.errors import DataPreparationError
from submissions.spec import DEFAULT_MAX_COMPRESSION_RATIO
from submissions.validate import RATIO_MIN_BYTES

DEFAULT_MAX_EXTRACT_BYTES = 20 * 1024**3
MAX_ARCHIVE_MEMBERS = 2_000_000
# Image datasets barely compress (PNG and JPEG already are): a higher ratio is a bomb, as for submission zips.
MAX_ARCHIVE_RATIO = DEFAULT_MAX_COMPRESSION_RATIO
DISK_BLOCK = 4096  # a file takes whole blocks, plus about one for its directory entry and inode
DISK_RESERVE = 1024**3  # left free for the server itself (database, uploads, logs) while a dataset is extracted
IGNORED_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}
COPY_CHUNK = 1024 * 1024


def is_ignored(name: str) -> bool:
    """Hidden files and the metadata that zip tools and file browsers scatter through downloads."""
    return name.startswith(".") or name in IGNORED_NAMES


@dataclass(frozen=True)
class SourceTree:
    """A directory holding a dataset, and how to name its files in messages (an archive's members by archive)."""

    root: Path
    label: str

    def show(self, path: Path) -> str:
        if self.label == str(self.root):
            return str(path)
        return f"{self.label}:{path.relative_to(self.root).as_posix()}"


@dataclass(frozen=True)
class ArchiveMember:
    name: str
    size: int
    open: Callable[[], IO[bytes]]
    packed: int | None = None  # a zip entry's compressed size (a tar's members have none of their own)


def disk_footprint(sizes: list[int]) -> int:
    """The bytes files of these sizes occupy on disk: whole blocks, and a block each for the entry."""
    return sum(-(-size // DISK_BLOCK) * DISK_BLOCK + DISK_BLOCK for size in sizes)


@contextmanager
def open_source(
    path: Path, scratch: Path, *, option: str = "--source", max_bytes: int = DEFAULT_MAX_EXTRACT_BYTES
) -> Iterator[SourceTree]:
    """The dataset at `path` as a directory; an archive is extracted under `scratch`, which is removed on exit."""
    if path.is_dir():
        yield SourceTree(root=path, label=str(path))
        return
    if not path.is_file():
        raise DataPreparationError(
            f"{path}: the {option} path does not exist. Fix: pass the dataset folder or its .zip / .tar.gz download."
        )
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        extract_archive(path, scratch, max_bytes=max_bytes)
        yield SourceTree(root=scratch, label=str(path))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def extract_archive(archive: Path, into: Path, *, max_bytes: int) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _extract_members(archive, _zip_members(archive, zf), into, max_bytes)
    elif tarfile.is_tarfile(archive):
        try:
            with tarfile.open(archive) as tf:
                _extract_members(archive, _tar_members(archive, tf), into, max_bytes)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DataPreparationError(
                f"{archive}: the archive is damaged ({type(exc).__name__}: {exc}). Fix: download it again."
            ) from exc
    else:
        raise DataPreparationError(
            f"{archive}: {archive.name} is neither a folder nor a .zip / .tar(.gz) archive. Fix: pass the dataset "
            "folder, or the archive as downloaded from Kaggle, Hugging Face or GitHub."
        )


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> list[ArchiveMember]:
    members = []
    for info in zf.infolist():
        if info.is_dir():
            continue
        if (info.external_attr >> 16) & 0o170000 == 0o120000:  # a symbolic link stored by a Unix zip tool
            _refuse_member(archive, info.filename, "is a symbolic link")
        members.append(ArchiveMember(info.filename, info.file_size, partial(zf.open, info), info.compress_size))
    return members


def _tar_members(archive: Path, tf: tarfile.TarFile) -> list[ArchiveMember]:
    members = []
    for info in tf.getmembers():
        if info.isdir():
            continue
        if not info.isfile():
            _refuse_member(archive, info.name, "is a link or a device, not a file")
        members.append(ArchiveMember(info.name, info.size, partial(_tar_file, tf, info)))
    return members


def _tar_file(tf: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    handle = tf.extractfile(info)
    assert handle is not None  # regular files always have content
    return handle


def _refuse_member(archive: Path, name: str, why: str) -> None:
    raise DataPreparationError(
        f"{archive}: the member {name!r} {why}; datasets are extracted as plain files only. Fix: repack the "
        "archive without it, or extract it yourself and pass the folder as --source."
    )


def _extract_members(archive: Path, members: list[ArchiveMember], into: Path, max_bytes: int) -> None:
    wanted: list[tuple[ArchiveMember, str]] = []
    for member in members:
        rel = _safe_relative_path(archive, member.name)
        if rel is not None:
            wanted.append((member, rel))
    _check_ratios(archive, [member for member, _ in wanted])
    total = sum(member.size for member, _ in wanted)
    footprint = disk_footprint([member.size for member, _ in wanted])
    if len(wanted) > MAX_ARCHIVE_MEMBERS or footprint > max_bytes:
        raise DataPreparationError(
            f"{archive}: the archive holds {len(wanted)} files and {total / 1024**3:.1f} GiB ({footprint / 1024**3:.1f}"
            f" GiB on disk), more than the limits ({MAX_ARCHIVE_MEMBERS} files, {max_bytes / 1024**3:.1f} GiB). Fix: "
            "raise --max-extract-gb if it really is the dataset, or extract it yourself and pass the folder as "
            "--source."
        )
    room = shutil.disk_usage(into).free - DISK_RESERVE
    if footprint > room:
        raise DataPreparationError(
            f"{archive}: extracting needs {footprint / 1024**3:.1f} GiB on disk but {into.parent} has "
            f"{max(room, 0) / 1024**3:.1f} GiB free beyond the {DISK_RESERVE / 1024**3:.0f} GiB the server keeps. "
            "Fix: free some space, or write --out to another disk."
        )
    for member, rel in wanted:
        _copy_member(archive, member, into / rel)


def _check_ratios(archive: Path, members: list[ArchiveMember]) -> None:
    """Refuse a bomb before anything inflates: a zip entry, or (for a compressed tar) the archive as a whole,
    declaring far more bytes than it holds."""
    for member in members:
        if member.packed is not None and member.size >= RATIO_MIN_BYTES:
            ratio = member.size / max(member.packed, 1)
            if ratio > MAX_ARCHIVE_RATIO:
                raise DataPreparationError(
                    f"{archive}: the member {member.name!r} has a compression ratio of {ratio:.0f}:1 ({member.packed:,}"
                    f" bytes declare {member.size:,}), above the cap of {MAX_ARCHIVE_RATIO}:1; image datasets barely "
                    "compress, so this looks like a zip bomb. Fix: check the download, or extract it yourself and "
                    "pass the folder as --source.")
    total = sum(member.size for member in members)
    ratio = total / max(archive.stat().st_size, 1)
    if total >= RATIO_MIN_BYTES and ratio > MAX_ARCHIVE_RATIO:
        raise DataPreparationError(
            f"{archive}: {archive.stat().st_size:,} bytes declare {total:,} bytes of files, a compression ratio of "
            f"{ratio:.0f}:1, above the cap of {MAX_ARCHIVE_RATIO}:1; image datasets barely compress, so this looks "
            "like an archive bomb. Fix: check the download, or extract it yourself and pass the folder as --source."
        )


def _safe_relative_path(archive: Path, name: str) -> str | None:
    """The member's path inside the extraction folder; None for metadata; an error for anything escaping it."""
    posix = PurePosixPath(name.replace("\\", "/"))  # Windows zip tools may store backslashes
    if posix.is_absolute() or ".." in posix.parts or (posix.parts and ":" in posix.parts[0]):
        _refuse_member(archive, name, "points outside the archive's folder (absolute path or '..')")
    if not posix.parts or any(is_ignored(part) or part.startswith("._") for part in posix.parts):
        return None
    return os.path.join(*posix.parts)


def _copy_member(archive: Path, member: ArchiveMember, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with member.open() as src, target.open("xb") as dst:
            while chunk := src.read(COPY_CHUNK):
                written += len(chunk)
                if written > member.size:
                    _refuse_member(archive, member.name, "holds more bytes than its header says")
                dst.write(chunk)
    except FileExistsError:
        _refuse_member(archive, member.name, "occurs twice")
    except (zipfile.BadZipFile, OSError, EOFError) as exc:  # a bad CRC, a truncated download
        raise DataPreparationError(
            f"{archive}: cannot extract {member.name!r} ({type(exc).__name__}: {exc}). Fix: download it again."
        ) from exc
