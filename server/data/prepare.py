"""`arena data prepare`: turn a dataset as downloaded (folder or archive) into a competition directory.

Two source layouts (see server/data/layout.py for how splits and classes are found and named):

    --source DIR|ARCHIVE                 split folders (train/, Test/, Validation/, ...) of class folders
    --source DIR --test-source HELD      DIR/<class>/* are the training images, HELD/<class>/* the held-out ones
    --source DIR --test-fraction F       DIR/<class>/* (or DIR/train/<class>/*) only: a seeded share F of each
                                         class becomes the test split, near-duplicate groups kept on one side
                                         (server/data/split.py)

Every image is decoded, converted to 8-bit grayscale and resized to the competition size with PIL's bicubic
filter (antialiased when shrinking), then stored as a PNG. Generated submissions go through the same grayscale PNG
path, so real and generated images reach the FID network identically. Grayscale conversion: RGB and CMYK by PIL's
ITU-R 601-2 luma; palettes expanded; transparent pixels composited onto white; 16-bit grayscale scaled to 8 bits
(PIL's own `convert('L')` would clip everything above 255 to white); EXIF rotation applied; animated GIF/WebP: the
first frame. Non-square images are stretched to the square size.

Images smaller than the competition size follow `--small`: `skip` (default) leaves them out and lists them,
because an upscaled 34x34 photo is a blurred 64x64 one and would pull the FID reference statistics towards blur;
`upscale` keeps them (bicubic), `error` stops. Unreadable files stop the run unless `--skip-bad`. Decoding runs in
worker processes (one per core), then every prepared image goes through the duplicate audit (server/data/audit.py).
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from server.competition_dir import Competition, Split
from server.data.audit import AuditedImage, DuplicateReport, find_duplicates, perceptual_hash
from server.data.errors import DataPreparationError
from server.data.layout import Layout, SourceImage, ValidationPolicy, check_class_names, find_layout, source_images
from server.data.sources import DEFAULT_MAX_EXTRACT_BYTES, open_source
from server.data.split import TestSplit, check_test_fraction, choose_test_images
from server.data.writer import CompetitionWriter, competition_config, encode_png, public_test_names
from submissions.competition import SubmissionKinds

SmallPolicy = Literal["upscale", "skip", "error"]
SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
# Below this many images, starting worker processes costs more than it saves.
PROCESS_POOL_MIN_IMAGES = 200
CHUNK_SIZE = 32


class UnusableImage(Exception):
    """One source file cannot become a competition image; the message says why."""

    def __init__(self, reason: str, *, small: bool = False) -> None:
        super().__init__(reason)
        self.small = small


@dataclass(frozen=True)
class Converted:
    """What a worker made of one source file: PNG bytes and hash, or the reason it is unusable."""

    png: bytes | None = None
    phash: int = 0
    problem: str = ""
    small: bool = False  # smaller than the competition size (upscaled, or left out)


@dataclass
class PrepareReport:
    """What prepare found and did, for the summary and manifest.json's `audit`."""

    layout: Layout
    validation: ValidationPolicy
    small_policy: SmallPolicy
    renamed: dict[str, str] = field(default_factory=dict)  # output path -> source file
    small: list[str] = field(default_factory=list)  # source files smaller than the competition size
    unreadable: list[str] = field(default_factory=list)  # "source: reason", left out by --skip-bad
    duplicates: DuplicateReport | None = None
    dropped: dict[str, str] = field(default_factory=dict)  # test images --dedupe left out -> source file
    test_split: TestSplit | None = None  # what --test-fraction held out

    def as_json(self) -> dict[str, Any]:
        return {
            "splits": {split: self.layout.show(root) for split, root in sorted(self.layout.roots.items())},
            "validation": self.validation,
            "classes": self.layout.mapping(),
            "left_out_folders": self.layout.left_out,
            "renamed": self.renamed,
            "small_images": {"policy": self.small_policy, "files": self.small},
            "unreadable": self.unreadable,
            "duplicates": self.duplicates.as_json() if self.duplicates else None,
            "dedupe_dropped": self.dropped,
            "test_split": self.test_split.as_json() if self.test_split else None,
        }


@dataclass
class PrepareResult:
    competition: Competition
    report: PrepareReport
    unchanged: bool = False  # the output already held this exact competition

    @property
    def skipped(self) -> list[str]:
        """"path: reason" of the unreadable files left out by --skip-bad."""
        return self.report.unreadable


