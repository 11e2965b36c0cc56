"""`arena data prepare`: turn a dataset clone into a competition directory.

Two source layouts:

    --source DIR                       DIR/train/<class>/*  and  DIR/test/<class>/*
                                       (a clone of Face-Mask-Classification-20000-Dataset has exactly this)
    --source DIR --test-source HELD    DIR/<class>/* are the training images, HELD/<class>/* the held-out ones

Every image is decoded, converted to 8-bit grayscale and resized to the competition size with PIL's bicubic
filter (antialiased when shrinking), then stored as a PNG named after its source file. Generated submissions go
through the same grayscale PNG path, so real and generated images reach the FID network identically.
Grayscale conversion: RGB by PIL's ITU-R 601-2 luma; transparent pixels composited onto white; 16-bit
grayscale scaled to 8 bits (PIL's own `convert('L')` would clip everything above 255 to white); EXIF rotation
applied. Non-square images are stretched to the square size. Hidden files (names starting with a dot) are ignored.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from server.competition import Competition, Split
from server.data.errors import DataPreparationError
from server.data.writer import CompetitionWriter, competition_config, encode_png, public_test_names

PARTS = ("train", "test")
CLASS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


class UnusableImage(Exception):
    """One source file cannot become a competition image; the message says why."""


@dataclass(frozen=True)
class SourceImage:
    path: Path
    part: str  # train | test
    cls: str
    name: str  # output file name: the source file's stem + .png


@dataclass
class PrepareResult:
    competition: Competition
    skipped: list[str] = field(default_factory=list)  # "path: reason" of bad files left out by --skip-bad
    unchanged: bool = False  # the output already held this exact competition


def prepare_competition(
    source: str | Path,
    out: str | Path,
    *,
    test_source: str | Path | None = None,
    slug: str | None = None,
    title: str | None = None,
    images_per_class: int = 1000,
    image_size: int = 64,
    public_fraction: float = 0.5,
    seed: int = 0,
    skip_bad: bool = False,
    progress: bool = True,
    workers: int | None = None,
) -> PrepareResult:
    """Prepare a competition directory at `out` from a dataset tree (see the module docstring for layouts)."""
    out = Path(out)
    images = discover_source_images(Path(source), Path(test_source) if test_source else None)
    classes = sorted({image.cls for image in images})
    slug = slug or default_slug(out)
    config = competition_config(
        slug=slug,
        title=title or slug.replace("-", " ").capitalize(),
        classes=classes,
        images_per_class=images_per_class,
        image_size=image_size,
        public_fraction=public_fraction,
    )
    with CompetitionWriter(out, config) as writer:
        encoded, problems = _encode_all(images, image_size, progress, workers)
        if problems and not skip_bad:
            raise DataPreparationError(
                f"{len(problems)} source image(s) cannot be used (unreadable, not an image, or smaller than "
                f"{image_size}x{image_size}). Fix: remove or replace them, or pass --skip-bad to leave them out:",
                problems,
            )
        _require_every_class_filled(images, encoded)
        _write_images(writer, images, encoded, seed=seed, public_fraction=public_fraction)
        competition = writer.finish()
        return PrepareResult(competition=competition, skipped=problems, unchanged=writer.unchanged)


def default_slug(out: Path) -> str:
    """The output directory's name as a slug (lowercase, dashes): `runs/Face Mask 2026` -> `face-mask-2026`."""
    slug = re.sub(r"[^a-z0-9]+", "-", out.resolve().name.lower()).strip("-")[:63]
    return slug or "competition"


def discover_source_images(source: Path, test_source: Path | None) -> list[SourceImage]:
    """All source files of both parts, sorted; structural problems (missing or mismatched classes) raise."""
    roots = _part_roots(source, test_source)
    folders = {part: _class_folders(root, part) for part, root in roots.items()}
    _require_same_classes(folders, roots)
    images: list[SourceImage] = []
    for part in PARTS:
        for cls, folder in sorted(folders[part].items()):
            images.extend(_images_in(folder, part, cls))
    return images


def _part_roots(source: Path, test_source: Path | None) -> dict[str, Path]:
    if not source.is_dir():
        raise DataPreparationError(f"{source}: the --source directory does not exist. Fix: pass the dataset folder.")
    if test_source is not None:
        if not test_source.is_dir():
            raise DataPreparationError(
                f"{test_source}: the --test-source directory does not exist. Fix: pass the held-out images' folder."
            )
        return {"train": source, "test": test_source}
    missing = [part for part in PARTS if not (source / part).is_dir()]
    if missing:
        raise DataPreparationError(
            f"{source}: no {' and no '.join(f'{part}/' for part in missing)} folder. A source holds train/<class>/ "
            "and test/<class>/ image folders. Fix: point --source at the dataset clone's root, or pass the "
            "training class folders as --source and the held-out ones as --test-source."
        )
    return {part: source / part for part in PARTS}


