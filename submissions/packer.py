"""Write a canonical submission zip: `<class>/<index:05d>.png`, sorted, byte-for-byte deterministic.

Every image is re-encoded as an 8-bit grayscale PNG and stored (PNG data does not compress further) with fixed
timestamps and attributes, so identical images always give an identical zip and an identical sha256.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image
from tqdm import tqdm

from submissions.atomic import write_atomically
from submissions.folders import read_class_folders
from submissions.report import PackError
from submissions.spec import SubmissionSpec

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can record
REGULAR_FILE_644 = 0o100644 << 16
UNIX = 3


def pack(source: str | Path | Mapping[str, Any], out: str | Path | BinaryIO,
         spec_or_classes: SubmissionSpec | Sequence[str], *, progress: bool = False) -> Path | None:
    """Pack a folder with one subfolder per class, uint8 arrays (N, H, W) or tensors in [-1, 1] (N, 1, H, W).

    Returns the path written, or None when `out` is a stream.
    """
    classes = list(spec_or_classes.classes if isinstance(spec_or_classes, SubmissionSpec) else spec_or_classes)
    if isinstance(source, str | Path):
        images = read_class_folders(source, classes)
    else:
        images = {cls: _as_uint8(cls, value) for cls, value in source.items()}
    _check(images, classes, spec_or_classes if isinstance(spec_or_classes, SubmissionSpec) else None)
    if not isinstance(out, str | Path):
        _write_zip(images, classes, out, progress)
        return None
    out = Path(out)

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as stream:
            _write_zip(images, classes, stream, progress)

    write_atomically(out, write)  # never a half-written zip under the real name
    return out


def _as_uint8(cls: str, value: Any) -> np.ndarray:
    if type(value).__module__.startswith("torch"):
        value = _tensor_to_uint8(value)
    array = np.asarray(value)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3:
        raise PackError(f"class {cls}: expected images shaped (N, H, W) or (N, 1, H, W), got {array.shape}")
    if array.dtype != np.uint8:
        raise PackError(f"class {cls}: expected uint8 arrays, got {array.dtype}; pass float images as a torch "
                        "tensor in [-1, 1], or convert with ((x + 1) * 127.5).round().astype(np.uint8)")
    return array


def _tensor_to_uint8(tensor: Any) -> np.ndarray:
    """[-1, 1] -> uint8 with the rounding of torchvision's save_image(normalize=True, value_range=(-1, 1))."""
    import torch

    if not torch.is_floating_point(tensor):
        raise PackError(f"expected a float tensor in [-1, 1], got {tensor.dtype}")
    scaled = (tensor.detach().float().cpu().clamp(-1, 1) + 1) * 127.5 + 0.5
    return scaled.clamp(0, 255).to(torch.uint8).numpy()


def _check(images: dict[str, np.ndarray], classes: list[str], spec: SubmissionSpec | None) -> None:
    if set(images) != set(classes):
        raise PackError(f"classes {sorted(images)} given, the competition has {sorted(classes)}")
    if spec is None:
        return
    for cls in classes:
        count, height, width = images[cls].shape
        if count != spec.images_per_class:
            raise PackError(f"class {cls}: {count} images, the competition wants {spec.images_per_class}")
        if (height, width) != (spec.image_size, spec.image_size):
            raise PackError(f"class {cls}: images are {width}x{height}, the competition wants "
                            f"{spec.image_size}x{spec.image_size}")


def encode_png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_zip(images: dict[str, np.ndarray], classes: list[str], stream: BinaryIO, progress: bool) -> None:
    total = sum(len(images[cls]) for cls in classes)
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_STORED) as archive, \
            tqdm(total=total, desc="packing", unit="img", disable=not progress) as bar:
        for cls in sorted(classes):
            for index, image in enumerate(images[cls]):
                info = zipfile.ZipInfo(f"{cls}/{index:05d}.png", date_time=FIXED_DATE_TIME)
                info.external_attr = REGULAR_FILE_644
                info.create_system = UNIX
                archive.writestr(info, encode_png(image), compress_type=zipfile.ZIP_STORED)
                bar.update()
