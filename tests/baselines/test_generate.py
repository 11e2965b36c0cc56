"""`generate`: a trained run becomes a submission zip that the validator accepts."""

from __future__ import annotations

import numpy as np
import torch

from baselines.generate import generate_submission, load_generator
from baselines.train import TrainOptions, checkpoint_paths, new_run
from submissions import SubmissionSpec, validate_zip


def trained_run(competition, tmp_path, model="sngan"):
    trainer = new_run(TrainOptions(model=model, data=str(competition.root), out=str(tmp_path / "runs"), steps=2,
                                   batch_size=4, overrides={"width": 8}))
    trainer.run()
    return trainer.run_dir


def test_zip_passes_the_validator_with_the_competitions_count(competition, tmp_path):
    run_dir = trained_run(competition, tmp_path)
    zip_path = generate_submission(run_dir, tmp_path / "out" / "sub.zip", device="cpu")
    decoded = validate_zip(zip_path, SubmissionSpec.from_competition(competition))
    assert {cls: images.shape for cls, images in decoded.images.items()} == {
        "with_mask": (6, 64, 64), "without_mask": (6, 64, 64)}  # images_per_class of the competition
    assert all(images.std() > 0 for images in decoded.images.values())  # not blank


def test_same_seed_same_bytes_and_per_class_override(competition, tmp_path):
    run_dir = trained_run(competition, tmp_path, model="dcgan")
    first = generate_submission(run_dir, tmp_path / "a.zip", device="cpu")
    second = generate_submission(run_dir, tmp_path / "b.zip", device="cpu")
    assert first.read_bytes() == second.read_bytes()
    practice = generate_submission(run_dir, tmp_path / "c.zip", per_class=3, device="cpu")
    spec = SubmissionSpec.from_competition(competition).model_copy(update={"images_per_class": 3})
    assert validate_zip(practice, spec).images["with_mask"].shape == (3, 64, 64)


def test_ema_weights_are_used_where_the_model_keeps_them(competition, tmp_path):
    run_dir = trained_run(competition, tmp_path)
    G, _ = load_generator(run_dir, device="cpu")
    state = torch.load(checkpoint_paths(run_dir)[-1], weights_only=False)
    name = "project.weight"
    assert torch.equal(G.state_dict()[name], state["ema"][name])
    assert not np.array_equal(state["ema"][name].numpy(), state["G"][name].numpy())