def _class_folders(root: Path, part: str) -> dict[str, Path]:
    folders = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    if not folders:
        raise DataPreparationError(
            f"{root}: no class folders in the {part} images. Fix: put each class's images in its own folder, "
            f"e.g. {root}/with_mask/ and {root}/without_mask/."
        )
    bad_names = [name for name in folders if not CLASS_NAME.match(name)]
    if bad_names:
        raise DataPreparationError(
            f"{root}: class folder names become submission folder names and may hold only letters, digits, "
            "'_', '-' and '.'. Fix: rename these folders:",
            [str(folders[name]) for name in bad_names],
        )
    return folders


def _require_same_classes(folders: dict[str, dict[str, Path]], roots: dict[str, Path]) -> None:
    problems = []
    for part, other in (("train", "test"), ("test", "train")):
        for cls in sorted(folders[part].keys() - folders[other].keys()):
            problems.append(f"class {cls!r} is in {roots[part]} but missing in {roots[other]}")
    if problems:
        raise DataPreparationError(
            "Training and test images must have the same classes. Fix: add the missing class folders "
            "(with images) or remove the extra ones:",
            problems,
        )


def _images_in(folder: Path, part: str, cls: str) -> list[SourceImage]:
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if not entries:
        raise DataPreparationError(
            f"{folder}: the class folder is empty. Fix: add the {part} images of class {cls!r}, or remove the "
            "class from both parts."
        )
    subfolders = [str(p) for p in entries if not p.is_file()]
    if subfolders:
        raise DataPreparationError(
            f"{folder}: a class folder must hold image files only, not folders. Fix: move these out:", subfolders
        )
    by_name: dict[str, list[Path]] = defaultdict(list)
    for path in entries:
        by_name[f"{path.stem}.png"].append(path)
    clashes = [" and ".join(str(p) for p in paths) for paths in by_name.values() if len(paths) > 1]
    if clashes:
        raise DataPreparationError(
            f"{folder}: files that differ only in their extension would be stored under the same name. "
            "Fix: rename or remove one of each pair:",
            clashes,
        )
    return [SourceImage(path=paths[0], part=part, cls=cls, name=name) for name, paths in sorted(by_name.items())]


def load_competition_image(path: Path, size: int) -> np.ndarray:
    """Decode one source image into uint8 (size, size) grayscale pixels; UnusableImage says why it can't."""
    try:
        with Image.open(path) as image:
            image.load()  # decode everything now, so truncated files fail here
            if image.width < size or image.height < size:
                raise UnusableImage(
                    f"{image.width}x{image.height} is smaller than the competition size {size}x{size}"
                )
            gray = to_grayscale(ImageOps.exif_transpose(image))
    except UnusableImage:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UnusableImage(f"not a readable image ({type(exc).__name__}: {exc})") from exc
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


def _encode_all(
    images: list[SourceImage], size: int, progress: bool, workers: int | None
) -> tuple[dict[Path, bytes], list[str]]:
    """Competition PNG bytes of every usable image, and a 'path: reason' line for each unusable one (in order)."""

    def encode(image: SourceImage) -> bytes | str:
        try:
            return encode_png(load_competition_image(image.path, size))
        except UnusableImage as exc:
            return f"{image.path}: {exc}"

    # PIL and zlib release the GIL while decoding, resizing and compressing, so threads use every core.
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        jobs = pool.map(encode, images)
        results = list(tqdm(jobs, total=len(images), desc="Preparing images", unit="img", disable=not progress))
    encoded = {image.path: result for image, result in zip(images, results, strict=True) if isinstance(result, bytes)}
    return encoded, [result for result in results if isinstance(result, str)]


def _require_every_class_filled(images: list[SourceImage], encoded: dict[Path, bytes]) -> None:
    usable = {(image.part, image.cls) for image in images if image.path in encoded}
    empty = sorted({(image.part, image.cls) for image in images} - usable)
    if empty:
        raise DataPreparationError(
            "After leaving out the unusable images, some class folders have no images left. "
            "Fix: add usable images to them:",
            [f"{part}/{cls}" for part, cls in empty],
        )


def _write_images(
    writer: CompetitionWriter,
    images: list[SourceImage],
    encoded: dict[Path, bytes],
    *,
    seed: int,
    public_fraction: float,
) -> None:
    usable = [image for image in images if image.path in encoded]
    test_names: dict[str, list[str]] = defaultdict(list)
    for image in usable:
        if image.part == "test":
            test_names[image.cls].append(image.name)
    public = {
        cls: public_test_names(names, seed=seed, fraction=public_fraction) for cls, names in test_names.items()
    }
    for image in usable:
        split: Split = "train"
        if image.part == "test":
            split = "public" if image.name in public[image.cls] else "private"
        writer.add(image.part, image.cls, image.name, split, encoded[image.path])
