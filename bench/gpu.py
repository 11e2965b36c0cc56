"""One-shot GPU check: scoring, drain rate, training throughput and baseline strength, one command, under 9 minutes.

    make bench-gpu                                  # = python -m bench.gpu: a fresh demo competition, every part
    python -m bench.gpu --data DIR                  # any prepared competition directory
    python -m bench.gpu --parts scoring drain       # some parts
    python -m bench.gpu --budget-s 20               # seconds of training per baseline in part 4 (default 30)
    python -m bench.gpu --smoke                     # the same code with tiny sizes on the CPU (the test suite runs it)

Parts (each prints one table; everything goes to one JSON file in bench/results/):
1. scoring: one entry (images_per_class per class; 2 x 1,000 on the default demo) from zip bytes to report on a warm
   scorer, exact (fp32, TF32 off), tf32 and fp16, with the split unzip+validate / decode / features / distance /
   diagnostics (every timing key of the report), FID deltas against exact, and features images/s against the
   InceptionV3 FLOP floor of the device (bench/gpu_device.py: FLOPs per image `INCEPTION_FLOPS_PER_IMAGE`; peak rate
   from bench/gpu_peaks.json by device name, else a measured matrix product).
2. drain: `arena serve --no-worker` and one `arena worker --device DEVICE` as real processes on a fresh data dir;
   one warm-up entry, then `entries` uploads; entries per minute from the first upload to the last scored, and the
   worker's idle share of that window (from the submissions' started_at / finished_at).
3. training: images/s of every baseline at two batch sizes (64 and 256), fp32 and --amp (bf16 autocast, CUDA only),
   and the trainer's overhead against a bare loop of the same DCGAN (same modules and loss functions).
4. strength: every baseline trained for --budget-s seconds, sampled and scored on the competition: FID sum,
   per-class FID, the conditioning check, and whether the order weak -> strong (`MODEL_NAMES`) shows.

Never needs the network: the FID weights must be local (`arena weights import`, or ARENA_FID_WEIGHTS);
--random-weights uses a random network of the real architecture instead (timings valid, FID values meaningless),
as --smoke always does. The plan (seconds per part) is printed first and compared with the actual times at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.gpu_device import (
    INCEPTION_FLOPS_PER_IMAGE,
    PRECISIONS,
    BenchError,
    amp_modes,
    bench_device,
    device_name,
    peak_tflops,
    restore_torch_default_flags,
    scoring_precisions,
    timed,
)
from submissions.client import ArenaClient, SubmitError
from tests.utils.serve import check_alive, running_arena, running_server

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("scoring", "drain", "training", "strength")
TIME_LIMIT_S = 540  # the whole real run, model loads included, must fit in 9 minutes on one GPU
ADMIN_TOKEN = "gpu-bench-admin-token-0123456789abcdef"


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Everything that differs between the real run and --smoke; the code is the same."""

    images_per_class: int  # of the demo competition (the entry size); --data uses the competition's own
    train_per_class: int
    test_per_class: int
    scoring_repeats: int  # timed entries per precision (the best is reported)
    entries: int  # drain: uploads after the warm-up entry
    batch_sizes: tuple[int, int]
    warmup_steps: int
    timed_steps: int
    budget_s: float  # part 4: training seconds per baseline
    strength_batch_size: int | None  # part 4 (None: each model's recommended batch size)
    model_overrides: dict[str, Any]  # model config fields, set where a model has them (smoke: narrow networks)
    strength_per_class: int | None  # generated images per class (None: the competition's images_per_class)
    classifier_steps: int
    conditioning_per_class: int
    plan_s: dict[str, float]  # setup, scoring, drain, training; strength is planned from the budget

    def plan(self, parts: list[str], models: int) -> dict[str, float]:
        plan = {"setup": self.plan_s["setup"], **{p: self.plan_s[p] for p in parts if p != "strength"}}
        if "strength" in parts:
            plan["strength"] = models * self.budget_s + self.plan_s["strength_overhead"]
        return plan


