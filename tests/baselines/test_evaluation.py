"""The periodic FID against held-out training images, through the real scoring engine with random weights."""

from __future__ import annotations

import json
import math

from baselines.train import TrainOptions, new_run
from tests.utils.competition import make_competition
from tests.utils.inception import install_random_fid_weights


def run_records(tmp_path, name: str) -> list[dict]:
    # 30 images per class: a tenth (3 per class) is held out, enough for a (rank-deficient) FID.
    competition = make_competition(tmp_path / "comp", train_per_class=30, test_per_class=2)
    trainer = new_run(TrainOptions(model="dcgan", data=str(competition.root), out=str(tmp_path / name), steps=2,
                                   batch_size=4, log_every=1, eval_every=2, eval_images=4, overrides={"width": 8}))
    assert trainer.run_config["data"]["holdout_images"] == 6
    trainer.run()
    return [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]


def test_fid_is_logged_when_weights_are_installed_and_does_not_change_training(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
    without = run_records(tmp_path, "without")
    assert not any("fid" in r for r in without)  # skipped, training went on

    install_random_fid_weights(tmp_path / "torch-home")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    with_fid = run_records(tmp_path, "with")
    evaluations = [r for r in with_fid if "fid" in r]
    assert len(evaluations) == 1 and evaluations[0]["step"] == 2
    assert set(evaluations[0]["fid"]) == {"with_mask", "without_mask"}
    assert math.isfinite(evaluations[0]["fid_sum"]) and evaluations[0]["fid_sum"] > 0

    losses = [{k: r[k] for k in ("step", "d_loss", "g_loss")} for r in with_fid if "d_loss" in r]
    assert losses == [{k: r[k] for k in ("step", "d_loss", "g_loss")} for r in without]
