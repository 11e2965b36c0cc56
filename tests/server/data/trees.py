"""Small source trees for `arena data prepare` tests, laid out like the Face-Mask-Classification-20000-Dataset clone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("with_mask", "without_mask")


def write_image(path: Path, size: int = 80, *, mode: str = "L", seed: int = 0) -> Path:
    """A random image of the given PIL mode (L, RGB, RGBA, I;16) written as PNG."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        Image.fromarray(rng.integers(0, 65536, (size, size), dtype=np.uint16)).save(path)
    else:
        channels = len(Image.new(mode, (1, 1)).getbands())
        pixels = rng.integers(0, 256, (size, size, channels), dtype=np.uint8)
        Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode=mode).save(path)
    return path


def make_tree(root: Path, train: int = 4, test: int = 6, size: int = 80, classes=CLASSES) -> Path:
    """root/train/<class>/*.png and root/test/<class>/*.png, like the Face-Mask-Classification clone."""
    for c, cls in enumerate(classes):
        for part, count in (("train", train), ("test", test)):
            for i in range(count):
                write_image(root / part / cls / f"{cls}-{part}-{i:03d}.png", size, seed=c * 1000 + i + 100 * len(part))
    return root


def make_messy_tree(root: Path, train: int = 4, test: int = 3, validation: int = 2, size: int = 80) -> Path:
    """A download like Kaggle's "Face Mask 12K": a wrapper folder, Train/ Test/ Validation/, CamelCase classes.

    Test/ and Validation/ reuse file names (they collide once validation joins test), and train/WithMask holds
    a `10.jpg` next to a `10.png` (a different picture).
    """
    base = root / "Face Mask Dataset"
    for c, cls in enumerate(("WithMask", "WithoutMask")):
        for s, (split, count) in enumerate((("Train", train), ("Test", test), ("Validation", validation))):
            for i in range(count):
                write_image(base / split / cls / f"{i}.png", size, seed=10_000 * c + 1000 * s + i)
    Image.open(write_image(root / "jpeg-source.png", size, mode="RGB", seed=77)).save(
        base / "Train" / "WithMask" / "10.jpg"
    )
    (root / "jpeg-source.png").unlink()
    write_image(base / "Train" / "WithMask" / "10.png", size, seed=78)
    return root


def write_smooth_image(path: Path, size: int = 96, *, seed: int = 0) -> Path:
    """A smooth random picture (bicubic-enlarged 8x8 noise): it survives re-encoding like a photo does."""
    coarse = np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC).save(path)
    return path