FULL = Sizes(images_per_class=1000, train_per_class=300, test_per_class=200, scoring_repeats=2, entries=20,
             batch_sizes=(64, 256), warmup_steps=5, timed_steps=25, budget_s=30.0, strength_batch_size=None,
             model_overrides={}, strength_per_class=None,
             classifier_steps=300, conditioning_per_class=200,
             plan_s={"setup": 40, "scoring": 45, "drain": 90, "training": 75, "strength_overhead": 50})
SMOKE = Sizes(images_per_class=2, train_per_class=6, test_per_class=4, scoring_repeats=1, entries=2,
              batch_sizes=(4, 8), warmup_steps=1, timed_steps=1, budget_s=0.5, strength_batch_size=4,
              model_overrides={"width": 4}, strength_per_class=2,
              classifier_steps=3, conditioning_per_class=4,
              plan_s={"setup": 20, "scoring": 5, "drain": 30, "training": 10, "strength_overhead": 15})


@dataclasses.dataclass
class Context:
    args: argparse.Namespace
    sizes: Sizes
    device: torch.device
    work: Path
    weights: Path
    competition: Any  # server.competition_dir.Competition
    scorer: Any  # the exact server.scoring.Scorer that built the references (model and references loaded)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


# -- setup --------------------------------------------------------------------------------------------------------


def fid_weights(args: argparse.Namespace, work: Path) -> Path:
    """The local FID weights (never downloaded), or a random network of the real architecture."""
    if args.random_weights:
        from tests.utils.inception import install_random_fid_weights

        path = install_random_fid_weights(work / "torch-home")
    else:
        from server.config import get_settings
        from server.scoring.weights import WeightsNotFoundError, resolve_weights

        try:
            path = resolve_weights(get_settings().fid_weights, allow_download=False).path
        except WeightsNotFoundError as exc:
            raise BenchError(f"{exc}\nOr pass --random-weights: timings stay valid, FID values become "
                             "meaningless.") from exc
    # Every process of this benchmark (the server, the worker) uses exactly this file and never downloads.
    os.environ.update(ARENA_FID_WEIGHTS=str(path), ARENA_FID_WEIGHTS_DOWNLOAD="false")
    return Path(path)


def bench_competition(args: argparse.Namespace, sizes: Sizes, work: Path):
    """--data's competition, else a fresh demo competition of the run's sizes."""
    from server.competition_dir import Competition
    from server.data import make_demo_competition

    if args.data is not None:
        return Competition.load(args.data)
    return make_demo_competition(work / "demo", train_per_class=sizes.train_per_class,
                                 test_per_class=sizes.test_per_class, images_per_class=sizes.images_per_class)


def setup(args: argparse.Namespace, sizes: Sizes, device: torch.device, work: Path) -> tuple[Context, dict]:
    from server.scoring import FeatureExtractor, Scorer

    started = time.perf_counter()
    weights = fid_weights(args, work)
    competition = bench_competition(args, sizes, work)
    loaded = time.perf_counter()
    scorer = Scorer(FeatureExtractor(device=device.type, weights_path=weights, allow_download=False))
    scorer.prepare(competition)
    context = Context(args, sizes, device, work, weights, competition, scorer)
    return context, {"competition": str(competition.root), "slug": competition.slug,
                     "images_per_class": competition.config.images_per_class,
                     "weights": "random (timings only)" if args.random_weights else str(weights),
                     "competition_s": loaded - started, "references_s": time.perf_counter() - loaded}


def entry_images(competition, seed: int) -> dict[str, np.ndarray]:
    """An entry for any competition: its training images, cycled to images_per_class, flipped, with pixel noise
    (close to the data, so the FIDs sit where real entries do, without copying any image exactly)."""
    from baselines.data import load_training_data

    data = load_training_data(competition.root)
    rng = np.random.default_rng(seed)
    images = {}
    for index, cls in enumerate(competition.classes):
        own = data.images[data.labels == index].squeeze(1).numpy()
        picked = own[np.arange(competition.config.images_per_class) % len(own)][:, :, ::-1]
        images[cls] = (picked + rng.normal(0, 6, picked.shape)).clip(0, 255).astype(np.uint8)
    return images


