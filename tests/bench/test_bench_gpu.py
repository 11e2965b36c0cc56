"""bench/gpu.py (`python -m bench.gpu`): the one-shot GPU check keeps working on machines without a GPU (--smoke),
and its GPU paths (device choice, AMP, precisions, the FLOP floor: bench/gpu_device.py) behave on the CPU as they
should."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import gpu, gpu_device

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_smoke_run_covers_every_part(tmp_path):
    """The whole script on the CPU with tiny sizes and a random-weight Inception of the real architecture (the
    real converted weights would add their conversion for no extra coverage): every part runs and reports."""
    out = tmp_path / "gpu.json"
    env = {**os.environ, "ARENA_DATA_DIR": str(tmp_path / "unused")}
    # The timeout only guards against a hang: about a minute on idle cores, 3.5 minutes at load 15, and over 10
    # minutes beside the whole suite on the shared 2-core development machine.
    result = subprocess.run([sys.executable, "-m", "bench.gpu", "--smoke", "--out", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(out.read_text())
    parts = summary["parts"]
    assert summary["device"] == "cpu" and summary["smoke"]
    assert set(summary["durations_s"]) == {"setup", *gpu.PARTS}

    scoring = parts["scoring"]
    (exact,) = scoring["rows"]
    assert exact["precision"] == "exact" and scoring["skipped"] == {"tf32": "needs CUDA", "fp16": "needs CUDA"}
    assert {"decode", "features", "distance", "total"} <= set(exact["timings"])
    assert exact["end_to_end_s"] >= exact["unzip_validate_s"] > 0 and math.isfinite(exact["raw_fid_sum"])
    assert exact["peak_source"] == "measured matrix product" and exact["floor_images_per_s"] > 0

    drain = parts["drain"]
    assert drain["entries"] == gpu.SMOKE.entries and drain["entries_per_minute"] > 0
    assert 0 <= drain["idle_share"] < 1

    training = parts["training"]
    assert {(r["model"], r["batch_size"], r["amp"]) for r in training["rows"]} == {
        (m, b, False) for m in gpu_model_names() for b in gpu.SMOKE.batch_sizes}
    assert all(r["images_per_s"] > 0 for r in training["rows"]) and "CUDA-only" in training["amp_skipped"]
    (overhead,) = training["overhead"]
    assert overhead["bare_images_per_s"] > 0 and overhead["trainer_images_per_s"] > 0

    strength = parts["strength"]
    assert [r["model"] for r in strength["rows"]] == gpu_model_names()
    for row in strength["rows"]:
        assert row["steps"] >= 1 and math.isfinite(row["fid_sum"])
        assert set(row["fid"]) == set(row["conditioning"]) == {"with_mask", "without_mask"}
    assert strength["strongest"] in gpu_model_names()
    for title in ("1. Scoring", "2. Drain", "3. Training", "4. Baselines", "Plan on", "Time: plan vs actual"):
        assert title in result.stdout


def gpu_model_names() -> list[str]:
    from baselines.registry import MODEL_NAMES

    return list(MODEL_NAMES)


def test_cuda_without_cuda_names_the_problem_and_the_fix(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu.main(["--device", "cuda", "--parts", "scoring"]) == 2
    error = capsys.readouterr().err
    assert "--device cuda: no CUDA device is visible" in error and "--device cpu" in error and "nvidia-smi" in error


def test_cpu_paths_leave_out_amp_and_the_cuda_precisions(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = gpu_device.bench_device("auto")
    assert cpu.type == "cpu"
    assert gpu_device.amp_modes(cpu) == (False,) and gpu_device.scoring_precisions(cpu) == ("exact",)
    cuda = torch.device("cuda")
    assert gpu_device.amp_modes(cuda) == (False, True)
    assert gpu_device.scoring_precisions(cuda) == ("exact", "tf32", "fp16")


def test_smoke_defaults_to_cpu_and_random_weights_and_the_real_run_to_auto():
    smoke, real = gpu.parse_args(["--smoke"]), gpu.parse_args([])
    assert (smoke.device, smoke.random_weights) == ("cpu", True)
    assert (real.device, real.random_weights) == ("auto", False)
    assert gpu.FULL.batch_sizes == (64, 256) and gpu.FULL.entries == 20 and gpu.FULL.images_per_class == 1000


def test_the_real_plan_fits_nine_minutes():
    from baselines.registry import MODEL_NAMES

    plan = gpu.FULL.plan(list(gpu.PARTS), len(MODEL_NAMES))
    assert list(plan) == ["setup", *gpu.PARTS] and sum(plan.values()) <= gpu.TIME_LIMIT_S
    assert plan["strength"] > len(MODEL_NAMES) * gpu.FULL.budget_s


def test_known_gpu_peaks_are_found_by_name_and_others_are_measured(monkeypatch):
    monkeypatch.setattr(gpu_device, "device_name", lambda device: "NVIDIA H200")
    assert gpu_device.peak_tflops(torch.device("cuda"), "fp16") == (989.4, "data sheet (H200)")
    monkeypatch.setattr(gpu_device, "device_name", lambda device: "NVIDIA H100 PCIe")
    assert gpu_device.peak_tflops(torch.device("cuda"), "exact") == (51.2, "data sheet (H100 PCIe)")
    monkeypatch.setattr(gpu_device, "device_name", lambda device: "NVIDIA L40")
    assert gpu_device.peak_tflops(torch.device("cuda"), "fp16") == (181.0, "data sheet (L40)")
    rate, source = gpu_device.peak_tflops(torch.device("cpu"), "exact")
    assert source == "measured matrix product" and rate > 0


def test_inception_flops_per_image_match_a_fresh_count():
    """The constant behind the FLOP floor, recounted on pytorch-fid's architecture (meta tensors: no compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    from server.scoring.network import empty_fid_inception

    with torch.device("meta"):
        net = empty_fid_inception().eval()
        images = torch.empty(1, 3, 299, 299)
    with FlopCounterMode(display=False) as counter:
        net(images)
    convolutions = counter.get_flop_counts()["Global"][torch.ops.aten.convolution]
    assert convolutions == pytest.approx(gpu_device.INCEPTION_FLOPS_PER_IMAGE, rel=1e-3)


