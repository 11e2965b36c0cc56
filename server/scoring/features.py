"""Pool3 features exactly as pytorch-fid computes them, with the model loaded once and PNGs decoded in parallel.

pytorch-fid's pipeline: `Image.open(p).convert('RGB')` -> `ToTensor()` (uint8 / 255 as float32) ->
`InceptionV3([3])` (bilinear resize to 299, align_corners=False; 2x - 1) -> 2048-d pool3. We feed the same
tensors to the same module, then return float64 so every statistic downstream is float64.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

# FEATURE_DIMS and PREPROCESSING_VERSION (bump it when anything between the PNG bytes and the features changes: it
# invalidates every reference cache) live with the reference metadata the web tier checks (server/competition_dir.py).
from server.competition_dir import FEATURE_DIMS
from server.scoring.onnx_engine import Engine, OnnxPool3, ensure_export, resolve_engine
from server.scoring.weights import WeightsInfo, resolve_weights

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["exact", "tf32", "fp16"]


def resolve_device(device: Device) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device; use --device cpu or auto")
    return device


def default_batch_size(device: str, engine: str = "torch") -> int:
    """Batches sized to the device: large on a GPU (memory scales with it), moderate on CPU (cache, peak RSS).

    ONNX Runtime runs batches of 16 as fast as batches of 50 (within 10%, docs/BENCHMARKS.md) at half the peak RSS
    (1.2 vs 2.2 GB: the 299x299 activations scale with the batch); eager torch is ~40% slower at 16 than at 50.
    """
    import torch

    if device.startswith("cuda"):
        total_gib = torch.cuda.get_device_properties(torch.device(device)).total_memory / 2**30
        return 500 if total_gib >= 40 else 200 if total_gib >= 16 else 50
    return 16 if engine == "onnxruntime" else 50


def decode_png(path: Path) -> np.ndarray:
    """One file as pytorch-fid reads it: RGB uint8 (H, W, 3)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def stack_same_size(images: list[np.ndarray], paths: Sequence[Path]) -> np.ndarray:
    shapes = sorted({image.shape for image in images})
    if len(shapes) > 1:
        raise ValueError(f"images differ in size {shapes} (first file {paths[0]}); one batch needs one size, as "
                         "in pytorch-fid: resize them to the competition's size (arena data prepare does)")
    return np.stack(images)


