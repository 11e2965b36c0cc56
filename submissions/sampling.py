"""Sample an ONNX generator in a separate process with a memory cap and a wall-clock limit.

The team's model never runs in the caller's process: `sample_model` starts `python -m submissions.sampling`, whose
address space is capped with RLIMIT_AS before it starts (so a model that allocates without bound gets an allocation
error, not the machine's memory), and kills it past the time limit (a model that loops). The child writes the
images to an .npz file; any failure comes back as a SamplingFailed with the reason a team can act on.

Noise: z ~ N(0, 1) from numpy's PCG64 seeded with `seed`, drawn class by class in the class order of the model's
metadata, so one (model, seed) pair always gives the same images on the same runtime.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

INPUT_Z = "z"
INPUT_LABEL = "label"
OUTPUT_IMAGES = "images"
FailureKind = Literal["timeout", "memory", "crash", "non_finite", "wrong_output"]


class SamplingFailed(RuntimeError):
    """The model could not be sampled; `kind` is one of FailureKind, the message says what happened."""

    def __init__(self, kind: FailureKind, message: str):
        self.kind = kind
        super().__init__(message)


@dataclass(frozen=True)
class SamplingJob:
    """What to sample: `per_class` images of each label index in `labels`, in batches, from one seed."""

    model: str
    labels: list[int]
    per_class: int
    latent_size: int
    image_size: int
    seed: int
    batch_size: int = 250
    threads: int = 1


def sample_model(job: SamplingJob, *, memory_bytes: int, time_limit_s: float) -> np.ndarray:
    """uint8 (len(labels), per_class, H, W) images, sampled in a capped child process; SamplingFailed otherwise."""
    with tempfile.TemporaryDirectory(prefix="arena-sample-") as workdir:
        out = Path(workdir, "images.npy")
        command = [sys.executable, "-m", "submissions.sampling", json.dumps(job.__dict__), str(out)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=time_limit_s,
                                  preexec_fn=lambda: _cap_memory(memory_bytes))
        except subprocess.TimeoutExpired as exc:  # subprocess.run has killed the child already
            raise SamplingFailed("timeout", f"sampling took longer than the limit of {time_limit_s:g} s") from exc
        if done.returncode != 0:
            raise _failure(done.returncode, done.stderr, memory_bytes)
        return np.load(out)


def _cap_memory(memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _failure(returncode: int, stderr: str, memory_bytes: int) -> SamplingFailed:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    try:
        reported = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        reported = None
    if isinstance(reported, dict) and "kind" in reported:
        return SamplingFailed(reported["kind"], reported["message"])
    if returncode < 0 or not lines:
        return SamplingFailed("crash", f"the sampling process died (exit status {returncode})")
    if any(word in lines[-1].lower() for word in ("memoryerror", "bad_alloc", "bad allocation", "failed to allocate")):
        return SamplingFailed("memory", f"the model needs more than the memory cap of {memory_bytes / 2**20:.0f} MiB")
    return SamplingFailed("crash", lines[-1][-500:])


# -- the child process ---------------------------------------------------------------------------------------------


def run_job(job: SamplingJob) -> np.ndarray:
    """Run in the capped child: every class's images, validated batch by batch."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = job.threads
    options.inter_op_num_threads = 1
    # CPU only: CUDA reserves far more address space than any RLIMIT_AS cap allows.
    session = ort.InferenceSession(job.model, options, providers=["CPUExecutionProvider"])
    rng = np.random.Generator(np.random.PCG64(job.seed))
    images = np.empty((len(job.labels), job.per_class, job.image_size, job.image_size), dtype=np.uint8)
    for row, label in enumerate(job.labels):
        for start in range(0, job.per_class, job.batch_size):
            count = min(job.batch_size, job.per_class - start)
            z = rng.standard_normal((count, job.latent_size), dtype=np.float32)
            labels = np.full(count, label, dtype=np.int64)
            (output,) = session.run([OUTPUT_IMAGES], {INPUT_Z: z, INPUT_LABEL: labels})
            images[row, start : start + count] = to_uint8(output, count, job.image_size)
    return images


def to_uint8(output: np.ndarray, count: int, size: int) -> np.ndarray:
    """(N, 1, S, S) float in [-1, 1] (clamped) or uint8 -> uint8 (N, S, S); SamplingFailed on shape or NaN."""
    expected = (count, 1, size, size)
    if output.shape != expected:
        raise SamplingFailed("wrong_output", f"output '{OUTPUT_IMAGES}' has shape {output.shape}, expected {expected}")
    if output.dtype == np.uint8:
        return output[:, 0]
    if not np.isfinite(output).all():
        raise SamplingFailed("non_finite", f"output '{OUTPUT_IMAGES}' holds NaN or infinite values")
    scaled = (np.clip(output[:, 0].astype(np.float32), -1.0, 1.0) + 1.0) * 127.5
    return np.rint(scaled).astype(np.uint8)


def _main(argv: list[str]) -> int:
    job = SamplingJob(**json.loads(argv[0]))
    try:
        images = run_job(job)
    except SamplingFailed as exc:
        print(json.dumps({"kind": exc.kind, "message": str(exc)}), file=sys.stderr)
        return 1
    except MemoryError:
        print(json.dumps({"kind": "memory", "message": "the model needs more than the memory cap"}), file=sys.stderr)
        return 1
    except Exception as exc:  # onnxruntime reports allocation failures as plain runtime errors
        text = str(exc)
        kind = "memory" if "alloc" in text.lower() else "crash"
        message = "the model needs more than the memory cap" if kind == "memory" else text[-500:]
        print(json.dumps({"kind": kind, "message": message}), file=sys.stderr)
        return 1
    np.save(argv[1], images)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
