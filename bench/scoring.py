"""Scoring benchmark: pytorch-fid's CLI vs `arena score` cold vs warm in-process scoring, on the same images.

    python -m bench.scoring                          # 2 classes x 1,000 generated vs 2 x 1,000 real (full size)
    python -m bench.scoring --images-per-class 100   # smaller, for a busy CPU

(a) the course's way: `python -m pytorch_fid GEN REAL` once per class (under a SciPy shim: SciPy 1.18 removed the
    `disp` argument pytorch-fid 0.3.0 passes to sqrtm);
(b) `arena score --images GEN --competition DIR` in a new process (model load included; references cached on disk);
(c) warm: a long-lived process with the model loaded and the references in memory scores the same PNGs
    (decode included), once per engine: on CPU `torch` (the scorer before issue 16) and `onnxruntime`;
(d) on CPU, the feature runtimes alone on one batch of 64x64 images in one process: eager torch, channels-last
    torch, ONNX Runtime and OpenVINO (when installed: `pip install -c constraints.txt '.[bench]'`), with images/s,
    the share of the CPU's fp32 peak (cores x FMA lanes x 2 FMA units x 2 flops x clock, from lscpu) and the max
    abs pool3 difference to eager torch.
Each runs in its own process so its peak RSS is its own. Device: CUDA when present (pytorch-fid gets --device
cuda too). Prints a table and writes bench/results/scoring-<device>-<N>.json. The table's last lines give what the
uncertainty, diagnostics and memorization evidence add to the warm time (target: at most 10%).

    python -m bench.scoring --trust-overhead         # only that overhead, in about a minute (no reference build)

times, for one 2 x N entry, the additions exactly as the Scorer runs them (half-sample replicates against the ranked
reference splits, public and private; KID and precision/recall/density/coverage against the public split; the
nearest training images) on features of the real sizes (N generated, N/2 public, N/2 private, N training images per
class), and the warm network time of the same entry measured on 2 x NETWORK_SAMPLE images and scaled linearly to
2 x N (the network's cost is per image), on CPU once per engine (torch and onnxruntime, the default). Writes
bench/results/trust-overhead-<device>-<N>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "bench" / "results"
NETWORK_SAMPLE = 50  # images per class timed through the network for --trust-overhead
INCEPTION_GFLOPS_PER_IMAGE = 5.71  # InceptionV3 at 299x299 (multiply-adds x 2), the FID network's cost per image
PYTORCH_FID_UNDER_SHIM = (
    "import runpy, scipy.linalg as l; s = l.sqrtm\n"
    "l.sqrtm = lambda a, disp=True, blocksize=64: s(a) if disp else (s(a), 0.0)\n"
    "runpy.run_module('pytorch_fid', run_name='__main__')"
)


def measured(command: list[str], env: dict | None = None) -> dict:
    """Run a command in a child process; wall seconds, its peak RSS (largest process) and stdout."""
    wrapper = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr[-3000:] if r.returncode else ''); "
        "print(f'@@ {time.perf_counter() - t} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}'); "
        "sys.exit(r.returncode)"
    )
    result = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, cwd=ROOT)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr}")
    stdout, _, last = result.stdout.rpartition("@@ ")
    wall, rss_kib = last.split()
    return {"wall_s": float(wall), "peak_rss_mb": int(rss_kib) / 1024, "stdout": stdout}


def prepare_data(work: Path, n: int, train: int) -> tuple[Path, Path]:
    """A blob-image competition (n test, `train` train images per class) and n noisy generated images per class."""
    import numpy as np
    from PIL import Image

    from tests.utils.competition import make_competition, random_images

    competition, generated = work / "competition", work / "generated"
    if not (competition / "manifest.json").exists():
        make_competition(competition, train_per_class=train, test_per_class=n, images_per_class=n, seed=1)
    for index, cls in enumerate(("with_mask", "without_mask")):
        folder = generated / cls
        if len(list(folder.glob("*.png"))) == n:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        noise = np.random.default_rng(index).normal(0, 12, size=(n, 64, 64))
        images = (random_images(n, seed=500 + index, brightness=80 + 100 * index) + noise).clip(0, 255)
        for i, image in enumerate(images.astype(np.uint8)):
            Image.fromarray(image, mode="L").save(folder / f"{i:05d}.png")
    return competition, generated


def warm_child(args: argparse.Namespace) -> None:
    """(c): load once, warm up, then time end-to-end scoring of the PNG folders."""
    from server.competition_dir import Competition
    from server.scoring import FeatureExtractor, Scorer
    from submissions.folders import read_class_folders

    competition = Competition.load(args.competition)
    scorer = Scorer(FeatureExtractor(device=args.device, precision=args.precision, engine=args.engine))
    scorer.prepare(competition, progress=False)
    warm_up = {cls: images[:2] for cls, images in read_class_folders(args.generated, competition.classes).items()}
    scorer.score(competition, warm_up)
    runs = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        images = read_class_folders(args.generated, competition.classes)
        decode_png = time.perf_counter() - started
        report = scorer.score(competition, images)
        runs.append({"wall_s": time.perf_counter() - started, "png_decode_s": decode_png,
                     "report": report.model_dump(mode="json")})
    best = min(runs, key=lambda run: run["wall_s"])
    print(json.dumps({**best, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def matmul_tflops(device: str) -> float:
    """Measured fp32 matmul rate (TF32 off), for the GPU floor: Inception FLOPs / this rate."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(8192, 8192, device=device)
    for _ in range(2):
        a @ a
    torch.cuda.synchronize()
    started, repeats = time.perf_counter(), 10
    for _ in range(repeats):
        a @ a
    torch.cuda.synchronize()
    return 2 * 8192**3 * repeats / (time.perf_counter() - started) / 1e12