class FeatureExtractor:
    """pytorch-fid's InceptionV3 pool3 features, loaded lazily once, reusable for any number of image sets.

    `features_of_files(paths)` and `features_of_arrays(uint8 (N,H,W) or (N,H,W,3))` return float64 (N, 2048).
    precision: "exact" (fp32, TF32 off, deterministic cuDNN; default), "tf32", or "fp16" (CUDA, channels-last).
    engine: "torch" (eager pytorch-fid), "onnxruntime" (the same module exported to ONNX, CPU only) or "auto"
    (onnxruntime on CPU when installed, torch otherwise).
    """

    def __init__(
        self,
        device: Device = "auto",
        precision: Precision = "exact",
        weights_path: str | Path | None = None,
        batch_size: int | None = None,
        decode_threads: int | None = None,
        allow_download: bool = True,
        engine: Engine = "auto",
    ):
        self.device = resolve_device(device)
        if precision == "fp16" and self.device == "cpu":
            raise ValueError("precision 'fp16' needs a CUDA device; use 'exact' on CPU")
        self.engine = resolve_engine(engine, self.device)
        self.precision = precision
        self.batch_size = batch_size or default_batch_size(self.device, self.engine)
        self.decode_threads = decode_threads or min(16, os.cpu_count() or 1)
        self._weights_path = weights_path
        self._allow_download = allow_download
        self._weights: WeightsInfo | None = None
        self._model: Any = None  # a torch module or an OnnxPool3, loaded on first use
        self.timings: dict[str, float] = {"decode": 0.0, "features": 0.0}

    @property
    def weights(self) -> WeightsInfo:
        if self._weights is None:
            self._weights = resolve_weights(self._weights_path, allow_download=self._allow_download)
        return self._weights

    @property
    def weights_sha256(self) -> str:
        return self.weights.sha256

    @property
    def model_path(self) -> Path:
        """The file the engine runs: the weights (torch) or their ONNX export, (re)built when not current."""
        if self.engine == "onnxruntime":
            return ensure_export(self.weights.path, self.weights_sha256)
        return self.weights.path

    @property
    def model(self):
        if self._model is None:
            self._model = self._load_onnx() if self.engine == "onnxruntime" else self._load_torch()
        return self._model

    def _load_onnx(self) -> OnnxPool3:
        import torch

        return OnnxPool3(self.model_path, threads=torch.get_num_threads())

    def _load_torch(self):
        import torch

        from server.scoring.network import load_pool3_inception

        model = load_pool3_inception(self.weights.path).to(self.device)
        if self.precision == "fp16":
            model = model.half()
        if self._channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    @property
    def _channels_last(self) -> bool:
        """fp16 on CUDA runs faster channels-last (tensor cores). On CPU the scorer's features came out bit-identical
        channels-last and contiguous (the same oneDNN kernels) with no measurable gain, so CPU stays contiguous."""
        return self.precision == "fp16"

    def _set_precision_flags(self) -> None:
        import torch

        fast = self.precision != "exact"
        torch.backends.cudnn.allow_tf32 = fast
        torch.backends.cuda.matmul.allow_tf32 = fast
        torch.backends.cudnn.deterministic = not fast
        torch.backends.cudnn.benchmark = fast

    def features_of_tensor(self, batch) -> np.ndarray:
        """Features of a float (N, 3, H, W) tensor in [0, 1], in batches; float64 (N, 2048)."""
        import torch

        self._set_precision_flags()
        model = self.model
        out = []
        with torch.inference_mode():
            for start in range(0, len(batch), self.batch_size):
                chunk = batch[start : start + self.batch_size]
                if self.engine == "onnxruntime":
                    out.append(torch.from_numpy(model(chunk.numpy())).double())
                    continue
                chunk = chunk.to(self.device, non_blocking=True)
                if self.precision == "fp16":
                    chunk = chunk.half()
                if self._channels_last:
                    chunk = chunk.contiguous(memory_format=torch.channels_last)
                pool3 = model(chunk)[0]
                out.append(pool3.reshape(len(chunk), FEATURE_DIMS).double().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, FEATURE_DIMS))

    def _features_of_uint8(self, images: np.ndarray) -> np.ndarray:
        import torch

        started = time.perf_counter()
        rgb = images if images.ndim == 4 else np.repeat(images[..., None], 3, axis=-1)  # convert('RGB') of L
        # ToTensor: HWC uint8 -> CHW float32 / 255
        batch = torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).float().div(255)
        self.timings["decode"] += time.perf_counter() - started
        started = time.perf_counter()
        features = self.features_of_tensor(batch)
        self._synchronize()
        self.timings["features"] += time.perf_counter() - started
        return features

    def _synchronize(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def features_of_arrays(self, images: np.ndarray, progress: bool = False, label: str = "") -> np.ndarray:
        """uint8 (N, H, W) grayscale or (N, H, W, 3) RGB -> float64 (N, 2048)."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise ValueError(f"expected uint8 images (N, H, W) or (N, H, W, 3), got {images.dtype} {images.shape}")
        chunks = [images[i : i + self.batch_size] for i in range(0, len(images), self.batch_size)]
        return self._collect((self._features_of_uint8(c) for c in chunks), len(images), progress, label)

    def features_of_files(self, paths: Sequence[Path], progress: bool = False, label: str = "",
                          on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """PNG files -> float64 (N, 2048); decoding of the next batch overlaps the network on this one.
        on_batch(images) after each batch: how a worker reports a reference build's progress to the console."""
        batches = [list(paths[i : i + self.batch_size]) for i in range(0, len(paths), self.batch_size)]
        return self._collect(
            (self._features_of_uint8(images) for images in self._decoded(batches)), len(paths), progress, label,
            on_batch,
        )

    def _decoded(self, batches: list[list[Path]]) -> Iterator[np.ndarray]:
        """Decoded batches in order; a single prefetch thread decodes batch k+1 (with the decoder pool) meanwhile."""
        with ThreadPoolExecutor(self.decode_threads) as decoders, ThreadPoolExecutor(1) as prefetch:

            def decode(paths: list[Path]) -> np.ndarray:
                return stack_same_size(list(decoders.map(decode_png, paths)), paths)

            pending = [prefetch.submit(decode, batch) for batch in batches[:1]]
            for index in range(len(batches)):
                started = time.perf_counter()
                images = pending.pop().result()
                self.timings["decode"] += time.perf_counter() - started
                pending += [prefetch.submit(decode, batch) for batch in batches[index + 1 : index + 2]]
                yield images

    @staticmethod
    def _collect(parts: Iterator[np.ndarray], total: int, progress: bool, label: str,
                 on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        from tqdm import tqdm

        out = []
        with tqdm(total=total, desc=label or "features", unit="img", disable=not progress, leave=False) as bar:
            for features in parts:
                out.append(features)
                bar.update(len(features))
                if on_batch is not None:
                    on_batch(len(features))
        return np.concatenate(out) if out else np.zeros((0, FEATURE_DIMS))