def entry_zip(competition, seed: int) -> bytes:
    from submissions import SubmissionSpec, pack

    buffer = io.BytesIO()
    pack(entry_images(competition, seed), buffer, SubmissionSpec.from_competition(competition))
    return buffer.getvalue()


# -- part 1: scoring ----------------------------------------------------------------------------------------------


def part_scoring(ctx: Context) -> dict:
    data = entry_zip(ctx.competition, seed=1)
    rows = [score_entry(ctx, data, precision) for precision in scoring_precisions(ctx.device)]
    exact = rows[0]
    for row in rows:
        row["fid_delta_vs_exact"] = abs(row["raw_fid_sum"] - exact["raw_fid_sum"])
    skipped = {p: "needs CUDA" for p in PRECISIONS if p not in scoring_precisions(ctx.device)}
    result = {"entry_mb": len(data) / 1e6, "images": 2 * ctx.competition.config.images_per_class,
              "flops_per_image": INCEPTION_FLOPS_PER_IMAGE, "rows": rows, "skipped": skipped,
              "targets": {"exact_end_to_end_s_max": 1.5, "fp16_fid_delta_max": 0.05}}
    print_scoring(ctx, result)
    return result


def score_entry(ctx: Context, data: bytes, precision: str) -> dict:
    from server.scoring import FeatureExtractor, Scorer
    from submissions import SubmissionSpec, validate_zip

    scorer = ctx.scorer if precision == "exact" else Scorer(FeatureExtractor(
        device=ctx.device.type, precision=precision, weights_path=ctx.weights, allow_download=False))
    scorer.prepare(ctx.competition, progress=False)
    spec = SubmissionSpec.from_competition(ctx.competition)
    warm = validate_zip(io.BytesIO(data), spec).images
    scorer.score(ctx.competition, {cls: images[:2] for cls, images in warm.items()})  # model load, cuDNN warm-up
    runs = [timed_entry(ctx, scorer, data, spec) for _ in range(ctx.sizes.scoring_repeats)]
    best = min(runs, key=lambda run: run["end_to_end_s"])
    report = best.pop("report")
    images = sum(score.n_images for score in report.classes.values())
    peak, source = peak_tflops(ctx.device, precision)
    floor = peak * 1e12 / INCEPTION_FLOPS_PER_IMAGE
    features_per_s = images / report.timings["features"]
    if scorer is not ctx.scorer:
        del scorer  # one extra InceptionV3 at a time on the device
        if ctx.cuda:
            torch.cuda.empty_cache()
    return {"precision": precision, **best, "timings": report.timings, "score_all": report.score_all,
            "raw_fid": {cls: s.raw_fid_all for cls, s in report.classes.items()},
            "raw_fid_sum": sum(s.raw_fid_all for s in report.classes.values()),
            "features_images_per_s": features_per_s, "peak_tflops": peak, "peak_source": source,
            "floor_images_per_s": floor, "share_of_floor": features_per_s / floor}


def timed_entry(ctx: Context, scorer, data: bytes, spec) -> dict:
    from submissions import validate_zip

    decoded, unzip_s = timed(ctx.device, lambda: validate_zip(io.BytesIO(data), spec))
    report, score_s = timed(ctx.device, lambda: scorer.score(ctx.competition, decoded.images))
    return {"end_to_end_s": unzip_s + score_s, "unzip_validate_s": unzip_s, "report": report}


