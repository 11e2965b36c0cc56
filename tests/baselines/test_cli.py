"""`arena train`, `arena generate`, `arena baseline run` end to end through the Typer app."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from server.cli import app
from submissions import SubmissionSpec, validate_zip

runner = CliRunner()


def test_train_then_generate(competition, tmp_path):
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", "dcgan", "--data", str(competition.root), "--steps", "2", "--batch-size",
                                 "4", "--device", "cpu", "--out", str(runs), "--set", "width=8"])
    assert result.exit_code == 0, result.output
    run_dir = runs / "00000-dcgan"
    assert (run_dir / "checkpoints" / "step-0000002.pt").is_file()

    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--steps", "3"])
    assert result.exit_code == 0, result.output
    assert (run_dir / "checkpoints" / "step-0000003.pt").is_file()

    zip_path = tmp_path / "dcgan.zip"
    result = runner.invoke(app, ["generate", str(run_dir), "--out", str(zip_path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    validate_zip(zip_path, SubmissionSpec.from_competition(competition))


def test_baseline_run_trains_and_writes_a_submission(competition, tmp_path):
    result = runner.invoke(app, ["baseline", "run", "infogan_style", "--data", str(competition.root), "--steps", "1",
                                 "--device", "cpu", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    validate_zip(Path(tmp_path / "runs" / "00000-infogan_style" / "submission.zip"),
                 SubmissionSpec.from_competition(competition))


def test_bad_model_name_and_bad_setting_are_explained(competition, tmp_path):
    result = runner.invoke(app, ["train", "gan9000", "--data", str(competition.root)])
    assert result.exit_code != 0 and "choose one of" in result.output
    result = runner.invoke(app, ["train", "dcgan", "--data", str(competition.root), "--set", "depth=3"])
    assert result.exit_code != 0 and "KEY=VALUE" in result.output


def test_conditioning_check_reports_each_label(competition, tmp_path):
    runs = tmp_path / "runs"
    runner.invoke(app, ["train", "dcgan", "--data", str(competition.root), "--steps", "1", "--batch-size", "4",
                        "--device", "cpu", "--out", str(runs), "--set", "width=8"])
    result = runner.invoke(app, ["baseline", "check", str(runs / "00000-dcgan"), "--per-class", "4",
                                 "--classifier-steps", "5", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "00000-dcgan: with_mask" in result.output and "without_mask" in result.output