def test_training_flags_return_to_torch_defaults_after_exact_scoring():
    defaults = dict(gpu_device.TORCH_DEFAULT_FLAGS)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32 = True, False  # what exact scoring sets
    try:
        assert gpu_device.restore_torch_default_flags() == defaults
        assert torch.backends.cudnn.deterministic == defaults["cudnn.deterministic"]
        assert torch.backends.cudnn.allow_tf32 == defaults["cudnn.allow_tf32"]
    finally:
        gpu_device.restore_torch_default_flags()


def test_strength_verdict_reads_the_target_and_the_order():
    rows = [{"model": m, "fid_sum": f} for m, f in
            [("mlp_cgan", 500), ("dcgan", 400), ("wgan_gp", 390), ("acgan", 380), ("infogan_style", 350),
             ("sngan", 300)]]
    verdict = gpu.strength_verdict(rows)
    assert verdict["strongest"] == "sngan" and verdict["strongest_vs_dcgan"] == pytest.approx(0.25)
    assert verdict["target_met"] and verdict["order_inversions"] == 0
    rows[-1]["fid_sum"] = 330  # 17.5% below dcgan: order still right, target missed
    rows[1]["fid_sum"], rows[2]["fid_sum"] = 400, 410  # wgan_gp worse than dcgan: one pair out of order
    verdict = gpu.strength_verdict(rows)
    assert not verdict["target_met"] and verdict["order_inversions"] == 1


def test_drain_summary_measures_the_window_and_idle_share():
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def at(seconds: float) -> str:
        return (start + timedelta(seconds=seconds)).isoformat()

    rows = [{"started_at": at(2), "finished_at": at(12)}, {"started_at": at(12), "finished_at": at(22)},
            {"started_at": at(25), "finished_at": at(30)}]
    summary = gpu.drain_summary(rows, start, warm_up_s=5.0, upload_s=1.0, images=2000)
    assert summary["window_s"] == 30 and summary["entries_per_minute"] == pytest.approx(6.0)
    assert summary["idle_share"] == pytest.approx(5 / 30) and summary["scoring_s_mean"] == pytest.approx(25 / 3)
