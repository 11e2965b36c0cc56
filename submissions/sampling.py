"""Sample an ONNX generator in a separate process with a memory cap and a wall-clock limit.

The team's model never runs in the caller's process: `sample_model` starts `python -m submissions.sampling` and
watches it (`run_capped`): it is killed past the time limit (a model that loops) and when its resident memory passes
the cap (a watchdog polling it every WATCH_INTERVAL_S). On the CPU the kernel enforces the cap as well, with
RLIMIT_DATA set before the child starts: a model asking for 64 GiB at once gets an allocation error there and then,
before the watchdog could see the memory filled. RLIMIT_DATA counts heap and private writable mappings, not the
address space of libraries and reservations, so the cap means memory (RLIMIT_AS, used before, counted address
space; both stop the bounded and the unbounded test models alike on the CPU, docs/BENCHMARKS.md). On CUDA no rlimit is
set: the CUDA runtime reserves large address ranges that no such limit was measured with, so there the watchdog
caps host memory and onnxruntime's `gpu_mem_limit` caps device memory. The child writes the images to an .npy
file; any failure comes back as a SamplingFailed with the reason a team can act on.

The child never outlives its watcher (`confine_child`, run between fork and exec): the kernel sends it SIGKILL when
the thread that started it dies (PR_SET_PDEATHSIG: a SIGKILLed worker takes its model with it), it leads its own
session and process group (so it can be killed whole, and a terminal's Ctrl-C reaches the watcher, not the model
first), and RLIMIT_CPU ends it even if no one is left to watch (a stopped or frozen parent). Its work folder,
`arena-sample-<owner pid>-*` in the temp directory, names its owner: `submissions.orphans` kills what a dead owner left
running and removes its folders when the next worker starts.

Device: `choose_providers` takes the worker's device; CUDA when it is cuda and onnxruntime offers the CUDA provider
(onnxruntime-gpu), the CPU otherwise, with the reason. Noise: z ~ N(0, 1) from numpy's PCG64 seeded with `seed`,
drawn class by class in the class order of the model's metadata, so one (model, seed) pair always gives the same
images on the same runtime and provider (deterministic kernels are requested; CPU and CUDA may differ slightly).
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

INPUT_Z = "z"
INPUT_LABEL = "label"
OUTPUT_IMAGES = "images"
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
WATCH_INTERVAL_S = 0.02
WORKDIR_PREFIX = "arena-sample-"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
CPU_LIMIT_SLACK_S = 10  # start-up (imports, session creation) on top of threads x wall-clock limit
FailureKind = Literal["timeout", "memory", "crash", "non_finite", "wrong_output", "cancelled"]
# One onnxruntime provider as its session takes it: a name, or [name, options].
Provider = str | list[Any]

log = logging.getLogger("arena.sampling")


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
    providers: list[Provider] = field(default_factory=lambda: [CPU])
    tag: str = ""  # what the caller samples for ("submission 17"): `orphans.stop_copies` finds a job by it


def choose_providers(device: str, available: list[str], *, gpu_memory_bytes: int) -> tuple[list[Provider], str | None]:
    """The onnxruntime providers for a worker's device ("cpu", "cuda", "cuda:1"), and why a cuda device samples on
    the CPU (None when it does not)."""
    if not device.startswith("cuda"):
        return [CPU], None
    if CUDA not in available:
        return [CPU], (f"the worker's device is {device} but onnxruntime offers no {CUDA} (available: "
                       f"{', '.join(available)}; install onnxruntime-gpu to sample on the GPU): sampling on the CPU")
    options = {"device_id": device.partition(":")[2] or "0", "gpu_mem_limit": str(gpu_memory_bytes),
               # grow the arena only by what is asked, so the cap is reached by real use, not by doubling
               "arena_extend_strategy": "kSameAsRequested",
               # cuDNN's default algorithms, not the fastest measured: the same images on every rescore
               "cudnn_conv_algo_search": "DEFAULT"}
    return [[CUDA, options], CPU], None


def provider_name(provider: Provider) -> str:
    return provider if isinstance(provider, str) else provider[0]


def sample_model(job: SamplingJob, *, memory_bytes: int, time_limit_s: float,
                 cancelled: threading.Event | None = None) -> np.ndarray:
    """uint8 (len(labels), per_class, H, W) images, sampled in a capped child process; SamplingFailed otherwise
    (kind "cancelled" when `cancelled` is set while it runs)."""
    with tempfile.TemporaryDirectory(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-") as workdir:
        out = Path(workdir, "images.npy")
        kernel_limit = provider_name(job.providers[0]) == CPU
        cpu_seconds = math.ceil(time_limit_s * (job.threads + 1)) + CPU_LIMIT_SLACK_S
        returncode, stderr = run_capped(sampling_command(job, out), memory_bytes=memory_bytes,
                                        time_limit_s=time_limit_s, kernel_limit=kernel_limit,
                                        cpu_seconds=cpu_seconds, cancelled=cancelled)
        if returncode != 0:
            raise _failure(returncode, stderr, memory_bytes)
        used = out.with_suffix(".provider").read_text()
        if used != provider_name(job.providers[0]):
            log.warning("sampled on %s: onnxruntime did not start %s", used, provider_name(job.providers[0]))
        return np.load(out)


def sampling_command(job: SamplingJob, out: Path) -> list[str]:
    """The child process that samples `job` into `out` (.npy) and names the provider that ran it beside it."""
    return [sys.executable, "-m", "submissions.sampling", json.dumps(job.__dict__), str(out)]


def run_capped(command: list[str], *, memory_bytes: int, time_limit_s: float, kernel_limit: bool,
               cpu_seconds: int | None = None, cancelled: threading.Event | None = None) -> tuple[int, str]:
    """Run `command` until it exits: (exit status, stderr). Killed with SamplingFailed past the time limit, when its
    resident memory passes `memory_bytes` or when `cancelled` is set; `kernel_limit` also sets RLIMIT_DATA to the
    cap before it starts. It dies with the calling thread and after `cpu_seconds` of CPU time (`confine_child`)."""
    confine = confine_child(parent=os.getpid(), memory_bytes=memory_bytes if kernel_limit else None,
                            cpu_seconds=cpu_seconds or math.ceil(time_limit_s * 2) + CPU_LIMIT_SLACK_S)
    with tempfile.TemporaryFile("w+") as stderr:  # a file, not a pipe: a chatty child never blocks on it
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, text=True, preexec_fn=confine,
                                   start_new_session=True)
        try:
            _watch(process, memory_bytes, time.monotonic() + time_limit_s, time_limit_s, cancelled)
        finally:
            if process.poll() is None:  # a failure, or the caller interrupted: never leave the model running
                _kill_group(process.pid)
                process.wait()
        stderr.seek(0)
        return process.returncode, stderr.read()


def confine_child(*, parent: int, memory_bytes: int | None, cpu_seconds: int) -> Callable[[], None]:
    """What the child runs between fork and exec: die with the parent's thread, a CPU-time limit (SIGXCPU at the
    soft limit, SIGKILL a few seconds later) and, on the CPU, the memory cap."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork: nothing to load in the child

    def confine() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above: nobody would watch this model
            os._exit(1)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
        if memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))

    return confine