def print_scoring(ctx: Context, result: dict) -> None:
    keys = list(dict.fromkeys(key for row in result["rows"] for key in row["timings"]))
    print_table(
        f"1. Scoring one {result['images']}-image entry ({result['entry_mb']:.1f} MB zip), warm, on "
        f"{device_name(ctx.device)}; InceptionV3 {INCEPTION_FLOPS_PER_IMAGE / 1e9:.2f} GFLOP/image",
        ["precision", "zip -> report s", "unzip+validate s", *[f"{k} s" for k in keys], "FID sum",
         "delta vs exact", "features img/s", "floor img/s (peak)", "share of floor"],
        [[r["precision"], f"{r['end_to_end_s']:.3f}", f"{r['unzip_validate_s']:.3f}",
          *[f"{r['timings'].get(k, float('nan')):.3f}" for k in keys], f"{r['raw_fid_sum']:.4f}",
          f"{r['fid_delta_vs_exact']:.4f}", rate(r["features_images_per_s"]),
          f"{rate(r['floor_images_per_s'])} ({rate(r['peak_tflops'])} TFLOP/s, {r['peak_source']})",
          f"{r['share_of_floor']:.0%}"] for r in result["rows"]],
    )
    for precision, reason in result["skipped"].items():
        print(f"{precision}: skipped ({reason})")
    exact = result["rows"][0]["end_to_end_s"]
    print(f"targets: exact <= 1.5 s per entry: {exact:.2f} s ({met(exact <= 1.5)})"
          + "".join(f"; fp16 delta < 0.05 FID: {r['fid_delta_vs_exact']:.4f} ({met(r['fid_delta_vs_exact'] < 0.05)})"
                    for r in result["rows"] if r["precision"] == "fp16"))


# -- part 2: drain ------------------------------------------------------------------------------------------------


def part_drain(ctx: Context) -> dict:
    data_dir = ctx.work / "drain-data"
    (data_dir / "competitions").mkdir(parents=True, exist_ok=True)
    link = data_dir / "competitions" / ctx.competition.slug
    if not link.exists():
        link.symlink_to(ctx.competition.root.resolve(), target_is_directory=True)
    env = {**os.environ, "ARENA_DATA_DIR": str(data_dir), "ARENA_ADMIN_TOKEN": ADMIN_TOKEN}
    server_log, worker_log = ctx.work / "server.log", ctx.work / "worker.log"
    # The server is healthy (it migrated the database) before the worker opens the database.
    with (running_server(env, server_log, "--no-worker") as base,
          running_arena(env, worker_log, "worker", "--device", ctx.device.type) as worker):
        result = drain(ctx, base, worker, worker_log)
    print_table(f"2. Drain: `arena serve --no-worker` + one `arena worker --device {ctx.device.type}`, "
                f"{result['entries']} entries of {result['images']} images",
                ["measure", "value"],
                [["warm-up entry (worker start, model, references, first score)", f"{result['warm_up_s']:.1f} s"],
                 ["uploads (all accepted and queued)", f"{result['upload_s']:.1f} s"],
                 ["first upload -> last scored", f"{result['window_s']:.1f} s"],
                 ["entries per minute", f"{result['entries_per_minute']:.1f}"],
                 ["worker scoring per entry (started -> finished)", f"{result['scoring_s_mean']:.2f} s"],
                 ["worker idle share of the window", f"{result['idle_share']:.0%}"]])
    return result


def drain(ctx: Context, base: str, worker: subprocess.Popen, log: Path) -> dict:
    slug, data = ctx.competition.slug, entry_zip(ctx.competition, seed=2)
    organizer = ArenaClient(base, ADMIN_TOKEN, timeout=600)
    teams = [ArenaClient(base, organizer.admin_create_team(slug, f"gpu-bench-{i:02d}", [], is_baseline=False)["token"],
                         http=organizer.http) for i in range(ctx.sizes.entries + 1)]
    started = time.perf_counter()
    warm_id = teams[0].upload_bytes(data, "entry.zip", slug)["id"]
    wait_scored(organizer, [warm_id], worker, log)
    warm_up_s = time.perf_counter() - started
    window_start = datetime.now(UTC)
    started = time.perf_counter()
    # The same bytes from every team (duplicates are refused per team only): the work per entry is identical.
    with ThreadPoolExecutor(len(teams) - 1) as uploads:
        ids = list(uploads.map(lambda team: team.upload_bytes(data, "entry.zip", slug)["id"], teams[1:]))
    upload_s = time.perf_counter() - started
    rows = wait_scored(organizer, ids, worker, log)
    return drain_summary(rows, window_start, warm_up_s, upload_s, 2 * ctx.competition.config.images_per_class)