def prepare_competition(
    source: str | Path,
    out: str | Path,
    *,
    test_source: str | Path | None = None,
    class_map: dict[str, list[str]] | None = None,
    validation: ValidationPolicy = "test",
    small: SmallPolicy = "skip",
    dedupe: bool = False,
    test_fraction: float | None = None,
    slug: str | None = None,
    title: str | None = None,
    images_per_class: int = 1000,
    image_size: int = 64,
    public_fraction: float = 0.5,
    submission_kinds: SubmissionKinds = "images",
    seed: int = 0,
    skip_bad: bool = False,
    progress: bool = True,
    workers: int | None = None,
    max_extract_bytes: int = DEFAULT_MAX_EXTRACT_BYTES,
) -> PrepareResult:
    """Prepare a competition directory at `out` from a dataset (see the module docstring for layouts and rules)."""
    out = Path(out).resolve()
    slug = slug or default_slug(out)
    if class_map:
        check_class_names(class_map)
    if test_fraction is not None:
        check_test_fraction(test_fraction)
    with ExitStack() as stack:
        trees = [
            stack.enter_context(open_source(Path(path), out.parent / f".{out.name}.{option[2:]}-{os.getpid()}",
                                            option=option, max_bytes=max_extract_bytes))
            for path, option in ((source, "--source"), (test_source, "--test-source")) if path is not None
        ]
        layout = find_layout(trees[0], trees[1] if test_source else None, validation=validation, class_map=class_map,
                             hold_out=test_fraction is not None)
        images = source_images(layout)
        config = competition_config(
            slug=slug,
            title=title or slug.replace("-", " ").capitalize(),
            classes=layout.classes,
            images_per_class=images_per_class,
            image_size=image_size,
            public_fraction=public_fraction,
            submission_kinds=submission_kinds,
        )
        with CompetitionWriter(out, config) as writer:
            report = PrepareReport(layout=layout, validation=validation, small_policy=small)
            converted = _convert_all(images, image_size, small == "upscale", progress, workers)
            usable = _usable_images(images, converted, report, skip_bad=skip_bad, image_size=image_size)
            if test_fraction is not None:
                usable = _hold_out(usable, report, fraction=test_fraction, seed=seed)
            usable = _audit(usable, report, dedupe=dedupe)
            _require_every_class_filled(images, usable, report)
            report.renamed = {_output_path(image): image.shown for image, _ in usable if _renamed(image)}
            _write_images(writer, usable, seed=seed, public_fraction=public_fraction)
            competition = writer.finish(audit=report.as_json())
            result = PrepareResult(competition=competition, report=report, unchanged=writer.unchanged)
    return result


def default_slug(out: Path) -> str:
    """The output directory's name as a slug (lowercase, dashes): `runs/Face Mask 2026` -> `face-mask-2026`."""
    slug = re.sub(r"[^a-z0-9]+", "-", out.resolve().name.lower()).strip("-")[:63]
    return slug or "competition"


def load_competition_image(path: Path, size: int, *, upscale: bool = False) -> np.ndarray:
    """One source image as uint8 (size, size) grayscale pixels; UnusableImage says why it can't be."""
    gray = decode_grayscale(path)
    _require_size(gray, size, upscale)
    return to_square(gray, size)


def decode_grayscale(path: Path) -> Image.Image:
    """The whole image (first frame), upright by its EXIF orientation, as 8-bit grayscale."""
    try:
        with Image.open(path) as image:
            image.load()  # decode everything now, so truncated files fail here
            return to_grayscale(ImageOps.exif_transpose(image))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UnusableImage(f"not a readable image ({type(exc).__name__}: {exc})") from exc


def _require_size(gray: Image.Image, size: int, upscale: bool) -> None:
    if _is_small(gray, size) and not upscale:
        raise UnusableImage(
            f"{gray.width}x{gray.height} is smaller than the competition size {size}x{size}", small=True
        )


def _is_small(image: Image.Image, size: int) -> bool:
    return image.width < size or image.height < size


def to_square(gray: Image.Image, size: int) -> np.ndarray:
    return np.asarray(gray.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=None))


def to_grayscale(image: Image.Image) -> Image.Image:
    """8-bit grayscale (mode L) of any PIL image; see the module docstring for the rules."""
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
        return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8), mode="L")
    has_alpha = image.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    return image.convert("L")


def convert_image(job: tuple[str, int, bool]) -> Converted:
    """One source file -> its competition PNG and perceptual hash (runs in a worker process)."""
    path, size, upscale = job
    try:
        gray = decode_grayscale(Path(path))
        _require_size(gray, size, upscale)
    except UnusableImage as exc:
        return Converted(problem=str(exc), small=exc.small)
    pixels = to_square(gray, size)
    return Converted(png=encode_png(pixels), phash=perceptual_hash(pixels), small=_is_small(gray, size))


