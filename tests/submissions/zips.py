"""Builders for submission zips in tests: good images, hostile entries, and byte-level patches of the directory."""

from __future__ import annotations

import io
import stat
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterable

import numpy as np
from PIL import Image

from submissions import SubmissionSpec

CLASSES = ["with_mask", "without_mask"]
SIZE = 16
PER_CLASS = 3
CENTRAL_HEADER = b"PK\x01\x02"


def small_spec(**overrides) -> SubmissionSpec:
    return SubmissionSpec(classes=CLASSES, images_per_class=PER_CLASS, image_size=SIZE, **overrides)


def gray(seed: int = 0, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)


def png(array: np.ndarray | None = None, mode: str | None = None, **save_args) -> bytes:
    image = Image.fromarray(gray() if array is None else array)
    if mode is not None:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **save_args)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR declaring any size, followed by a tiny IDAT: a decompression bomb's header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + png_chunk(b"IEND", b""))



def make_zip(entries: Iterable[tuple[str | zipfile.ZipInfo, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names, which some tests want
        with zipfile.ZipFile(buffer, "w", compression) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return buffer.getvalue()


def good_entries(prefix: str = "", per_class: int = PER_CLASS) -> list[tuple[str, bytes]]:
    return [(f"{prefix}{cls}/{i}.png", png(gray(10 * c + i))) for c, cls in enumerate(CLASSES)
            for i in range(per_class)]


def good_zip(**kwargs) -> bytes:
    return make_zip(good_entries(**kwargs))


def with_mode(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    info.create_system = 3
    return info


def symlink(name: str) -> zipfile.ZipInfo:
    return with_mode(name, stat.S_IFLNK | 0o777)


def patch_central(data: bytes, name: str, *, flags: int | None = None, file_size: int | None = None) -> bytes:
    """Rewrite fields of one central directory record, as a hostile or broken zip writer would."""
    encoded = name.encode()
    at = 0
    while (at := data.find(CENTRAL_HEADER, at)) >= 0:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46: at + 46 + name_length] == encoded:
            patched = bytearray(data)
            if flags is not None:
                struct.pack_into("<H", patched, at + 8, flags)
            if file_size is not None:
                struct.pack_into("<I", patched, at + 24, file_size)
            return bytes(patched)
        at += 4
    raise KeyError(name)