def wait_scored(organizer: ArenaClient, ids: list[int], worker: subprocess.Popen, log: Path,
                timeout_s: float = 900) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        check_alive(worker, log)
        rows = [row for row in organizer.admin_submissions(limit=1000) if row["id"] in set(ids)]
        failed = [row for row in rows if row["status"] == "failed"]
        if failed:
            raise BenchError(f"submission {failed[0]['id']} failed: {failed[0]['error']}")
        if len(rows) == len(ids) and all(row["status"] == "scored" for row in rows):
            return rows
        time.sleep(0.2)
    raise BenchError(f"submissions {ids} not all scored within {timeout_s:.0f} s (see {log})")


def drain_summary(rows: list[dict], window_start: datetime, warm_up_s: float, upload_s: float, images: int) -> dict:
    def moment(value: str) -> datetime:
        stamp = datetime.fromisoformat(value)
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)

    spans = sorted((moment(r["started_at"]), moment(r["finished_at"])) for r in rows)
    window = (max(end for _, end in spans) - window_start).total_seconds()
    busy = sum((end - max(start, window_start)).total_seconds() for start, end in spans)  # one worker: no overlap
    return {"entries": len(rows), "images": images, "warm_up_s": warm_up_s, "upload_s": upload_s,
            "window_s": window, "entries_per_minute": 60 * len(rows) / window,
            "scoring_s_mean": sum((end - start).total_seconds() for start, end in spans) / len(spans),
            "idle_share": max(0.0, 1 - busy / window)}


# -- part 3: training throughput ----------------------------------------------------------------------------------


def model_overrides(ctx: Context, model: str) -> dict[str, Any]:
    from baselines.registry import load_model

    fields = {field.name for field in dataclasses.fields(load_model(model).Config)}
    return {key: value for key, value in ctx.sizes.model_overrides.items() if key in fields}


def new_trainer(ctx: Context, model: str, batch_size: int | None, amp: bool, **options: Any):
    from baselines.train import TrainOptions, new_run

    return new_run(TrainOptions(model=model, data=str(ctx.competition.root), out=str(ctx.work / "runs"),
                                device=ctx.device.type, amp=amp, batch_size=batch_size, eval_every=0,
                                eval_holdout=0, sample_every=10**9, checkpoint_every=10**9,
                                overrides=model_overrides(ctx, model), **options))


def trainer_images_per_s(ctx: Context, model: str, batch_size: int, amp: bool) -> float:
    """The trainer's train_step, after warm-up steps (the same measure as bench/training.py)."""
    trainer = new_trainer(ctx, model, batch_size, amp, steps=10**9)
    steps = range(1, ctx.sizes.warmup_steps + ctx.sizes.timed_steps + 1)
    for step in steps[: ctx.sizes.warmup_steps]:
        trainer.train_step(step)
    _, seconds = timed(ctx.device, lambda: [trainer.train_step(s) for s in steps[ctx.sizes.warmup_steps :]])
    return ctx.sizes.timed_steps * trainer.config.batch_size / seconds


def trainer_loop_images_per_s(ctx: Context, batch_size: int, amp: bool) -> float:
    """DCGAN through Trainer.run (data order, loss logging, progress bar, EMA hook), less its one-off end outputs
    (the last sample grid and checkpoint, written once per run however long it is)."""
    warmup, steps = ctx.sizes.warmup_steps, ctx.sizes.timed_steps
    trainer = new_trainer(ctx, "dcgan", batch_size, amp, steps=warmup)
    trainer.run()
    trainer.total_steps = warmup + steps
    _, seconds = timed(ctx.device, trainer.run)
    _, end_outputs = timed(ctx.device, lambda: (trainer.save_samples(), trainer.save_checkpoint()))
    return steps * trainer.config.batch_size / max(seconds - end_outputs, 1e-9)


