"""Tiny competition directories for tests: a few images per class, valid config and manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from server.competition_dir import Competition, CompetitionConfig, Manifest, ManifestEntry, write_config, write_manifest

CLASSES = ("with_mask", "without_mask")


def random_images(n: int, size: int = 64, *, seed: int = 0, brightness: int = 128) -> np.ndarray:
    """n uint8 grayscale images (n, size, size): smooth blobs around a class brightness, reproducible per seed."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(brightness, 40, size=(n, 8, 8)).clip(0, 255).astype(np.uint8)
    return np.stack([np.asarray(Image.fromarray(c).resize((size, size), Image.BICUBIC)) for c in coarse])


def make_competition(
    root: Path,
    *,
    classes: tuple[str, ...] = CLASSES,
    train_per_class: int = 8,
    test_per_class: int = 8,
    images_per_class: int = 8,
    image_size: int = 64,
    seed: int = 0,
    **config: object,
) -> Competition:
    """Write a competition directory whose classes differ in brightness; public/private alternate in test."""
    images = {}
    for index, cls in enumerate(classes):
        brightness = 80 + 100 * index // max(1, len(classes) - 1)
        images[cls] = {part: random_images(count, image_size, seed=seed * 1000 + index * 10 + len(part),
                                           brightness=brightness)
                       for part, count in (("train", train_per_class), ("test", test_per_class))}
    return competition_of_images(root, images, images_per_class=images_per_class, image_size=image_size, **config)


def competition_of_images(
    root: Path, images: dict[str, dict[str, np.ndarray]], *, images_per_class: int = 8, image_size: int = 64,
    **config: object,
) -> Competition:
    """Write a competition directory from given uint8 images per class and part (train, test); public/private
    alternate in test."""
    root = Path(root)
    classes = tuple(images)
    entries: list[ManifestEntry] = []
    for cls in classes:
        for part in ("train", "test"):
            for i, image in enumerate(images[cls][part]):
                rel = f"{part}/{cls}/{i:05d}.png"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image, mode="L").save(root / rel)
                split = "train" if part == "train" else ("public" if i % 2 == 0 else "private")
                digest = hashlib.sha256((root / rel).read_bytes()).hexdigest()
                entries.append(ManifestEntry(path=rel, cls=cls, split=split, sha256=digest))
    settings = {"slug": "test-comp", "title": "Test competition", **config}
    write_config(root, CompetitionConfig(classes=list(classes), images_per_class=images_per_class,
                                         image_size=image_size, **settings))  # type: ignore[arg-type]
    write_manifest(root, Manifest.build(entries))
    return Competition.load(root)
