"""`arena data demo` and `arena data prepare` through the CLI: summaries on success, exit 2 and a message on error."""

from __future__ import annotations

from typer.testing import CliRunner

from server.cli import app
from server.competition_dir import Competition
from tests.server.data.trees import make_tree

runner = CliRunner()


def test_demo_command(tmp_path):
    args = ["data", "demo", "--out", str(tmp_path / "demo"), "--seed", "2", "--train-per-class", "3",
            "--test-per-class", "4", "--images-per-class", "4", "--slug", "tiny", "--title", "Tiny demo"]
    result = runner.invoke(app, args, prog_name="arena")
    assert result.exit_code == 0, result.output
    assert "with_mask: 3 train, 2 public test, 2 private test" in result.output
    competition = Competition.load(tmp_path / "demo")
    assert (competition.slug, competition.config.title, competition.config.images_per_class) == ("tiny", "Tiny demo", 4)
    assert competition.manifest.dataset_hash in result.output
    again = runner.invoke(app, args, prog_name="arena")
    assert again.exit_code == 0 and "already up to date" in again.output


def test_prepare_command(tmp_path):
    source = make_tree(tmp_path / "src", train=2, test=2)
    args = ["data", "prepare", "--source", str(source), "--out", str(tmp_path / "out"), "--slug", "masks",
            "--images-per-class", "3", "--image-size", "32", "--public-fraction", "0.5", "--seed", "1"]
    result = runner.invoke(app, args, prog_name="arena")
    assert result.exit_code == 0, result.output
    config = Competition.load(tmp_path / "out").config
    assert (config.slug, config.images_per_class, config.image_size) == ("masks", 3, 32)
    assert "without_mask: 2 train, 1 public test, 1 private test" in result.output


def test_prepare_error_exits_2_without_traceback(tmp_path):
    source = make_tree(tmp_path / "src", train=2, test=2)
    (source / "train" / "with_mask" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    args = ["data", "prepare", "--source", str(source), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, args, prog_name="arena")
    assert result.exit_code == 2
    assert "broken.jpg" in result.output and "--skip-bad" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # handled, not a crash
    assert not (tmp_path / "out").exists()
    skipped = runner.invoke(app, [*args, "--skip-bad"], prog_name="arena")
    assert skipped.exit_code == 0 and "Left out 1 unusable file(s) (--skip-bad)" in skipped.output
