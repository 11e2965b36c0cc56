"""The shared trainer: run folder contents, determinism, and exact resume."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from baselines.train import TrainOptions, checkpoint_paths, new_run, resume_run

LOSS_KEYS = ("d_loss", "g_loss")


def options(competition, tmp_path, model="sngan", **changes) -> TrainOptions:
    settings = {
        "model": model, "data": str(competition.root), "out": str(tmp_path / "runs"), "steps": 4, "batch_size": 4,
        "log_every": 1, "sample_every": 2, "checkpoint_every": 2,
        "overrides": {} if model == "mlp_cgan" else {"width": 8},  # mlp_cgan has no width setting
    }
    return TrainOptions(**{**settings, **changes})


def losses(run_dir) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{"step": r["step"], **{k: r[k] for k in LOSS_KEYS if k in r}} for r in records]


def test_tiny_run_writes_config_checkpoints_samples_and_metrics(competition, tmp_path):
    trainer = new_run(options(competition, tmp_path))
    trainer.run()
    run_dir = trainer.run_dir
    assert run_dir.name == "00000-sngan"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model_config"]["width"] == 8 and config["model_config"]["ema_decay"] == 0.999
    assert config["data"]["competition"] == str(competition.root.resolve())

    assert [p.name for p in checkpoint_paths(run_dir)] == ["step-0000002.pt", "step-0000004.pt"]
    state = torch.load(checkpoint_paths(run_dir)[-1], weights_only=False)
    assert {"G", "D", "opt_G", "opt_D", "ema", "config", "step", "rng"} <= set(state)
    assert state["step"] == 4 and state["ema"] is not None

    grid = Image.open(run_dir / "samples" / "step-0000004.png")
    assert grid.size == (8 * 66 + 2, 2 * 66 + 2)  # 8 columns, one row per class, 2-pixel padding

    records = losses(run_dir)
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(set(LOSS_KEYS) <= set(r) for r in records)


def test_runs_get_numbered_folders(competition, tmp_path):
    first = new_run(options(competition, tmp_path, steps=1))
    second = new_run(options(competition, tmp_path, steps=1, model="dcgan"))
    assert (first.run_dir.name, second.run_dir.name) == ("00000-sngan", "00001-dcgan")


def test_same_seed_same_run_other_seed_other_run(competition, tmp_path):
    runs = []
    for seed in (0, 0, 1):
        trainer = new_run(options(competition, tmp_path, model="dcgan", steps=3, seed=seed))
        trainer.run()
        runs.append(losses(trainer.run_dir))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("model", ["sngan", "wgan_gp", "mlp_cgan"])
def test_resume_continues_exactly(competition, tmp_path, model):
    # 12 images per class at batch 4 are 6 steps an epoch: the resumed part crosses into epoch 2. sngan covers
    # EMA, DiffAugment and flips, wgan_gp the n_critic schedule and the penalty's noise, mlp_cgan dropout.
    whole = new_run(options(competition, tmp_path / "whole", model=model, steps=8, checkpoint_every=4))
    whole.run()
    interrupted = new_run(options(competition, tmp_path / "part", model=model, steps=4, checkpoint_every=4))
    interrupted.run()
    resumed = resume_run(interrupted.run_dir, steps=8)
    assert resumed.step == 4
    resumed.run()

    assert losses(resumed.run_dir) == losses(whole.run_dir)  # bitwise: same floats, steps 1..8
    final_whole = torch.load(checkpoint_paths(whole.run_dir)[-1], weights_only=False)
    final_resumed = torch.load(checkpoint_paths(resumed.run_dir)[-1], weights_only=False)
    for name, tensor in final_whole["G"].items():
        assert torch.equal(tensor, final_resumed["G"][name]), name


def test_resume_drops_metrics_written_after_the_checkpoint(competition, tmp_path):
    trainer = new_run(options(competition, tmp_path, model="dcgan", steps=3, checkpoint_every=2))
    trainer.run()  # checkpoints at 2 and 3 (the last step always saves)
    checkpoint_paths(trainer.run_dir)[-1].unlink()
    resumed = resume_run(trainer.run_dir)
    assert resumed.step == 2
    assert [r["step"] for r in losses(trainer.run_dir)] == [1, 2]


def test_resume_without_checkpoint_says_so(competition, tmp_path):
    trainer = new_run(options(competition, tmp_path))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        resume_run(trainer.run_dir)


def test_unknown_override_lists_the_settings(competition, tmp_path):
    with pytest.raises(ValueError, match="has no setting 'depth'.*width"):
        new_run(options(competition, tmp_path, overrides={"depth": 3}))


def test_a_time_budget_ends_the_run_at_the_step_that_crosses_it(competition, tmp_path):
    trainer = new_run(options(competition, tmp_path, model="mlp_cgan", steps=50, checkpoint_every=100))
    trainer.run(max_seconds=0.0)  # the first step already crosses it, and becomes the last
    assert trainer.step == trainer.total_steps == 1
    assert [p.name for p in checkpoint_paths(trainer.run_dir)] == ["step-0000001.pt"]
    assert [r["step"] for r in losses(trainer.run_dir)] == [1]
