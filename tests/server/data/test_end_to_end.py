"""A messy download (zip) becomes a competition that scores a submission zip (random FID weights, CPU)."""

from __future__ import annotations

import math

import numpy as np
from typer.testing import CliRunner

from server.cli import app
from server.competition_dir import Competition
from server.scoring import ScoreReport
from tests.server.data.test_archives import zip_tree
from tests.server.data.trees import make_messy_tree
from tests.utils.inception import install_random_fid_weights


def test_prepare_a_messy_zip_and_score_against_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ARENA_FID_WEIGHTS_DOWNLOAD", "false")
    monkeypatch.delenv("ARENA_FID_WEIGHTS", raising=False)
    install_random_fid_weights(tmp_path / "torch")
    download = zip_tree(make_messy_tree(tmp_path / "download", train=1, test=3, validation=1), tmp_path / "dl.zip")
    runner = CliRunner()
    prepared = runner.invoke(app, ["data", "prepare", "--source", str(download), "--out", str(tmp_path / "comp"),
                                   "--images-per-class", "2"], prog_name="arena")
    assert prepared.exit_code == 0, prepared.output
    assert "Class   with_mask <- Train/WithMask, Test/WithMask, Validation/WithMask" in prepared.output
    competition = Competition.load(tmp_path / "comp")

    from submissions import pack

    rng = np.random.default_rng(0)
    images = {cls: rng.integers(0, 256, (2, 64, 64), dtype=np.uint8) for cls in competition.classes}
    pack(images, tmp_path / "entry.zip", competition.classes)
    scored = runner.invoke(app, ["score", str(tmp_path / "entry.zip"), "--competition", str(competition.root),
                                 "--json", "--device", "cpu"], prog_name="arena")
    assert scored.exit_code == 0, scored.output
    report = ScoreReport.model_validate_json(scored.output)
    assert set(report.classes) == {"with_mask", "without_mask"}
    assert all(score.n_images == 2 for score in report.classes.values())
    assert math.isfinite(report.score_all) and report.score_all > 0
