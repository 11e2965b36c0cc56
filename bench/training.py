"""Benchmark the baselines: training throughput per model, then FID sums and the conditioning check at equal wall time.

    python -m bench.training                                    # demo competition, 120 s of training per model
    python -m bench.training --budget-s 900 --device cuda       # the GPU version
    python -m bench.training --data DIR --models dcgan sngan    # any competition directory, some models
    python -m bench.training --skip-quality                     # throughput only
    python -m bench.training --skip-throughput --budget-s 60 --fid-images 50 --reference-images 100   # shared CPU

Throughput: images/s of real training steps (D and G updates, recommended batch size), after warm-up steps.
Quality: each model trains for the same wall-clock budget, samples --fid-images per class (default: the
competition's images_per_class; EMA weights where present), and the scoring engine's `fid_of_images` computes each
class's FID against the held-out test images (--reference-images of them; default all). With the defaults this is
the server's raw FID over all test images (before the memorization penalty); smaller counts make a quicker, biased
(higher) FID that still ranks models run with the same counts. The conditioning check classifies each label's
samples with a small CNN trained on the real training images. Results go to bench/results/baselines.json; the
quality runs' folders (with their last sample grid) to bench/results/runs/.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from baselines.conditioning import check_runs
from baselines.data import to_uint8
from baselines.generate import load_generator, sample
from baselines.registry import MODEL_NAMES
from baselines.train import TrainOptions, new_run, resolve_device
from server.competition_dir import Competition

RESULTS = Path("bench/results")


def demo_competition(root: Path) -> Competition:
    """The procedural demo faces of `arena data demo`, written once and reused."""
    from server.data.demo import make_demo_competition

    return make_demo_competition(root)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def throughput(model: str, data: Path, device: str, steps: int, warmup: int, amp: bool, out: Path) -> dict:
    trainer = new_run(TrainOptions(model=model, data=str(data), out=str(out), device=device, amp=amp, steps=10**9,
                                   eval_holdout=0))
    trainer.G.train()
    trainer.D.train()
    for step in range(1, warmup + 1):
        trainer.train_step(step)
    synchronize(trainer.device)
    started = time.perf_counter()
    for step in range(warmup + 1, warmup + steps + 1):
        trainer.train_step(step)
    synchronize(trainer.device)
    seconds = time.perf_counter() - started
    batch = trainer.config.batch_size
    return {"model": model, "batch_size": batch, "steps": steps, "seconds": seconds,
            "images_per_s": steps * batch / seconds}


def train_for(model: str, data: Path, device: str, budget_s: float, amp: bool, out: Path) -> Path:
    trainer = new_run(TrainOptions(model=model, data=str(data), out=str(out), device=device, amp=amp, steps=10**9,
                                   sample_every=10**9, checkpoint_every=10**9, eval_every=10**9, eval_holdout=0))
    trainer.run(max_seconds=budget_s)
    return trainer.run_dir


def test_references(competition: Competition, extractor, per_class: int | None) -> dict:
    """Reference statistics of each class's held-out test images (the first `per_class` in manifest order)."""
    from server.scoring import ReferenceStats

    references = {}
    for cls in competition.classes:
        features = extractor.features_of_files(competition.test_files(cls)[:per_class], progress=True, label=cls)
        references[cls] = ReferenceStats.of_features(features, extractor.device)
    return references


def score_run(run_dir: Path, competition: Competition, extractor, references: dict, per_class: int,
              device: str) -> dict:
    from server.scoring import fid_of_images

    G, run_config = load_generator(run_dir, device=device)
    images = sample(G, competition.classes, per_class, run_config["model_config"]["z_dim"])
    fids = {cls: fid_of_images(references[cls], to_uint8(images[cls]), extractor) for cls in competition.classes}
    steps = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    return {"steps": steps, "images_seen": steps * run_config["model_config"]["batch_size"],
            "fid_sum": sum(fids.values()), "fid": fids}


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=False)]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="competition directory (default: a demo competition)")
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: the shared 2-core machine stalls with more)")
    parser.add_argument("--throughput-steps", type=int, default=5)
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=120.0, help="training wall time per model")
    parser.add_argument("--fid-images", type=int, help="generated images per class (default: images_per_class)")
    parser.add_argument("--reference-images", type=int, help="test images per class for the FID (default: all)")
    parser.add_argument("--skip-quality", action="store_true", help="throughput only")
    parser.add_argument("--skip-throughput", action="store_true", help="quality only")
    parser.add_argument("--out", type=Path, default=RESULTS / "baselines.json")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    competition = demo_competition(args.data or RESULTS / "demo-competition")
    machine = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or
               platform.machine(), "threads": args.threads, "torch": torch.__version__}
    results: dict = {"machine": machine, "data": str(competition.root), "budget_s": args.budget_s}

    with tempfile.TemporaryDirectory() as scratch:
        if not args.skip_throughput:
            results["throughput"] = measure_throughput(args, competition, device, Path(scratch))
        if not args.skip_quality:
            results["quality"] = quality(args, competition, device, RESULTS / "runs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


def measure_throughput(args, competition: Competition, device: torch.device, scratch: Path) -> list[dict]:
    rows = [
        throughput(m, competition.root, device.type, args.throughput_steps, args.warmup_steps, args.amp, scratch)
        for m in args.models
    ]
    print_table(f"Training throughput ({device.type}, {args.threads} CPU thread(s))", ["model", "batch", "images/s"],
                [[r["model"], r["batch_size"], f"{r['images_per_s']:.1f}"] for r in rows])
    return rows


def quality(args, competition: Competition, device: torch.device, runs_root: Path) -> list[dict]:
    from server.scoring import FeatureExtractor

    extractor = FeatureExtractor(device=device.type, allow_download=False)
    references = test_references(competition, extractor, args.reference_images)
    per_class = args.fid_images or competition.config.images_per_class
    runs = {m: train_for(m, competition.root, device.type, args.budget_s, args.amp, runs_root) for m in args.models}
    rows = [{"model": m, **score_run(run, competition, extractor, references, per_class, device.type)}
            for m, run in runs.items()]
    for row, (_, report) in zip(rows, check_runs(list(runs.values()), device=device.type), strict=True):
        row["conditioning"] = report.accuracy_per_label
        row["classifier_accuracy_on_real"] = report.classifier_accuracy_on_real
    print_table(
        f"FID sum on {competition.slug} after {args.budget_s:.0f} s of training each, {per_class} samples per class vs "
        f"{args.reference_images or 'all'} test images (lower is better)",
        ["model", "steps", "images seen", "FID sum", *[f"FID {c}" for c in competition.classes],
         *[f"cond. {c}" for c in competition.classes]],
        [[r["model"], r["steps"], r["images_seen"], f"{r['fid_sum']:.1f}",
          *[f"{r['fid'][c]:.1f}" for c in competition.classes],
          *[f"{r['conditioning'][c]:.0%}" for c in competition.classes]] for r in rows],
    )
    print(f"conditioning classifier accuracy on held-aside real training images: "
          f"{rows[0]['classifier_accuracy_on_real']:.0%}")
    return rows


if __name__ == "__main__":
    main()
