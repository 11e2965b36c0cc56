"""Files under the data dir: content-addressed uploads and per-class sample grids.

    {data_dir}/uploads/ab/abcdef....zip      an accepted zip, named by its sha256 (identical bytes stored once)
    {data_dir}/uploads/ab/abcdef....onnx     an accepted model (issue 18), named the same way
    {data_dir}/uploads/ab/abcdef....samples.zip   the images the worker sampled from that model (kept, so
                                             rescoring scores the same images; its seed: jobs/model_entries.py)
    {data_dir}/uploads/incoming/             partial uploads while they are hashed and validated
    {data_dir}/grids/<submission id>/<class>.png   8x8 sample grid the web pages show
    {data_dir}/secrets/sampling-salt         the server's secret for model sampling seeds (0600, made once)
    {data_dir}/secrets/admin-token, session-key   `arena serve --demo`'s organizer token and cookie key (0600, made
                                             once, so a restart neither prints a new token nor signs anyone out)
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from server.errors import NotFound, UploadTooLarge

CHUNK = 1024 * 1024
GRID_SIDE = 8


def file_sha256(path: Path) -> str:
    """A file's sha256, read in chunks (reference files are hundreds of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def uploads_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "uploads"


def upload_path(data_dir: Path, sha256: str, suffix: str = ".zip") -> Path:
    return uploads_dir(data_dir) / sha256[:2] / f"{sha256}{suffix}"


def model_path(data_dir: Path, sha256: str) -> Path:
    return upload_path(data_dir, sha256, ".onnx")


def sampled_zip_path(data_dir: Path, sha256: str) -> Path:
    return upload_path(data_dir, sha256, ".samples.zip")


def receive_upload(data_dir: Path, source: BinaryIO, *, max_bytes: int) -> tuple[Path, str, int]:
    """Copy an upload to a temporary file under the data dir while hashing it; 413 past `max_bytes`.

    Returns (temporary path, sha256, size). The caller moves it into place with `store_upload` once it is valid,
    or deletes it.
    """
    incoming = uploads_dir(data_dir) / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    handle, name = tempfile.mkstemp(dir=incoming, suffix=".zip")
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(
                        f"The upload is larger than the limit of {max_bytes:,} bytes. A valid submission is far "
                        "smaller: check that the zip holds only PNG images (see `arena submission check`).",
                        detail={"max_bytes": max_bytes},
                    )
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, digest.hexdigest(), size


def store_upload(data_dir: Path, temporary: Path, sha256: str, suffix: str = ".zip") -> Path:
    """Move a validated upload to its content address (keeping an identical file already there)."""
    target = upload_path(data_dir, sha256, suffix)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        temporary.unlink(missing_ok=True)
    else:
        shutil.move(temporary, target)
    return target


def grid_path(data_dir: Path, submission_id: int, cls: str) -> Path:
    return Path(data_dir) / "grids" / str(submission_id) / f"{cls}.png"


def sample_grid_file(data_dir: Path, submission_id: int, cls: str, classes: list[str]) -> Path:
    """The stored sample grid of one of the competition's classes (the API's and the page's one check, after the
    submission's own visibility check); NotFound for any other name or before scoring."""
    path = grid_path(data_dir, submission_id, cls)
    if cls not in classes or not path.is_file():
        raise NotFound(f"No sample grid for class '{cls}' of submission {submission_id} (written after scoring).")
    return path


def evidence_path(data_dir: Path, submission_id: int, cls: str, image: int) -> Path:
    """One generated image kept as memorization evidence (it is shown next to its nearest real image)."""
    return Path(data_dir) / "grids" / str(submission_id) / "evidence" / cls / f"{image:05d}.png"


def write_evidence_images(data_dir: Path, submission_id: int, cls: str, images: np.ndarray, indices) -> None:
    """Save the generated images the scorer named as closest to real ones (indices into the class's images)."""
    for image in sorted(set(indices)):
        path = evidence_path(data_dir, submission_id, cls, image)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[image], mode="L").save(path)


def write_sample_grid(path: Path, images: np.ndarray, side: int = GRID_SIDE) -> Path:
    """Tile the first side*side images (N, H, W uint8) into one PNG, up to `side` per row; empty cells are black."""
    count, height, width = images.shape
    shown = min(count, side * side)
    # Only the rows and columns that hold images: a small test competition gets no black band.
    cols, rows = max(1, min(shown, side)), max(1, -(-shown // side))
    grid = np.zeros((rows * height, cols * width), dtype=np.uint8)
    for index in range(shown):
        row, col = divmod(index, side)
        grid[row * height : (row + 1) * height, col * width : (col + 1) * width] = images[index]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid, mode="L").save(path)
    return path


def kept_secret(data_dir: Path, name: str) -> str:
    """`{data_dir}/secrets/<name>`: a random secret made once with 0600 permissions and kept across restarts.

    Processes sharing a data dir may race to make it: each writes a complete private file and links it in place; the
    link fails when another was first, and everyone then reads that one, so no two processes ever disagree."""
    path = Path(data_dir) / "secrets" / name
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fresh = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(32))
        try:
            os.link(fresh, path)
        except FileExistsError:
            pass
        finally:
            fresh.unlink()
    return path.read_text().strip()
