"""Validate a submission zip and decode its images, without extracting anything to disk.

Stages, in rule order (see submissions.report.RULES):
1. archive: is it a zip at all (the entry count is read from the end record before the directory is parsed);
2. central directory: encryption, entry count, declared sizes and ratios (zip bombs), zip slip, duplicates;
3. layout, from names alone: wrapper folders, class folders, stray files, images per class;
4. images, only when stage 2 found nothing hostile: PNG header (signature, declared size, mode) before
   decoding, then decoding to uint8 grayscale.
Every problem is collected (up to spec.max_problems); the only exception that leaves is SubmissionInvalid.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import stat
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from submissions.folders import IGNORED_FOLDERS, is_metadata, natural_key
from submissions.png import HEADER_BYTES, ImageSpec, check_header, decode_gray
from submissions.report import Problem, SubmissionInvalid, ValidationReport
from submissions.spec import SubmissionSpec

Source = str | Path | bytes | bytearray | memoryview | BinaryIO

# Entries smaller than this cannot hurt whatever their ratio (a 1 KiB run of zeros compresses 100:1).
RATIO_MIN_BYTES = 64 * 1024
CHUNK_BYTES = 1024 * 1024
EOCD = struct.Struct("<4s4H2LH")
HOSTILE_RULES = {
    "not_a_zip", "encrypted_entry", "too_many_entries", "total_size_over_cap", "compression_ratio_over_cap",
    "unsafe_path", "symlink", "special_entry",
}


@dataclass(frozen=True)
class DecodedSubmission:
    """A valid submission, read once: images[cls] is uint8 (N, H, W), rows in the order of names[cls]."""

    images: dict[str, np.ndarray]
    names: dict[str, list[str]]
    sha256: str
    size_bytes: int
    report: ValidationReport


class _Problems:
    """Collects problems up to the cap; `full` tells loops to stop early."""

    def __init__(self, cap: int):
        self.cap = cap
        self.items: list[Problem] = []
        self.truncated = False

    def add(self, rule: str, file: str, found: str, fix: str) -> None:
        if len(self.items) >= self.cap:
            self.truncated = True
        else:
            self.items.append(Problem(rule=rule, file=file, found=found, fix=fix))

    @property
    def full(self) -> bool:
        return len(self.items) >= self.cap

    def rules(self) -> set[str]:
        return {p.rule for p in self.items}


def validate_zip(source: Source, spec: SubmissionSpec, *, name: str | None = None) -> DecodedSubmission:
    """Check a zip against the spec and decode its images; raise SubmissionInvalid listing every problem."""
    problems = _Problems(spec.max_problems)
    report = ValidationReport()
    with contextlib.ExitStack() as stack:
        label = name or _source_label(source)
        stream = _open_source(source, stack, problems, label, report)
        if stream is not None:
            images, names = _validate_archive(stream, spec, problems, report, label, stack)
    report.problems, report.truncated = problems.items, problems.truncated
    report.valid = not problems.items
    if not report.valid:
        raise SubmissionInvalid(report)
    return DecodedSubmission(images=images, names=names, sha256=report.sha256, size_bytes=report.size_bytes,
                             report=report)


def _source_label(source: Source) -> str:
    if isinstance(source, str | Path):
        return Path(source).name
    return Path(str(getattr(source, "name", "submission.zip"))).name


def _open_source(source: Source, stack: contextlib.ExitStack, problems: _Problems, label: str,
                 report: ValidationReport) -> BinaryIO | None:
    """A seekable binary stream over the zip (its sha256 and size noted in the report), or None after recording
    why there is none."""
    try:
        if isinstance(source, bytes | bytearray | memoryview):
            stream: BinaryIO = io.BytesIO(bytes(source))
        elif isinstance(source, str | Path):
            stream = stack.enter_context(open(source, "rb"))  # noqa: SIM115 - closed by the ExitStack
        elif source.seekable():
            stream = source
        else:
            stream = io.BytesIO(source.read())
        report.sha256, report.size_bytes = _digest(stream)
        return stream
    except (OSError, ValueError, AttributeError) as exc:
        problems.add("not_a_zip", label, f"cannot be read ({exc})", "check the path and that the file is readable")
        return None


def _digest(stream: BinaryIO) -> tuple[str, int]:
    stream.seek(0)
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return digest.hexdigest(), size


def _validate_archive(stream: BinaryIO, spec: SubmissionSpec, problems: _Problems, report: ValidationReport,
                      label: str, stack: contextlib.ExitStack) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    declared = _declared_entry_count(stream)
    if declared is not None and declared > spec.max_entries:
        _too_many(problems, label, declared, spec)
        return {}, {}
    try:
        archive = stack.enter_context(zipfile.ZipFile(stream))
        infos = archive.infolist()
    except Exception as exc:  # noqa: BLE001 - zipfile raises many types on hostile bytes
        fix = "create it with a zip tool (zip -r submission.zip with_mask without_mask) or `arena submission sample`"
        problems.add("not_a_zip", label, f"not a readable zip archive ({type(exc).__name__}: {exc})", fix)
        return {}, {}
    report.entries = len(infos)
    if len(infos) > spec.max_entries:
        _too_many(problems, label, len(infos), spec)
        return {}, {}
    _check_directory(infos, spec, problems, label)
    files = _check_layout(infos, spec, problems, report)
    if problems.rules() & HOSTILE_RULES:
        return {}, {}
    return _decode_images(archive, files, spec, problems)


def _declared_entry_count(stream: BinaryIO) -> int | None:
    """Entry count from the end-of-central-directory record, read before zipfile builds every ZipInfo."""
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    tail_start = max(0, size - EOCD.size - 0xFFFF)
    stream.seek(tail_start)
    tail = stream.read()
    stream.seek(0)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + EOCD.size > len(tail):
        return None
    return EOCD.unpack_from(tail, at)[4]


def _too_many(problems: _Problems, label: str, count: int, spec: SubmissionSpec) -> None:
    expected = len(spec.classes) * spec.images_per_class
    problems.add("too_many_entries", label, f"{count} entries, more than the cap of {spec.max_entries}",
                 f"a submission holds {expected} images; zip only the class folders")


def _normalized(name: str) -> str:
    # Some Windows tools write backslashes; treat them as separators so '..\\' is caught too.
    return name.replace("\\", "/")


def _parts(name: str) -> tuple[str, ...]:
    """Path components of a normalized entry name; str.split because pathlib is slow for 10,000 entries."""
    return tuple(part for part in name.split("/") if part not in ("", "."))


def _unsafe_reason(name: str) -> str | None:
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if ".." in _parts(name):
        return "a '..' component"
    return None


def _check_directory(infos: list[zipfile.ZipInfo], spec: SubmissionSpec, problems: _Problems, label: str) -> None:
    total = sum(info.file_size for info in infos)
    if total > spec.max_uncompressed_bytes:
        found = f"entries declare {total} bytes uncompressed, more than the cap of {spec.max_uncompressed_bytes}"
        fix = "a submission of PNG images is far smaller; remove extra files"
        problems.add("total_size_over_cap", label, found, fix)
    seen: dict[str, str] = {}
    for info in infos:
        _check_entry(info, spec, problems)
        name = _normalized(info.filename).rstrip("/")
        if _is_ignored(name):
            continue
        key = name.casefold()
        if key in seen:
            same = "the same name" if seen[key] == name else f"the same name as '{seen[key]}' ignoring case"
            problems.add("duplicate_name", info.filename, f"{same} appears twice",
                         "keep one entry per name; names that differ only in case clash on Windows and macOS")
        else:
            seen[key] = name


def _check_entry(info: zipfile.ZipInfo, spec: SubmissionSpec, problems: _Problems) -> None:
    name = info.filename
    if info.flag_bits & 0x1:
        problems.add("encrypted_entry", name, "the entry is encrypted", "zip the images without a password")
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size >= RATIO_MIN_BYTES and ratio > spec.max_compression_ratio:
        found = (f"compression ratio {ratio:.0f}:1 ({info.compress_size} bytes declare {info.file_size}), above "
                 f"the cap of {spec.max_compression_ratio}:1")
        problems.add("compression_ratio_over_cap", name, found, "PNG images barely compress; zip only the images")
    reason = _unsafe_reason(_normalized(name))
    if reason:
        problems.add("unsafe_path", name, f"{reason} (zip slip)", "zip relative paths such as with_mask/0001.png")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        problems.add("symlink", name, "a symbolic link", "zip the image files themselves (zip without -y)")
    elif stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        problems.add("special_entry", name, f"a special file (mode {stat.filemode(mode)})",
                     "zip only regular image files")


def _is_ignored(name: str) -> bool:
    parts = _parts(name)
    if not parts:
        return True
    return bool(IGNORED_FOLDERS & set(parts)) or is_metadata(parts[-1])


def _wrapper_prefix(paths: list[tuple[str, ...]], classes: set[str]) -> tuple[str, ...]:
    """Folders above the class folders: descend while every file sits in one shared folder that is not a class."""
    prefix: tuple[str, ...] = ()
    while paths and all(len(p) > len(prefix) + 1 for p in paths):
        heads = {p[len(prefix)] for p in paths}
        if len(heads) != 1 or heads & classes:
            break
        prefix += (heads.pop(),)
    return prefix


def _check_layout(infos: list[zipfile.ZipInfo], spec: SubmissionSpec, problems: _Problems,
                  report: ValidationReport) -> dict[str, list[zipfile.ZipInfo]]:
    """Group image entries by class from their names; report unknown folders, stray files and wrong counts."""
    entries = [(_parts(name), info) for info in infos if not _is_ignored(name := _normalized(info.filename))]
    files = [(parts, info) for parts, info in entries if not info.is_dir()]
    classes = set(spec.classes)
    prefix = _wrapper_prefix([parts for parts, _ in files], classes)
    report.root = "".join(f"{p}/" for p in prefix)
    depth = len(prefix)
    by_class: dict[str, list[zipfile.ZipInfo]] = {}
    folders = _top_folders(entries, prefix)
    for folder in sorted(folders - classes):
        _unknown_folder(problems, report.root + folder + "/", folder, spec)
    for parts, info in files:
        rel = parts[depth:] if parts[:depth] == prefix else parts
        if len(rel) == 2 and rel[0] in classes:
            by_class.setdefault(rel[0], []).append(info)
        elif len(rel) > 2 and rel[0] in classes:
            problems.add("unexpected_entry", info.filename, "a subfolder inside a class folder",
                         f"put the images directly into {report.root}{rel[0]}/")
        elif len(rel) == 1:
            problems.add("unexpected_entry", info.filename, "a file outside the class folders",
                         "remove it; only the class folders and their images belong in the zip")
    for cls in spec.classes:
        _check_class_count(cls, by_class, folders, spec, problems, report)
    return {cls: sorted(by_class.get(cls, []), key=lambda i: natural_key(i.filename)) for cls in spec.classes}


def _top_folders(entries: list[tuple[tuple[str, ...], zipfile.ZipInfo]], prefix: tuple[str, ...]) -> set[str]:
    """Folders directly below the wrapper prefix, named by file paths or by explicit directory entries."""
    depth = len(prefix)
    folders = set()
    for parts, info in entries:
        holds_folder = len(parts) > depth if info.is_dir() else len(parts) > depth + 1
        if holds_folder and parts[:depth] == prefix:
            folders.add(parts[depth])
    return folders


def _unknown_folder(problems: _Problems, path: str, folder: str, spec: SubmissionSpec) -> None:
    matches = [c for c in spec.classes if c.casefold() == folder.casefold()]
    if matches:
        fix = f"rename it to '{matches[0]}' (class names are case-sensitive)"
    else:
        fix = f"remove it; the class folders are {', '.join(spec.classes)}"
    problems.add("unknown_folder", path, f"folder '{folder}' is not a class of this competition", fix)


def _check_class_count(cls: str, by_class: dict[str, list[zipfile.ZipInfo]], folders: set[str],
                       spec: SubmissionSpec, problems: _Problems, report: ValidationReport) -> None:
    count = len(by_class.get(cls, []))
    report.counts[cls] = count
    if cls not in folders:
        problems.add("missing_class", f"{report.root}{cls}/", f"no folder '{cls}'",
                     f"add a folder '{cls}' with {spec.images_per_class} images next to the other class folders")
    elif count != spec.images_per_class:
        problems.add("wrong_count", f"{report.root}{cls}/", f"{count} images, expected {spec.images_per_class}",
                     f"put exactly {spec.images_per_class} images into {report.root}{cls}/")


def _decode_images(archive: zipfile.ZipFile, files: dict[str, list[zipfile.ZipInfo]], spec: SubmissionSpec,
                   problems: _Problems) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    image_spec = ImageSpec(spec.image_size, spec.max_image_pixels, spec.max_image_file_bytes)
    images: dict[str, np.ndarray] = {}
    for cls, infos in files.items():
        stack = np.zeros((len(infos), spec.image_size, spec.image_size), dtype=np.uint8)
        for row, decoded in enumerate(_decoded(archive, infos, image_spec)):
            if problems.full:
                problems.truncated = True  # stop decoding: the report is full anyway
                return {}, {}
            if isinstance(decoded, Problem):
                problems.add(decoded.rule, decoded.file, decoded.found, decoded.fix)
            else:
                stack[row] = decoded
        images[cls] = stack
    names = {cls: [info.filename for info in infos] for cls, infos in files.items()}
    return images, names


def _decoded(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], spec: ImageSpec) -> Iterator[np.ndarray | Problem]:
    for info in infos:
        yield _decode_entry(archive, info, spec)


def _decode_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, spec: ImageSpec) -> np.ndarray | Problem:
    try:
        with archive.open(info) as entry:
            head = entry.read(HEADER_BYTES)
            problem = check_header(head, info.file_size, info.filename, spec)
            if problem is not None:
                return problem
            # zipfile never inflates past the declared size, which check_header capped: a lying header can't blow
            # memory.
            data = head + entry.read()
    except Exception as exc:  # noqa: BLE001 - CRC errors, bad deflate streams, unsupported methods
        return Problem(rule="corrupt_zip", file=info.filename,
                       found=f"the entry cannot be inflated ({type(exc).__name__}: {str(exc)[:120]})",
                       fix="re-create the zip; the archive is truncated or damaged")
    return decode_gray(data, info.filename)

