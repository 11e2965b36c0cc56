"""The CPU engine: pytorch-fid's own InceptionV3 module exported to ONNX once, run by ONNX Runtime.

On CPU, ONNX Runtime's fused convolutions run the FID network about 1.6x as fast as eager PyTorch (2 x 1,000 warm
scoring on 2 AVX-512 cores: 110 s against 176 s) with pool3 features within ~2e-5 of it (docs/BENCHMARKS.md). The
graph is exported from the very module the torch engine runs, resize to 299 and [-1, 1] normalization included, so
both engines take the same [0, 1] float input.

The export is written next to the weights (`<weights>.pool3.onnx`) with a JSON sidecar recording the weights'
sha256, the export format version and the export's own sha256. A missing, stale (other weights, other format) or
corrupt (hash mismatch, unloadable) export is rebuilt, never used; a fresh export is checked against the torch
network before it is kept.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from server.scoring.network import load_pool3_inception
from server.scoring.weights import file_sha256, fingerprint_input
from submissions.atomic import write_atomically

Engine = Literal["auto", "torch", "onnxruntime"]
ENGINES: tuple[Engine, ...] = ("auto", "torch", "onnxruntime")
# Bump when the exported graph changes (opset, input layout, wrapper): every cached export is rebuilt.
EXPORT_VERSION = "pytorch-fid-0.3.0-pool3-opset17-v1"
ONNX_OPSET = 17
# A fresh export must reproduce the torch network's pool3 features on fixed inputs to this max abs difference
# (measured: ~2e-5 with the real weights; graph fusions reorder float sums).
EXPORT_TOLERANCE = 1e-4
ExportState = Literal["current", "missing", "stale", "corrupt"]
log = logging.getLogger(__name__)


class EngineUnavailableError(RuntimeError):
    """The requested engine cannot run here; the message names the fix."""


def onnxruntime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def resolve_engine(engine: Engine, device: str) -> Literal["torch", "onnxruntime"]:
    """auto: torch on CUDA, ONNX Runtime on CPU when installed (torch otherwise)."""
    if engine == "auto":
        return "onnxruntime" if device == "cpu" and onnxruntime_installed() else "torch"
    if engine == "onnxruntime":
        if device != "cpu":
            raise EngineUnavailableError(
                f"engine 'onnxruntime' runs on CPU but the device is {device!r}; use --engine torch on CUDA "
                "(ARENA_FID_ENGINE=torch) or --device cpu")
        if not onnxruntime_installed():
            raise EngineUnavailableError(
                "engine 'onnxruntime' requested but onnxruntime is not installed; `pip install onnxruntime onnx` "
                "(both are fid-arena dependencies) or use --engine torch")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    return "torch" if engine == "torch" else "onnxruntime"


def export_path(weights: Path) -> Path:
    return weights.with_name(weights.name + ".pool3.onnx")


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def expected_record(weights_sha256: str) -> dict:
    return {"weights_sha256": weights_sha256, "export_version": EXPORT_VERSION}


def export_state(path: Path, weights_sha256: str) -> ExportState:
    """Is the export at `path` usable for these weights? Reads the sidecar and hashes the file (never builds)."""
    if not path.is_file() or not _sidecar(path).is_file():
        return "missing"
    try:
        record = json.loads(_sidecar(path).read_text())
        if {k: record.get(k) for k in ("weights_sha256", "export_version")} != expected_record(weights_sha256):
            return "stale"
        return "current" if record.get("onnx_sha256") == file_sha256(path) else "corrupt"
    except (OSError, ValueError, AttributeError):
        return "corrupt"


def pool3_module(weights: Path):
    """pytorch-fid's InceptionV3([pool3]) returning (N, 2048) instead of a list of (N, 2048, 1, 1)."""
    import torch

    class Pool3(torch.nn.Module):
        def __init__(self, inception):
            super().__init__()
            self.inception = inception

        def forward(self, images):
            return self.inception(images)[0].flatten(1)

    return Pool3(load_pool3_inception(weights)).eval()


def fixed_inputs() -> np.ndarray:
    """Float [0, 1] (4, 3, 64, 64): the fingerprint image and three seeded noise images (same everywhere)."""
    noise = np.random.default_rng(0).integers(0, 256, size=(3, 64, 64), dtype=np.uint8)
    gray = np.concatenate([fingerprint_input(), noise]).astype(np.float32) / 255
    return np.repeat(gray[:, None], 3, axis=1)


def export_onnx(weights: Path, weights_sha256: str, destination: Path | None = None) -> Path:
    """Export pytorch-fid's module built from `weights`, check it against torch, then publish it atomically."""
    import torch

    destination = destination or export_path(weights)
    model = pool3_module(weights)

    def write(temporary: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(model, (torch.from_numpy(fixed_inputs()),), str(temporary), dynamo=False,
                              opset_version=ONNX_OPSET, input_names=["images"], output_names=["pool3"],
                              dynamic_axes={"images": {0: "n", 2: "height", 3: "width"}, "pool3": {0: "n"}})
        difference = difference_to_torch(temporary, model)
        if difference > EXPORT_TOLERANCE:
            raise RuntimeError(f"ONNX export of {weights} differs from the torch network by {difference:.3g} "
                               f"(limit {EXPORT_TOLERANCE:g}); keep --engine torch and report this")

    try:
        write_atomically(destination, write)
        record = {**expected_record(weights_sha256), "onnx_sha256": file_sha256(destination)}
        write_atomically(_sidecar(destination), lambda temporary: temporary.write_text(json.dumps(record, indent=1)))
    except PermissionError as exc:
        raise EngineUnavailableError(
            f"cannot write the ONNX export next to the weights ({destination}: {exc}); point ARENA_FID_WEIGHTS at "
            "a copy in a writable folder, or use --engine torch") from exc
    return destination


def difference_to_torch(path: Path, model) -> float:
    """Max abs pool3 difference between the export at `path` and the torch module on fixed_inputs()."""
    import torch

    inputs = fixed_inputs()
    with torch.inference_mode():
        expected = model(torch.from_numpy(inputs)).numpy()
    return float(np.abs(OnnxPool3(path)(inputs) - expected).max())


def verify_export(weights: Path, weights_sha256: str) -> tuple[Path, float]:
    """`arena weights verify`: the current export (built if needed) against the torch network."""
    path = ensure_export(weights, weights_sha256)
    return path, difference_to_torch(path, pool3_module(weights))


def ensure_export(weights: Path, weights_sha256: str) -> Path:
    """The current export for these weights, (re)built when missing, stale or corrupt."""
    path = export_path(weights)
    state = export_state(path, weights_sha256)
    if state != "current":
        log.info("ONNX export %s is %s; exporting from %s", path, state, weights)
        export_onnx(weights, weights_sha256, path)
    return path


@dataclass
class OnnxPool3:
    """An ONNX Runtime CPU session of the exported network: float32 (N, 3, H, W) in [0, 1] -> float32 (N, 2048)."""

    path: Path
    threads: int = 0  # 0: ONNX Runtime's default (one per physical core)

    def __post_init__(self) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"images": np.ascontiguousarray(images, dtype=np.float32)})[0]
