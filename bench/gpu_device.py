"""bench/gpu.py's device side, which stands alone: the device to run on (the trainer's rule), its precisions and
AMP modes, torch's process-wide flags, timing with CUDA synchronisation, and the FLOP floor's inputs (FLOPs per
Inception image, the device's dense peak from its data sheet or a measured matrix product)."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

PRECISIONS = ("exact", "tf32", "fp16")
# FLOPs per image of pytorch-fid's InceptionV3 up to pool3 at 299 x 299: 11.42 G, all in its 94 convolutions,
# as torch.utils.flop_counter.FlopCounterMode counts them (2 FLOPs per multiply-add; tests/bench/test_bench_gpu.py
# recounts).
# torchvision's table lists 5.71 "GFLOPS" for inception_v3: multiply-adds of the same network.
INCEPTION_FLOPS_PER_IMAGE = 11.42e9
# Dense peak TFLOP/s from the vendors' data sheets (no sparsity): fp32 on CUDA cores (exact), TF32 and fp16 on
# tensor cores, in bench/gpu_peaks.json. Matched by substring of torch.cuda.get_device_name(), first match in the
# file's order (so "H200 NVL" before "H200", "L40S" before "L40" before "L4"); anything else falls back to a measured
# matrix product.
KNOWN_PEAKS = json.loads((Path(__file__).parent / "gpu_peaks.json").read_text())


class BenchError(Exception):
    """A problem the user can fix; printed without a traceback (exit status 2)."""


def bench_device(name: str) -> torch.device:
    """The trainer's rule (baselines.train.resolve_device: auto is CUDA when torch sees it); its refusal of --device
    cuda gets what to check on this machine."""
    from baselines.train import resolve_device

    try:
        return resolve_device(name)
    except ValueError as exc:
        build = f"torch {torch.__version__}, " + (f"built for CUDA {torch.version.cuda}" if torch.version.cuda
                                                  else "a CPU-only build")
        raise BenchError(f"{exc} ({build}) Run it on a GPU machine with a CUDA build of torch (check `nvidia-smi` "
                         "and `python -c 'import torch; print(torch.cuda.is_available())'`), or use --smoke.") from exc


def amp_modes(device: torch.device) -> tuple[bool, ...]:
    """fp32 always; --amp (bfloat16 autocast) only on CUDA, where the trainer enables it (it is off on CPU)."""
    return (False, True) if device.type == "cuda" else (False,)


def scoring_precisions(device: torch.device) -> tuple[str, ...]:
    """tf32 and fp16 exist on CUDA only (the scorer refuses fp16 on CPU; TF32 is a GPU tensor-core mode)."""
    return PRECISIONS if device.type == "cuda" else ("exact",)


TORCH_DEFAULT_FLAGS = {
    "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
    "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    "cudnn.deterministic": torch.backends.cudnn.deterministic,
    "cudnn.benchmark": torch.backends.cudnn.benchmark,
}


def restore_torch_default_flags() -> dict[str, bool]:
    """The scorer sets process-wide precision flags (exact: TF32 off, deterministic cuDNN); training must run with
    torch's defaults, as `arena train` does in its own process."""
    torch.backends.cudnn.allow_tf32 = TORCH_DEFAULT_FLAGS["cudnn.allow_tf32"]
    torch.backends.cuda.matmul.allow_tf32 = TORCH_DEFAULT_FLAGS["cuda.matmul.allow_tf32"]
    torch.backends.cudnn.deterministic = TORCH_DEFAULT_FLAGS["cudnn.deterministic"]
    torch.backends.cudnn.benchmark = TORCH_DEFAULT_FLAGS["cudnn.benchmark"]
    return dict(TORCH_DEFAULT_FLAGS)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, function: Callable[[], Any]) -> tuple[Any, float]:
    """(result, seconds) with the device's queue drained before and after, so GPU work is not left out."""
    synchronize(device)
    started = time.perf_counter()
    result = function()
    synchronize(device)
    return result, time.perf_counter() - started


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs, {torch.get_num_threads()} threads)"


def peak_tflops(device: torch.device, precision: str) -> tuple[float, str]:
    """(dense peak TFLOP/s, where it comes from) for the scorer's precision on this device."""
    name = device_name(device)
    for key, peaks in KNOWN_PEAKS.items():
        if device.type == "cuda" and key in name:
            return peaks[precision], f"data sheet ({key})"
    return measured_matmul_tflops(device, precision), "measured matrix product"


def measured_matmul_tflops(device: torch.device, precision: str) -> float:
    size = 8192 if device.type == "cuda" else 512
    dtype = torch.float16 if precision == "fp16" else torch.float32
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        a = torch.randn(size, size, device=device, dtype=dtype)
        a @ a
        repeats = 10 if device.type == "cuda" else 3
        _, seconds = timed(device, lambda: [a @ a for _ in range(repeats)])
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    return 2 * size**3 * repeats / seconds / 1e12
