"""Training images: from a competition directory's `train/` part only, or from any tree of class folders.

Everything is decoded once into one uint8 tensor (18,000 64x64 images are 74 MB), so a training step is an index
into memory rather than a PNG decode; batches become [-1, 1] float tensors on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from server.competition_dir import CONFIG_FILE, Competition

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
IMAGE_SIZE = 64


@dataclass
class TrainingData:
    images: torch.Tensor  # uint8 (N, H, W)
    labels: torch.Tensor  # int64 (N,), index into classes
    classes: list[str]
    competition_root: Path | None = None  # set when read from a competition directory

    def __len__(self) -> int:
        return len(self.labels)

    def of_class(self, index: int) -> torch.Tensor:
        return self.images[self.labels == index]

    def subset(self, keep: torch.Tensor) -> TrainingData:
        return TrainingData(self.images[keep], self.labels[keep], self.classes, self.competition_root)


def class_files(root: Path) -> tuple[list[str], dict[str, list[Path]]]:
    """Classes and image files under `root`: a competition's train split, or sorted class folders."""
    if (root / CONFIG_FILE).is_file():
        competition = Competition.load(root)
        return competition.classes, {cls: competition.train_files(cls) for cls in competition.classes}
    if (root / "train").is_dir():  # a dataset clone: train/<class>/, test/<class>/ -- the test part stays unseen
        root = root / "train"
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    files = {f.name: sorted(p for p in f.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) for f in folders}
    files = {cls: paths for cls, paths in files.items() if paths}
    if not files:
        raise FileNotFoundError(
            f"{root}: no training images found. Pass a competition directory (with {CONFIG_FILE}) or a folder "
            "holding one subfolder of images per class (e.g. train/with_mask/*.png)."
        )
    return list(files), files


def read_image(path: Path, size: int = IMAGE_SIZE) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image = image.convert("L")
            if image.size != (size, size):
                image = image.resize((size, size), Image.BICUBIC)  # PIL's bicubic antialiases when shrinking
            return np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc}); remove or replace the file.") from exc


def load_training_data(path: str | Path, size: int = IMAGE_SIZE) -> TrainingData:
    root = Path(path)
    classes, files = class_files(root)
    images, labels = [], []
    total = sum(len(paths) for paths in files.values())
    with tqdm(total=total, desc="loading images", unit="img", leave=False) as progress:
        for index, cls in enumerate(classes):
            for file in files[cls]:
                images.append(read_image(file, size))
                labels.append(index)
                progress.update()
    competition_root = root if (root / CONFIG_FILE).is_file() else None
    return TrainingData(torch.from_numpy(np.stack(images)), torch.tensor(labels), classes, competition_root)


def split_holdout(data: TrainingData, per_class: int) -> tuple[TrainingData, dict[str, np.ndarray]]:
    """Set aside `per_class` training images per class (never trained on) as the periodic FID's reference.

    The choice is fixed (seed 0), independent of the run's seed, so runs with different seeds train on the same set.
    At most a tenth of a class is held out, so tiny datasets keep their images (and skip the FID).
    """
    generator = torch.Generator().manual_seed(0)
    keep = torch.ones(len(data), dtype=torch.bool)
    holdout: dict[str, np.ndarray] = {}
    for index, cls in enumerate(data.classes):
        members = torch.nonzero(data.labels == index).flatten()
        count = min(per_class, len(members) // 10)
        if count < 2:
            continue
        chosen = members[torch.randperm(len(members), generator=generator)[:count]]
        keep[chosen] = False
        holdout[cls] = data.images[chosen].numpy()
    return data.subset(keep), holdout


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) -> float (N, 1, H, W) in [-1, 1]."""
    return images.unsqueeze(1).float().div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (N, 1, H, W) in [-1, 1] -> uint8 (N, H, W)."""
    return images.squeeze(1).add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
