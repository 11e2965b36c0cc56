"""Class folders: which files are the images of a class, and in which order. One rule for the zip validator (entry
names), the packer and `arena score --images` (folders on disk), so a folder packs and scores as its zip would.

- Every file directly inside a class folder is an image, whatever its name or extension: a stray file is reported
  (it fails to decode as a PNG, naming the file), never silently left out, so nobody submits fewer images than they
  think.
- Metadata that operating systems and archivers add is not: `__MACOSX/` folders, `.DS_Store`, `Thumbs.db`,
  `desktop.ini` and AppleDouble `._*` files.
- Nothing nests: a subfolder inside a class folder is an error.
- Natural order by name ('img2.png' before 'img10.png'): the order of rows, sample grids and evidence.

A competition's own images (train/, test/) are not read by this rule but through its manifest (the dataset hash
covers it); `arena data prepare` reads raw downloads with a wider filter (every dot file skipped, any nesting), as
those are an organizer's untidy source, not a submission.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from submissions.png import decode_gray
from submissions.report import PackError, Problem

IGNORED_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
IGNORED_FOLDERS = {"__MACOSX"}


def is_metadata(name: str) -> bool:
    """A file an operating system or archiver adds next to the images: never an image, never counted."""
    return name in IGNORED_NAMES or name.startswith("._")


def natural_key(name: str) -> tuple:
    """'img2.png' sorts before 'img10.png': the order a person expects in sample grids."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def class_image_files(folder: Path) -> list[Path]:
    """The image files of one class folder on disk, in natural order (PackError for a subfolder)."""
    paths = []
    for path in folder.iterdir():
        if path.is_dir():
            if path.name not in IGNORED_FOLDERS:
                raise PackError(f"{path}: a subfolder inside a class folder; put the images directly into {folder}")
        elif not is_metadata(path.name):
            paths.append(path)
    return sorted(paths, key=lambda p: natural_key(p.name))


def read_class_folders(root: str | Path, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """uint8 (N, H, W) per class from a folder holding one subfolder of images per class, decoded as a zip's images
    are (8-bit gray, or RGB/palette with equal channels); PackError names the file and the fix."""
    root = Path(root)
    if not root.is_dir():
        raise PackError(f"{root}: not a folder; pass a folder holding one subfolder per class ({', '.join(classes)})")
    images = {}
    for cls in classes:
        folder = root / cls
        if not folder.is_dir():
            raise PackError(f"{folder}: missing class folder; create it and put the {cls} images inside")
        images[cls] = _stack(cls, [_read_gray(path) for path in class_image_files(folder)])
    return images


def _read_gray(path: Path) -> np.ndarray:
    decoded = decode_gray(path.read_bytes(), str(path))
    if isinstance(decoded, Problem):
        raise PackError(decoded.message)
    return decoded


def _stack(cls: str, arrays: list[np.ndarray]) -> np.ndarray:
    if not arrays:
        raise PackError(f"class {cls}: no images found")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise PackError(f"class {cls}: images of different sizes {sorted(shapes)}; resize them to one size")
    return np.stack(arrays)