def _kill_group(pid: int) -> None:
    """SIGKILL the child's whole process group (it leads its own), so nothing it started stays behind."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _watch(process: subprocess.Popen, memory_bytes: int, deadline: float, time_limit_s: float,
           cancelled: threading.Event | None) -> None:
    while True:
        try:
            process.wait(timeout=WATCH_INTERVAL_S)
            return
        except subprocess.TimeoutExpired:
            pass
        if cancelled is not None and cancelled.is_set():
            raise SamplingFailed("cancelled", "sampling was cancelled: this job is no longer this worker's")
        resident = resident_bytes(process.pid)
        if resident > memory_bytes:
            raise SamplingFailed("memory", f"the model used {resident / 2**20:.1f} MiB of memory, over the cap of "
                                 f"{memory_bytes / 2**20:.0f} MiB, and was stopped")
        if time.monotonic() > deadline:
            raise SamplingFailed("timeout", f"sampling took longer than the limit of {time_limit_s:g} s")


def resident_bytes(pid: int) -> int:
    """A process's resident memory from /proc (Linux; 0 where it cannot be read, e.g. it has just exited)."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def _failure(returncode: int, stderr: str, memory_bytes: int) -> SamplingFailed:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    try:
        reported = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        reported = None
    if isinstance(reported, dict) and "kind" in reported:
        return SamplingFailed(reported["kind"], reported["message"])
    if returncode == -signal.SIGXCPU:
        return SamplingFailed("timeout", f"the sampling process was stopped by its CPU-time limit (exit status "
                              f"{returncode})")
    if returncode < 0 or not lines:
        return SamplingFailed("crash", f"the sampling process died (exit status {returncode})")
    if any(word in lines[-1].lower() for word in ("memoryerror", "bad_alloc", "bad allocation", "failed to allocate")):
        return SamplingFailed("memory", f"the model needs more than the memory cap of {memory_bytes / 2**20:.0f} MiB")
    return SamplingFailed("crash", lines[-1][-500:])


# -- the child process ---------------------------------------------------------------------------------------------


def run_job(job: SamplingJob) -> tuple[np.ndarray, str]:
    """Run in the capped child: every class's images, validated batch by batch, and the provider that ran them."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = job.threads
    options.inter_op_num_threads = 1
    options.use_deterministic_compute = True  # the same (model, seed) gives the same images on every rescore
    session = ort.InferenceSession(job.model, options, providers=[provider_name(p) for p in job.providers],
                                   provider_options=[{} if isinstance(p, str) else p[1] for p in job.providers])
    rng = np.random.Generator(np.random.PCG64(job.seed))
    images = np.empty((len(job.labels), job.per_class, job.image_size, job.image_size), dtype=np.uint8)
    for row, label in enumerate(job.labels):
        for start in range(0, job.per_class, job.batch_size):
            count = min(job.batch_size, job.per_class - start)
            z = rng.standard_normal((count, job.latent_size), dtype=np.float32)
            labels = np.full(count, label, dtype=np.int64)
            (output,) = session.run([OUTPUT_IMAGES], {INPUT_Z: z, INPUT_LABEL: labels})
            images[row, start : start + count] = to_uint8(output, count, job.image_size)
    return images, session.get_providers()[0]


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
        images, provider = run_job(job)
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
    Path(argv[1]).with_suffix(".provider").write_text(provider)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
