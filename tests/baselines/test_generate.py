"""`generate`: a trained run becomes a submission zip that the validator accepts."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from baselines.generate import export_onnx, generate_submission, load_generator
from baselines.registry import MODEL_NAMES, load_model
from baselines.train import TrainOptions, checkpoint_paths, new_run
from server.cli import app
from submissions import SubmissionSpec, validate_zip
from submissions.model import validate_model
from submissions.sampling import SamplingJob, sample_model


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


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_baseline_exports_to_a_valid_model_that_matches_torch(name, competition, tmp_path):
    model = load_model(name)
    config = model.Config(**({"width": 8} if "width" in model.Config.__dataclass_fields__ else {}))
    G = model.Generator(config, 2).eval()
    path = export_onnx(G, tmp_path / f"{name}.onnx", classes=competition.classes, z_dim=config.z_dim)
    spec = SubmissionSpec.from_competition(competition).model_copy(update={"submission_kinds": "model"})
    info = validate_model(path, spec)
    assert (info.latent_size, info.classes) == (config.z_dim, competition.classes)
    job = SamplingJob(model=str(path), labels=[1], per_class=3, latent_size=config.z_dim, image_size=64, seed=5)
    sampled = sample_model(job, memory_bytes=2**32, time_limit_s=60)[0]
    z = np.random.Generator(np.random.PCG64(5)).standard_normal((3, config.z_dim), dtype=np.float32)
    with torch.no_grad():
        expected = G(torch.from_numpy(z), torch.ones(3, dtype=torch.long))[:, 0]
    expected_uint8 = np.rint((expected.clamp(-1, 1).numpy() + 1) * 127.5)
    assert np.abs(sampled.astype(int) - expected_uint8).max() <= 1  # same images up to float rounding


def test_generate_model_exports_the_runs_ema_weights(competition, tmp_path):
    run_dir = trained_run(competition, tmp_path, model="dcgan")
    result = CliRunner().invoke(app, ["generate", str(run_dir), "--model", str(tmp_path / "dcgan.onnx")])
    assert result.exit_code == 0, result.output
    G, _ = load_generator(run_dir, device="cpu")

    session = ort.InferenceSession(str(tmp_path / "dcgan.onnx"), providers=["CPUExecutionProvider"])
    z_dim = session.get_inputs()[0].shape[1]
    z = np.random.default_rng(0).standard_normal((2, z_dim), dtype=np.float32)
    labels = np.array([0, 1], np.int64)
    (onnx_images,) = session.run(["images"], {"z": z, "label": labels})
    with torch.no_grad():
        torch_images = G(torch.from_numpy(z), torch.from_numpy(labels)).numpy()
    assert np.allclose(onnx_images, torch_images, atol=1e-4)  # the EMA generator load_generator picks
