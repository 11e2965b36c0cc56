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