def bare_loop_images_per_s(ctx: Context, batch_size: int, amp: bool) -> float:
    """The same DCGAN (modules, loss functions, Adam, autocast) in the shortest loop: random batches on the device."""
    from baselines import dcgan
    from baselines.data import load_training_data, to_model_range

    data = load_training_data(ctx.competition.root)
    images, labels = data.images.to(ctx.device), data.labels.to(ctx.device)
    config = dcgan.Config(batch_size=batch_size, **model_overrides(ctx, "dcgan"))
    torch.manual_seed(0)
    G = dcgan.Generator(config, len(data.classes)).to(ctx.device)
    D = dcgan.Discriminator(config, len(data.classes)).to(ctx.device)
    opt_G = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=(config.beta1, config.beta2))
    opt_D = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=(config.beta1, config.beta2))

    def autocast():
        return torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=amp and ctx.cuda)

    def step() -> None:
        index = torch.randint(len(images), (batch_size,), device=ctx.device)
        real, y = to_model_range(images[index]), labels[index]
        with autocast():
            fake = G(torch.randn(batch_size, config.z_dim, device=ctx.device), y)
            d_loss, _ = dcgan.discriminator_loss(D, real, fake.detach(), y, config)
        opt_D.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_D.step()
        with autocast():
            g_loss, _ = dcgan.generator_loss(D, fake, y, config)
        opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_G.step()

    for _ in range(ctx.sizes.warmup_steps):
        step()
    _, seconds = timed(ctx.device, lambda: [step() for _ in range(ctx.sizes.timed_steps)])
    return ctx.sizes.timed_steps * batch_size / seconds


def part_training(ctx: Context) -> dict:
    from baselines.registry import MODEL_NAMES

    flags = restore_torch_default_flags()
    rows = [{"model": model, "batch_size": batch, "amp": amp,
             "images_per_s": trainer_images_per_s(ctx, model, batch, amp)}
            for model in MODEL_NAMES for batch in ctx.sizes.batch_sizes for amp in amp_modes(ctx.device)]
    overhead = [trainer_overhead(ctx, ctx.sizes.batch_sizes[0], amp) for amp in amp_modes(ctx.device)]
    result = {"torch_flags": flags, "rows": rows, "overhead": overhead,
              "amp_skipped": None if ctx.cuda else "AMP (bfloat16 autocast) is CUDA-only; the trainer turns it off on "
                                                   "CPU", "target_overhead_max": 0.10}
    print_training(ctx, result)
    return result


def trainer_overhead(ctx: Context, batch_size: int, amp: bool) -> dict:
    bare = bare_loop_images_per_s(ctx, batch_size, amp)
    trainer = trainer_loop_images_per_s(ctx, batch_size, amp)
    return {"batch_size": batch_size, "amp": amp, "bare_images_per_s": bare, "trainer_images_per_s": trainer,
            "overhead": 1 - trainer / bare}


def print_training(ctx: Context, result: dict) -> None:
    modes = amp_modes(ctx.device)
    columns = [(batch, amp) for batch in ctx.sizes.batch_sizes for amp in modes]
    by_key = {(r["model"], r["batch_size"], r["amp"]): r["images_per_s"] for r in result["rows"]}
    models = list(dict.fromkeys(r["model"] for r in result["rows"]))
    print_table(f"3. Training images/s on {device_name(ctx.device)} (train_step after {ctx.sizes.warmup_steps} "
                f"warm-up steps, {ctx.sizes.timed_steps} timed)",
                ["model", *[f"batch {b} {'amp' if a else 'fp32'}" for b, a in columns]],
                [[m, *[rate(by_key[(m, b, a)]) for b, a in columns]] for m in models])
    if result["amp_skipped"]:
        print(f"--amp: skipped ({result['amp_skipped']})")
    for row in result["overhead"]:
        print(f"trainer overhead vs a bare DCGAN loop, batch {row['batch_size']} {'amp' if row['amp'] else 'fp32'}: "
              f"{rate(row['trainer_images_per_s'])} vs {rate(row['bare_images_per_s'])} images/s = "
              f"{row['overhead']:+.1%} ({met(row['overhead'] <= 0.10)}: <= 10%)")


# -- part 4: baseline strength ------------------------------------------------------------------------------------