def run(args: argparse.Namespace) -> dict:
    import torch

    from server.competition_dir import Competition
    from server.scoring import FeatureExtractor, Scorer

    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    work = RESULTS / f"scoring-data-{args.images_per_class}-{args.train_per_class}"
    competition_dir, generated = prepare_data(work, args.images_per_class, args.train_per_class)
    competition = Competition.load(competition_dir)
    started = time.perf_counter()
    # one-time reference build (cached on disk for the runs below)
    Scorer(FeatureExtractor(device=device)).prepare(competition)
    reference_build_s = time.perf_counter() - started

    pytorch_fid: dict = {}
    cold: dict = {}
    for cls in competition.classes if not args.only_warm else ():
        real = competition_dir / "test" / cls
        result = measured([sys.executable, "-c", PYTORCH_FID_UNDER_SHIM, str(generated / cls), str(real),
                           "--device", device, "--num-workers", str(min(8, os.cpu_count() or 1))])
        result["fid"] = float(re.search(r"FID:\s*([0-9.eE+-]+)", result.pop("stdout")).group(1))
        pytorch_fid[cls] = result

    if not args.only_warm:
        cold = measured([sys.executable, "-m", "server.cli", "score", "--images", str(generated), "--competition",
                         str(competition_dir), "--json", "--device", device])
        cold["report"] = json.loads(cold.pop("stdout"))

    runtimes = measured([sys.executable, "-m", "bench.scoring", "--runtimes-child"]) if device == "cpu" else {}
    warm = {}
    variants = [("exact", "torch"), ("exact", "onnxruntime")] if device == "cpu" else \
        [("exact", "torch"), ("tf32", "torch"), ("fp16", "torch")]
    for precision, engine in variants:
        child = measured([sys.executable, "-m", "bench.scoring", "--warm-child", "--competition",
                          str(competition_dir), "--generated", str(generated), "--device", device, "--precision",
                          precision, "--engine", engine, "--repeats", str(args.repeats)])
        name = engine if device == "cpu" else precision
        warm[name] = {**json.loads(child["stdout"]), "process_wall_s": child["wall_s"]}

    summary = summarize(args, device, reference_build_s, pytorch_fid, cold, warm)
    if runtimes:
        summary["runtimes"] = json.loads(runtimes["stdout"])
    return summary