def _convert_all(
    images: list[SourceImage], size: int, upscale: bool, progress: bool, workers: int | None
) -> list[Converted]:
    jobs = [(str(image.path), size, upscale) for image in images]
    workers = workers or min(8, os.cpu_count() or 1)
    bar = {"total": len(jobs), "desc": "Preparing images", "unit": "img", "disable": not progress}
    if workers == 1 or len(jobs) < PROCESS_POOL_MIN_IMAGES:
        return list(tqdm(map(convert_image, jobs), **bar))
    # Processes, not threads: the per-image Python and numpy work (hash, bookkeeping) holds the GIL.
    # spawn, not fork: the caller may hold threads (torch, a server) that a forked child would inherit broken.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(tqdm(pool.map(convert_image, jobs, chunksize=CHUNK_SIZE), **bar))


def _usable_images(
    images: list[SourceImage], converted: list[Converted], report: PrepareReport, *, skip_bad: bool, image_size: int
) -> list[tuple[SourceImage, Converted]]:
    """The images to keep; unreadable and small files are reported, or stop the run."""
    pairs = list(zip(images, converted, strict=True))
    unreadable = [f"{image.shown}: {c.problem}" for image, c in pairs if c.problem and not c.small]
    if unreadable and not skip_bad:
        raise DataPreparationError(
            f"{len(unreadable)} source file(s) cannot be used (unreadable or not an image). Fix: remove or replace "
            "them, or pass --skip-bad to leave them out:",
            unreadable,
        )
    if report.small_policy == "error" and any(c.small for c in converted):
        raise DataPreparationError(
            f"{sum(c.small for c in converted)} source image(s) are smaller than the competition size "
            f"{image_size}x{image_size} (--small error). Fix: pass --small skip to leave them out or --small upscale "
            "to enlarge them:",
            [f"{image.shown}: {c.problem}" for image, c in pairs if c.small],
        )
    report.unreadable = unreadable
    report.small = [image.shown for image, c in pairs if c.small]
    return [(image, c) for image, c in pairs if c.png is not None]


def _audit(
    usable: list[tuple[SourceImage, Converted]], report: PrepareReport, *, dedupe: bool
) -> list[tuple[SourceImage, Converted]]:
    """Find duplicates (into the report); with --dedupe, leave out test images that copy training images."""
    report.duplicates = find_duplicates([
        AuditedImage(_output_path(image), image.part, c.png or b"", c.phash)
        for image, c in usable
    ])
    if not dedupe:
        return usable
    copies = report.duplicates.test_images_copying_train()
    report.dropped = {_output_path(image): image.shown for image, _ in usable if _output_path(image) in copies}
    return [(image, c) for image, c in usable if _output_path(image) not in copies]


def _hold_out(
    usable: list[tuple[SourceImage, Converted]], report: PrepareReport, *, fraction: float, seed: int
) -> list[tuple[SourceImage, Converted]]:
    """--test-fraction: move a seeded share of each class to test, whole near-duplicate groups at a time."""
    duplicates = find_duplicates([AuditedImage(image.shown, "train", c.png or b"", c.phash) for image, c in usable])
    test, report.test_split = choose_test_images({image.shown: image.cls for image, _ in usable}, duplicates,
                                                 fraction=fraction, seed=seed)
    return [(replace(image, part="test") if image.shown in test else image, c) for image, c in usable]


def _output_path(image: SourceImage) -> str:
    return f"{image.part}/{image.cls}/{image.name}"


def _renamed(image: SourceImage) -> bool:
    return image.name != f"{image.path.stem}.png"


def _require_every_class_filled(
    images: list[SourceImage], usable: list[tuple[SourceImage, Converted]], report: PrepareReport
) -> None:
    filled = {(image.part, image.cls) for image, _ in usable}
    empty = sorted({(image.part, image.cls) for image in images} - filled)
    if empty:
        raise DataPreparationError(
            "After leaving out unusable, small (--small skip) and duplicate (--dedupe) images, some classes have no "
            "images left. Fix: add usable images to them, or pass --small upscale to keep small images:",
            [f"{part}/{cls}" for part, cls in empty],
        )


def _write_images(
    writer: CompetitionWriter, usable: list[tuple[SourceImage, Converted]], *, seed: int, public_fraction: float
) -> None:
    test_names: dict[str, list[str]] = defaultdict(list)
    for image, _ in usable:
        if image.part == "test":
            test_names[image.cls].append(image.name)
    public = {
        cls: public_test_names(names, seed=seed, fraction=public_fraction) for cls, names in test_names.items()
    }
    for image, converted in usable:
        split: Split = "train"
        if image.part == "test":
            split = "public" if image.name in public[image.cls] else "private"
        assert converted.png is not None  # usable images are converted
        writer.add(image.part, image.cls, image.name, split, converted.png)