def part_strength(ctx: Context) -> dict:
    from baselines.conditioning import check_runs
    from baselines.registry import MODEL_NAMES

    restore_torch_default_flags()
    runs = {model: train_for_budget(ctx, model) for model in MODEL_NAMES}
    rows = [{"model": model, **score_run(ctx, ctx.scorer, run)} for model, run in runs.items()]
    reports = check_runs(list(runs.values()), per_class=ctx.sizes.conditioning_per_class,
                         classifier_steps=ctx.sizes.classifier_steps, device=ctx.device.type)
    for row, (_, report) in zip(rows, reports, strict=True):
        row["conditioning"] = report.accuracy_per_label
        row["classifier_accuracy_on_real"] = report.classifier_accuracy_on_real
    result = {"budget_s": ctx.sizes.budget_s, "rows": rows, **strength_verdict(rows)}
    print_strength(ctx, result)
    return result


def train_for_budget(ctx: Context, model: str) -> Path:
    trainer = new_trainer(ctx, model, ctx.sizes.strength_batch_size, False, steps=10**9)
    trainer.run(max_seconds=ctx.sizes.budget_s)
    return trainer.run_dir


def score_run(ctx: Context, scorer, run_dir: Path) -> dict:
    from baselines.data import to_uint8
    from baselines.generate import load_generator, sample

    G, run_config = load_generator(run_dir, device=ctx.device.type)
    per_class = ctx.sizes.strength_per_class or ctx.competition.config.images_per_class
    images = sample(G, ctx.competition.classes, per_class, run_config["model_config"]["z_dim"])
    report = scorer.score(ctx.competition, {cls: to_uint8(batch) for cls, batch in images.items()})
    steps = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    return {"steps": steps, "images_seen": steps * run_config["model_config"]["batch_size"],
            "fid": {cls: s.raw_fid_all for cls, s in report.classes.items()},
            "fid_sum": sum(s.raw_fid_all for s in report.classes.values()),
            "penalized": {cls: s.penalized for cls, s in report.classes.items()}}


def strength_verdict(rows: list[dict]) -> dict:
    """The target: the strongest baseline >= 20% lower FID sum than dcgan; and the order weak -> strong."""
    fids = {row["model"]: row["fid_sum"] for row in rows}
    strongest = min(fids, key=fids.__getitem__)
    listed = [row["model"] for row in rows]  # MODEL_NAMES: weakest first
    by_fid = sorted(listed, key=lambda m: -fids[m])  # worst first
    inversions = sum(1 for i, a in enumerate(listed) for b in listed[i + 1 :] if fids[b] > fids[a])
    return {"strongest": strongest, "strongest_vs_dcgan": 1 - fids[strongest] / fids["dcgan"],
            "order_by_fid_worst_first": by_fid, "order_inversions": inversions,
            "target_met": fids[strongest] <= 0.8 * fids["dcgan"] and strongest == listed[-1]}


def print_strength(ctx: Context, result: dict) -> None:
    classes = ctx.competition.classes
    rows = result["rows"]
    print_table(f"4. Baselines after {result['budget_s']:g} s of training each on {device_name(ctx.device)}, "
                f"scored on {ctx.competition.slug} (raw FID vs all test images; lower is better)",
                ["model", "steps", "images seen", "FID sum", *[f"FID {c}" for c in classes],
                 *[f"cond. {c}" for c in classes], "penalized"],
                [[r["model"], r["steps"], r["images_seen"], f"{r['fid_sum']:.1f}",
                  *[f"{r['fid'][c]:.1f}" for c in classes], *[f"{r['conditioning'][c]:.0%}" for c in classes],
                  ", ".join(c for c, p in r["penalized"].items() if p) or "-"] for r in rows])
    print(f"conditioning classifier on held-aside real images: {rows[0]['classifier_accuracy_on_real']:.0%}")
    print(f"strongest: {result['strongest']}, {result['strongest_vs_dcgan']:.0%} lower FID sum than dcgan "
          f"(target >= 20%, strongest = {rows[-1]['model']}: {met(result['target_met'])}); worst to best: "
          f"{' > '.join(result['order_by_fid_worst_first'])} ({result['order_inversions']} pairs out of order)")