def cpu_fp32_peak_gflops() -> dict:
    """cores x SIMD fp32 lanes (16 with AVX-512, 8 with AVX2) x 2 FMA units x 2 flops x clock (lscpu max MHz, else
    BogoMIPS / 2). Two FMA units per core holds for the server x86 cores this runs on (Zen, Skylake-SP and later)."""
    info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = fields.get("Flags", "").split()
    lanes = 16 if "avx512f" in flags else 8 if "fma" in flags else 4
    mhz = float(fields.get("CPU max MHz") or float(fields.get("BogoMIPS", "4000")) / 2)
    cores = len(os.sched_getaffinity(0))
    return {"cores": cores, "fp32_lanes": lanes, "fma_units": 2, "ghz": mhz / 1e3, "model": fields.get("Model name"),
            "peak_gflops": cores * lanes * 2 * 2 * mhz / 1e3}


def runtimes_child(batch: int = 16, repeats: int = 2) -> None:
    """(d): each runtime on the same batch, the best of `repeats` timed runs after one warm-up, same process."""
    import numpy as np
    import torch

    from server.scoring.onnx_engine import OnnxPool3, ensure_export, pool3_module
    from server.scoring.weights import resolve_weights

    weights = resolve_weights(allow_download=False)
    onnx_path = ensure_export(weights.path, weights.sha256)
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    images = np.random.default_rng(0).integers(0, 256, (batch, 1, 64, 64)).repeat(3, axis=1).astype(np.float32) / 255
    eager = pool3_module(weights.path)
    channels_last = pool3_module(weights.path).to(memory_format=torch.channels_last)
    runners = {
        "torch eager fp32": lambda x: eager(torch.from_numpy(x)).numpy(),
        "torch channels-last fp32": lambda x: channels_last(
            torch.from_numpy(x).contiguous(memory_format=torch.channels_last)).numpy(),
        "onnxruntime CPU, all graph optimizations": OnnxPool3(onnx_path, threads),
    }
    try:
        import openvino

        compiled = openvino.Core().compile_model(str(onnx_path), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})
        runners[f"openvino {openvino.__version__} f32"] = lambda x: compiled(x)[0]
    except ImportError:
        pass
    results, reference = {}, None
    with torch.inference_mode():
        for name, run_batch in runners.items():
            run_batch(images[:2])
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                features = run_batch(images)
                times.append(time.perf_counter() - started)
            reference = features if reference is None else reference
            results[name] = {"images_per_s": batch / min(times),
                             "max_abs_diff_vs_eager": float(np.abs(features - reference).max())}
    peak = cpu_fp32_peak_gflops()
    for result in results.values():
        result["share_of_fp32_peak"] = result["images_per_s"] * INCEPTION_GFLOPS_PER_IMAGE / peak["peak_gflops"]
    print(json.dumps({"batch": batch, "threads": threads, "cpu": peak, "runtimes": results,
                      "versions": {"torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__}}))


def summarize(args, device, reference_build_s, pytorch_fid, cold, warm) -> dict:
    exact = warm["onnxruntime" if device == "cpu" else "exact"]
    baseline_s = sum(r["wall_s"] for r in pytorch_fid.values()) or float("nan")
    ours = {cls: s["raw_fid_all"] for cls, s in exact["report"]["classes"].items()}
    summary: dict = {
        "device": device,
        "torch_threads": os.cpu_count(),
        "images_per_class": args.images_per_class,
        "train_per_class": args.train_per_class,
        "reference_build_s": reference_build_s,
        "pytorch_fid": pytorch_fid,
        "arena_score_cold": {k: v for k, v in cold.items() if k != "report"} | (
            {"timings": cold["report"]["timings"]} if cold else {}),
        "warm": {p: {k: v for k, v in w.items() if k != "report"} | {"timings": w["report"]["timings"],
                                                                  "score_all": w["report"]["score_all"]}
                 for p, w in warm.items()},
        "fid_ours_vs_pytorch_fid": {cls: {"ours": ours[cls], "pytorch_fid": pytorch_fid[cls]["fid"],
                                          "relative_difference": abs(ours[cls] / pytorch_fid[cls]["fid"] - 1)}
                                    for cls in ours if cls in pytorch_fid},
        "ratios": {"warm_over_pytorch_fid": exact["wall_s"] / baseline_s,
                   "cold_over_pytorch_fid": cold.get("wall_s", float("nan")) / baseline_s,
                   "speedup_warm": baseline_s / exact["wall_s"]},
        "distance_s_per_class": exact["report"]["timings"]["distance"] / len(ours),
    }
    if device == "cpu":
        before = warm["torch"]
        summary["engines"] = {
            name: {"wall_s": w["wall_s"], "features_s": w["report"]["timings"]["features"],
                   "images_per_s_features": 2 * args.images_per_class / w["report"]["timings"]["features"],
                   "speedup_vs_torch": before["wall_s"] / w["wall_s"], "peak_rss_mb": w["peak_rss_mb"],
                   "fid_relative_difference_vs_torch": {
                       cls: abs(c["raw_fid_all"] / before["report"]["classes"][cls]["raw_fid_all"] - 1)
                       for cls, c in w["report"]["classes"].items()}}
            for name, w in warm.items()}
    if device == "cuda":
        import torch

        tflops = matmul_tflops(device)
        images = 2 * args.images_per_class
        summary["gpu"] = {"name": torch.cuda.get_device_name(), "fp32_matmul_tflops": tflops,
                          "floor_s": images * INCEPTION_GFLOPS_PER_IMAGE / 1e3 / tflops,
                          "fid_change": {p: abs(w["score_all"] - summary["warm"]["exact"]["score_all"])
                                         for p, w in summary["warm"].items()}}
    return summary


def print_table(summary: dict) -> None:
    baseline = sum(r["wall_s"] for r in summary["pytorch_fid"].values()) or float("nan")
    rows = [(f"(a) python -m pytorch_fid, {cls}", r["wall_s"], r["peak_rss_mb"])
            for cls, r in summary["pytorch_fid"].items()]
    if summary["pytorch_fid"]:
        rows += [("(a) total", baseline, max(r["peak_rss_mb"] for r in summary["pytorch_fid"].values())),
                 ("(b) arena score, new process", summary["arena_score_cold"]["wall_s"],
                  summary["arena_score_cold"]["peak_rss_mb"])]
    rows += [(f"(c) warm in-process, {p}", w["wall_s"], w["peak_rss_mb"]) for p, w in summary["warm"].items()]
    n = summary["images_per_class"]
    print(f"\nScoring 2 x {n} generated vs 2 x {n} real 64x64 PNGs on {summary['device']} "
          f"(reference build, one-time: {summary['reference_build_s']:.1f} s)")
    print(f"{'run':<38}{'wall s':>10}{'peak RSS MB':>14}{'x (a) total':>13}")
    for name, wall, rss in rows:
        print(f"{name:<38}{wall:>10.2f}{rss:>14.0f}{wall / baseline:>13.3f}")
    for name, engine in summary.get("engines", {}).items():
        print(f"engine {name:<12} features {engine['images_per_s_features']:6.2f} img/s, warm scoring "
              f"{engine['speedup_vs_torch']:.2f}x torch, FID rel. diff vs torch "
              f"{max(engine['fid_relative_difference_vs_torch'].values()):.1e}")
    if "runtimes" in summary:
        cpu = summary["runtimes"]["cpu"]
        print(f"\nFeature runtimes, batch {summary['runtimes']['batch']} of 64x64, {summary['runtimes']['threads']} "
              f"threads; fp32 peak {cpu['peak_gflops']:.0f} GFLOP/s ({cpu['cores']} cores x {cpu['fp32_lanes']} lanes "
              f"x 2 FMA x 2 x {cpu['ghz']:.2f} GHz)")
        print(f"{'runtime':<44}{'img/s':>8}{'of peak':>9}{'max|diff|':>11}")
        for name, r in summary["runtimes"]["runtimes"].items():
            print(f"{name:<44}{r['images_per_s']:>8.2f}{r['share_of_fp32_peak']:>9.1%}{r['max_abs_diff_vs_eager']:>11.1e}")
    print(f"Fréchet distance per class (3 splits): {summary['distance_s_per_class']:.3f} s")
    timings = summary["warm"]["onnxruntime" if summary["device"] == "cpu" else "exact"]["timings"]
    added = timings.get("uncertainty", 0.0) + timings.get("diagnostics", 0.0)
    print(f"intervals + diagnostics: {added:.2f} s = {added / (timings['total'] - added):.1%} of the rest "
          "(target: at most 10%)")
    for cls, parity in summary["fid_ours_vs_pytorch_fid"].items():
        print(f"FID {cls}: ours {parity['ours']:.6f}, pytorch-fid {parity['pytorch_fid']:.6f}, "
              f"rel. diff {parity['relative_difference']:.2e}")
    if "gpu" in summary:
        gpu = summary["gpu"]
        print(f"GPU {gpu['name']}: fp32 matmul {gpu['fp32_matmul_tflops']:.1f} TFLOP/s, floor {gpu['floor_s']:.3f} s; "
              f"FID change vs exact: {gpu['fid_change']}")


def trust_overhead(args: argparse.Namespace) -> dict:
    """Seconds the trust additions take per 2 x N entry, against the warm scoring time of the same entry."""
    import numpy as np

    from server.scoring.uncertainty import REPLICATES
    from submissions.results import RANKED_SPLITS

    n, rng = args.images_per_class, np.random.default_rng(0)
    device = "cpu" if args.device == "auto" else args.device
    engines = ("torch", "onnxruntime") if device == "cpu" else ("torch",)
    network = {engine: network_seconds(device, engine, n) for engine in engines}
    network_s = {engine: wall for engine, (wall, _) in network.items()}
    network_cpu = {engine: cpu_s for engine, (_, cpu_s) in network.items()}
    trust = {"uncertainty": 0.0, "diagnostics": 0.0, "nearest_train": 0.0, "distance": 0.0}
    cpu = dict.fromkeys(trust, 0.0)  # process CPU seconds, all threads: comparable on a busy machine
    for _ in range(2):  # classes
        for name, (wall_s, cpu_s) in class_additions(n, rng, device).items():
            trust[name] += wall_s
            cpu[name] += cpu_s
    added = trust["uncertainty"] + trust["diagnostics"] + trust["nearest_train"]
    added_cpu = cpu["uncertainty"] + cpu["diagnostics"] + cpu["nearest_train"]
    warm = {engine: seconds + trust["distance"] for engine, seconds in network_s.items()}
    warm_cpu = {engine: seconds + cpu["distance"] for engine, seconds in network_cpu.items()}
    return {"device": device, "images_per_class": n, "replicates": REPLICATES, "bootstrapped": list(RANKED_SPLITS),
            "seconds": trust, "cpu_seconds": cpu, "network_s_scaled": network_s, "network_cpu_s_scaled": network_cpu,
            "warm_before_s": warm, "added_s": added, "overhead": {e: added / s for e, s in warm.items()},
            "added_cpu_s": added_cpu, "overhead_cpu": {e: added_cpu / s for e, s in warm_cpu.items()},
            "load_average_1m": os.getloadavg()[0]}


def class_additions(n: int, rng, device: str) -> dict[str, tuple[float, float]]:
    """Wall and CPU seconds of each addition for one class, on random pool3-like features of the real sizes."""
    import numpy as np

    from server.scoring.diagnostics import diagnostics
    from server.scoring.frechet import ReferenceStats, frechet_distance_to_reference
    from server.scoring.memorization import nearest_neighbours, normalized
    from server.scoring.uncertainty import (
        REPLICATES,
        frechet_replicates,
        half_sample_counts,
        penalized_replicates,
        reference_factor,
    )
    from submissions.results import RANKED_SPLITS
    from tests.utils.competition import random_images

    pool3 = lambda rows: rng.gamma(0.6, 0.5, size=(rows, 2048))  # noqa: E731  (non-negative, like pool3)
    test = {"public": pool3(n // 2), "private": pool3(n - n // 2)}
    test["all"] = np.concatenate([test["public"], test["private"]])
    train, generated = normalized(pool3(n)), pool3(n)
    stats = {split: ReferenceStats.of_features(f, device) for split, f in test.items()}
    images = random_images(n, seed=1)
    counts, nearest = half_sample_counts(n, REPLICATES, seed=1), np.full(n, 0.3)

    def intervals() -> None:
        for split in RANKED_SPLITS:
            raw = frechet_replicates(stats[split], reference_factor(stats[split], test[split]), generated, counts,
                                     device)
            penalized_replicates(raw, nearest, counts, eps=0.1)

    steps = {
        "distance": lambda: [frechet_distance_to_reference(stats[split], generated, device) for split in stats],
        "uncertainty": intervals,
        "diagnostics": lambda: diagnostics(test["public"], generated, images, device=device),
        "nearest_train": lambda: nearest_neighbours(normalized(generated), train, device),
    }
    out = {}
    for name, step in steps.items():
        started, cpu_started = time.perf_counter(), time.process_time()
        step()
        out[name] = (time.perf_counter() - started, time.process_time() - cpu_started)
    return out


def network_seconds(device: str, engine: str, n: int) -> tuple[float, float]:
    """Warm network wall and CPU seconds of 2 x n images on one engine, measured on 2 x NETWORK_SAMPLE (the cost is
    per image)."""
    from server.scoring.features import FeatureExtractor
    from tests.utils.competition import random_images

    extractor = FeatureExtractor(device=device, engine=engine)
    sample = {cls: random_images(NETWORK_SAMPLE, seed=i) for i, cls in enumerate(("with_mask", "without_mask"))}
    extractor.features_of_arrays(sample["with_mask"][:4])  # load the model
    started, cpu_started = time.perf_counter(), time.process_time()
    for images in sample.values():
        extractor.features_of_arrays(images)
    scale = n / NETWORK_SAMPLE
    return (time.perf_counter() - started) * scale, (time.process_time() - cpu_started) * scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images-per-class", type=int, default=1000)
    parser.add_argument("--train-per-class", type=int, default=None, help="Training images (default: as test).")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=2, help="Timed warm runs (the best is reported).")
    parser.add_argument("--warm-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--competition", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generated", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--only-warm", action="store_true",
                        help="Skip (a) pytorch-fid's CLI and (b) the cold `arena score` (a busy machine).")
    parser.add_argument("--precision", default="exact", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--runtimes-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trust-overhead", action="store_true",
                        help="Only time what intervals, diagnostics and evidence add (see the docstring).")
    args = parser.parse_args()
    if args.trust_overhead:
        result = trust_overhead(args)
        n = result["images_per_class"]
        print(f"\nWhat intervals, diagnostics and evidence add to warm scoring of 2 x {n} on {result['device']}:")
        for name, seconds in result["seconds"].items():
            print(f"  {name:<14}{seconds:>8.2f} s wall {result['cpu_seconds'][name]:>8.2f} s CPU"
                  + ("  (already in the scorer before)" if name == "distance" else ""))
        for engine, seconds in result["network_s_scaled"].items():
            print(f"  network ({engine}), 2 x {n} (scaled from 2 x {NETWORK_SAMPLE}): {seconds:.1f} s wall, "
                  f"{result['network_cpu_s_scaled'][engine]:.1f} s CPU; added {result['added_s']:.2f} s of "
                  f"{result['warm_before_s'][engine]:.1f} s = {result['overhead'][engine]:.1%} wall, "
                  f"{result['overhead_cpu'][engine]:.1%} CPU (target: at most 10%)")
        print(f"  load average (1 min) at the end: {result['load_average_1m']:.1f}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"trust-overhead-{result['device']}-{n}.json"
        out.write_text(json.dumps(result, indent=1))
        print(f"wrote {out}")
        return
    if args.warm_child:
        warm_child(args)
        return
    if args.runtimes_child:
        runtimes_child()
        return
    args.train_per_class = args.train_per_class or args.images_per_class
    summary = run(args)
    print_table(summary)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"scoring-{summary['device']}-{args.images_per_class}.json"
    out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
