"""Writing a competition directory: deterministic PNGs, the public/private split, manifest, config, preview grid.

`arena data demo` and `arena data prepare` both build the directory in a hidden staging folder next to the output
and move it into place only when it is complete: a failed or interrupted run never leaves half a competition
behind, and an output directory that already holds a competition is never overwritten. Rerunning with the same
input finds the same dataset hash and leaves the existing directory (and its scoring caches) untouched.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from server.competition_dir import (
    CONFIG_FILE,
    Competition,
    CompetitionConfig,
    Manifest,
    ManifestEntry,
    Split,
    write_config,
    write_manifest,
)
from server.data.errors import DataPreparationError

PREVIEW_FILE = "preview.png"
# A fixed zlib level and no metadata chunks: the same pixels always give the same PNG bytes (and dataset hash).
PNG_COMPRESS_LEVEL = 6


def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 (H, W) grayscale pixels -> PNG bytes, byte-identical for identical pixels."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), mode="L").save(
        buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL
    )
    return buffer.getvalue()


def public_test_names(names: list[str], *, seed: int, fraction: float) -> set[str]:
    """The test images of one class that form the public part.

    Exactly round(fraction * n) names (at least one in each part when n >= 2), picked by ranking
    sha256(seed, name): the split depends only on the file names and the seed, not on listing order or machine.
    """
    count = int(fraction * len(names) + 0.5)
    if len(names) >= 2:
        count = min(max(count, 1), len(names) - 1)
    ranked = sorted(names, key=lambda name: hashlib.sha256(f"{seed}\0{name}".encode()).hexdigest())
    return set(ranked[:count])


def competition_config(**settings: object) -> CompetitionConfig:
    """A CompetitionConfig, or a DataPreparationError that names the bad option and its rule."""
    try:
        return CompetitionConfig(**settings)  # type: ignore[arg-type]
    except ValueError as exc:
        raise DataPreparationError(
            f"Invalid competition settings: {exc}\nFix: --slug takes lowercase letters, digits and dashes; "
            "--image-size at least 8; --images-per-class at least 1; --public-fraction strictly between 0 and 1."
        ) from exc


def check_output_dir(out: Path, config: CompetitionConfig) -> None:
    """Fail before any work if `out` holds anything but nothing or the same competition config."""
    if out.exists() and not out.is_dir():
        raise DataPreparationError(f"{out}: the output path is a file. Fix: pass a directory path as --out.")
    if not out.is_dir() or not any(out.iterdir()):
        return
    config_path = out / CONFIG_FILE
    if not config_path.is_file():
        raise DataPreparationError(
            f"{out}: the output directory is not empty and holds no {CONFIG_FILE}; refusing to write into it. "
            "Fix: choose a new or empty --out directory."
        )
    try:
        existing = CompetitionConfig.model_validate_json(config_path.read_text())
    except ValueError as exc:
        raise DataPreparationError(
            f"{config_path}: the output directory holds an unreadable competition config ({exc}); refusing to "
            "overwrite it. Fix: choose another --out directory."
        ) from exc
    differences = config_differences(existing, config)
    if differences:
        raise DataPreparationError(
            f"{out}: the output directory already holds a different competition; refusing to overwrite it. "
            "Fix: choose another --out directory, or delete this one if you really mean to replace it. "
            "Settings that differ (existing -> requested):",
            differences,
        )


def config_differences(existing: CompetitionConfig, requested: CompetitionConfig) -> list[str]:
    old, new = existing.model_dump(mode="json"), requested.model_dump(mode="json")
    return [f"{key}: {old[key]!r} -> {new[key]!r}" for key in old if old[key] != new[key]]


class CompetitionWriter:
    """Collects a competition's images in a staging directory, then installs it at `out` in one rename.

    Use as a context manager: the staging directory is removed whatever happens.
    """

    def __init__(self, out: Path, config: CompetitionConfig) -> None:
        self.out = Path(out).resolve()  # so that `.` has a name and a parent for the staging folder
        self.config = config
        self.staging = self.out.parent / f".{self.out.name}.partial-{os.getpid()}"
        self.entries: list[ManifestEntry] = []
        self.unchanged = False
        check_output_dir(self.out, config)

    def __enter__(self) -> CompetitionWriter:
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def add(self, part: str, cls: str, name: str, split: Split, png: bytes) -> None:
        """Store one encoded image as `<part>/<cls>/<name>` (part: train or test)."""
        rel = f"{part}/{cls}/{name}"
        path = self.staging / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        digest = hashlib.sha256(png).hexdigest()
        self.entries.append(ManifestEntry.model_validate({"path": rel, "class": cls, "split": split, "sha256": digest}))

    def finish(self, audit: dict[str, Any] | None = None) -> Competition:
        """Write manifest (with prepare's audit), config and preview, then install the directory (or keep an
        identical existing one)."""
        manifest = Manifest.build(self.entries, audit=audit)
        write_config(self.staging, self.config)
        write_manifest(self.staging, manifest)
        write_preview(self.staging, Competition.load(self.staging))
        if not (self.out / CONFIG_FILE).is_file():
            try:
                self._install()
            except OSError:
                if not (self.out / CONFIG_FILE).is_file():
                    raise
                # Another process (say a second `arena serve --demo`) installed it first: fine if identical.
        if self.staging.exists():
            self._keep_identical(manifest)
        return Competition.load(self.out)

    def _install(self) -> None:
        if self.out.is_dir():
            self.out.rmdir()  # empty: check_output_dir refused anything else
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.staging.rename(self.out)

    def _keep_identical(self, manifest: Manifest) -> None:
        check_output_dir(self.out, self.config)  # again: a concurrent run may have installed other settings
        try:
            existing = Competition.load(self.out).manifest.dataset_hash
        except ValueError as exc:
            raise DataPreparationError(
                f"{self.out}: the output directory holds a competition config but no valid manifest ({exc}); "
                "refusing to overwrite it. Fix: choose another --out directory, or delete this one."
            ) from exc
        if existing != manifest.dataset_hash:
            raise DataPreparationError(
                f"{self.out}: the output directory already holds a competition with the same settings but other "
                f"images (dataset hash {existing[:12]}, this input gives {manifest.dataset_hash[:12]}); refusing "
                "to overwrite it. Fix: choose another --out directory, or delete this one if you really mean to "
                "replace it."
            )
        self.unchanged = True


def write_preview(
    root: Path, competition: Competition, *, rows_per_class: int = 3, columns: int = 10, scale: int = 2
) -> Path:
    """A sample grid of the first training images of each class (one labelled band per class) at root/preview.png."""
    size = competition.config.image_size * scale
    label_height, gap = 18, 4
    band_height = label_height + rows_per_class * (size + gap)
    sheet = Image.new("L", (columns * (size + gap) + gap, len(competition.classes) * band_height + gap), 255)
    draw = ImageDraw.Draw(sheet)
    for band, cls in enumerate(competition.classes):
        top = gap + band * band_height
        draw.text((gap, top + 3), cls, fill=0)
        for index, path in enumerate(competition.train_files(cls)[: rows_per_class * columns]):
            row, column = divmod(index, columns)
            with Image.open(path) as image:
                tile = image.convert("L").resize((size, size), Image.Resampling.NEAREST)
            sheet.paste(tile, (gap + column * (size + gap), top + label_height + row * (size + gap)))
    path = root / PREVIEW_FILE
    sheet.save(path)
    return path
