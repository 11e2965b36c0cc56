"""Sampling a model submission: 2 x 1,000 images from the bundled dcgan export, and the memory cap at work.

    python -m bench.model_sampling [--threads 2] [--per-class 1000] [--memory-gib 4]

Exports the dcgan baseline generator (default settings; random weights cost the same compute as trained ones) to
the model-submission format and samples it exactly as the worker does on the CPU: `submissions.sampling.sample_model`,
a child process under RLIMIT_DATA and the resident-memory watchdog, with onnxruntime on `--threads` CPU threads.
Reports the wall time, images per second and the child's peak resident memory (ru_maxrss of the children). Then runs
a model built to allocate 64 GiB under the same cap, and one filling 2 GiB under the watchdog alone (the CUDA path
sets no rlimit; here it runs on the CPU), and reports how each ended, how fast, and how far past the cap the
watchdog let it get. Prints a table and writes bench/results/model_sampling.json.
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
import time
from pathlib import Path

from baselines.dcgan import Config, Generator
from baselines.generate import export_onnx
from bench.report import write_result
from submissions.sampling import (
    SamplingFailed,
    SamplingJob,
    run_capped,
    sample_model,
    sampling_command,
)
from tests.utils import onnx_models

CLASSES = ["with_mask", "without_mask"]


def children_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def watchdog_alone(workdir: Path, cap: int) -> dict:
    """A model filling 2 GiB (over a cap below that) with no rlimit: the watchdog must stop it on its way."""
    grower = onnx_models.unbounded_allocation(workdir / "grow.onnx", elements=2**29)
    job = SamplingJob(model=str(grower), labels=[0], per_class=8, latent_size=onnx_models.LATENT, image_size=64,
                      seed=0)
    limit = min(cap, 2**30)
    start = time.perf_counter()
    try:
        run_capped(sampling_command(job, workdir / "grow.npy"), memory_bytes=limit, time_limit_s=600,
                   kernel_limit=False)
        outcome = "NOT STOPPED"
    except SamplingFailed as exc:
        outcome = f"stopped: {exc.kind} ({exc})"
    return {"seconds": round(time.perf_counter() - start, 2), "images_per_s": None, "peak_rss_mib": None,
            "file_mib": None, "outcome": outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--memory-gib", type=float, default=4.0)
    args = parser.parse_args()
    cap = int(args.memory_gib * 2**30)
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as workdir:
        config = Config()
        path = export_onnx(Generator(config, len(CLASSES)).eval(), Path(workdir, "dcgan.onnx"), classes=CLASSES,
                           z_dim=config.z_dim)
        job = SamplingJob(model=str(path), labels=[0, 1], per_class=args.per_class, latent_size=config.z_dim,
                          image_size=64, seed=0, threads=args.threads)
        start = time.perf_counter()
        images = sample_model(job, memory_bytes=cap, time_limit_s=3600)
        seconds = time.perf_counter() - start
        rows[f"dcgan 2 x {args.per_class}"] = {
            "seconds": round(seconds, 2), "images_per_s": round(images.shape[0] * images.shape[1] / seconds, 1),
            "peak_rss_mib": round(children_peak_mib(), 1), "file_mib": round(path.stat().st_size / 2**20, 1),
            "outcome": "ok"}
        hog = onnx_models.unbounded_allocation(Path(workdir, "hog.onnx"))
        start = time.perf_counter()
        try:
            sample_model(SamplingJob(model=str(hog), labels=[0], per_class=8, latent_size=onnx_models.LATENT,
                                     image_size=64, seed=0), memory_bytes=cap, time_limit_s=600)
            outcome = "NOT STOPPED"
        except SamplingFailed as exc:
            outcome = f"stopped: {exc.kind}"
        rows["allocates 64 GiB"] = {"seconds": round(time.perf_counter() - start, 2), "images_per_s": None,
                                    "peak_rss_mib": round(children_peak_mib(), 1), "file_mib": None,
                                    "outcome": outcome}
        rows["fills 2 GiB, watchdog"] = watchdog_alone(Path(workdir), cap)
    print(f"{'case':<22} {'seconds':>8} {'img/s':>8} {'peak RSS MiB':>13}  outcome   (cap {args.memory_gib:g} GiB, "
          f"{args.threads} threads)")
    for name, row in rows.items():
        print(f"{name:<22} {row['seconds']:>8} {row['images_per_s'] or '':>8} {row['peak_rss_mib'] or '':>13}  "
              f"{row['outcome']}")
    result = {"machine": f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
              "threads": args.threads, "memory_cap_gib": args.memory_gib, "rows": rows}
    write_result("model_sampling.json", result)


if __name__ == "__main__":
    main()