# -- the run ------------------------------------------------------------------------------------------------------


def rate(value: float) -> str:
    """Whole numbers for GPU-sized rates, three significant digits for CPU-sized ones."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """A Markdown table (pasteable into docs/BENCHMARKS.md)."""
    cells = [[str(x) for x in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        print("| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    sys.stdout.flush()


PART_FUNCTIONS: dict[str, Callable[[Context], dict]] = {
    "scoring": part_scoring, "drain": part_drain, "training": part_training, "strength": part_strength}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a prepared competition directory (default: a fresh demo one)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--budget-s", type=float, help="part 4: training seconds per baseline (default 30; smoke 0.5)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, CPU by default, random FID weights")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: auto (smoke: cpu)")
    parser.add_argument("--random-weights", action="store_true",
                        help="a random network of the real architecture: timings valid, FIDs meaningless")
    parser.add_argument("--threads", type=int, help="torch CPU threads here and in the server and worker (default: "
                        "torch's; smoke: 1, since a busy shared CPU stalls with more)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed afterwards)")
    parser.add_argument("--out", type=Path, help="the JSON file (default: bench/results/gpu-DEVICE-TIME.json)")
    args = parser.parse_args(argv)
    args.device = args.device or ("cpu" if args.smoke else "auto")
    args.random_weights = args.random_weights or args.smoke
    args.threads = args.threads or (1 if args.smoke else None)
    return args


def limit_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
        os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))  # the server and the worker


def run(args: argparse.Namespace, work: Path) -> dict:
    from baselines.registry import MODEL_NAMES

    device = bench_device(args.device)
    limit_threads(args.threads)
    sizes = SMOKE if args.smoke else FULL
    if args.budget_s is not None:
        sizes = dataclasses.replace(sizes, budget_s=args.budget_s)
    parts = [p for p in PARTS if p in args.parts]
    plan = sizes.plan(parts, len(MODEL_NAMES))
    print_table(f"Plan on {device_name(device)} ({'smoke' if args.smoke else 'full'} sizes; limit "
                f"{TIME_LIMIT_S} s for the real run)", ["part", "planned s"],
                [*[[p, f"{s:.0f}"] for p, s in plan.items()], ["total", f"{sum(plan.values()):.0f}"]])
    started = time.perf_counter()
    ctx, setup_result = setup(args, sizes, device, work)
    result: dict[str, Any] = {"setup": setup_result}
    durations = {"setup": time.perf_counter() - started}
    for part in parts:
        part_started = time.perf_counter()
        result[part] = PART_FUNCTIONS[part](ctx)
        durations[part] = time.perf_counter() - part_started
    total = time.perf_counter() - started
    print_table("Time: plan vs actual", ["part", "planned s", "actual s"],
                [*[[p, f"{plan[p]:.0f}", f"{s:.1f}"] for p, s in durations.items()],
                 ["total", f"{sum(plan.values()):.0f}", f"{total:.1f}"]])
    limit = "the limit is for the real run" if args.smoke else f"{met(total <= TIME_LIMIT_S)} (<= {TIME_LIMIT_S} s)"
    print(f"whole run {total:.0f} s: {limit}")
    machine = {"device": device_name(device), "torch": torch.__version__, "cuda": torch.version.cuda,
               "python": platform.python_version(), "cpus": os.cpu_count()}
    return {"machine": machine, "device": device.type, "smoke": args.smoke, "sizes": dataclasses.asdict(sizes),
            "plan_s": plan, "durations_s": durations, "total_s": total, "within_limit": total <= TIME_LIMIT_S,
            "parts": result}


def default_out(summary: dict) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return ROOT / "bench" / "results" / f"gpu-{'smoke-' if summary['smoke'] else ''}{summary['device']}-{stamp}.json"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="arena-bench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        summary = run(args, work)
    except (BenchError, SubmitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    out = args.out or default_out(summary)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
