"""`arena submission spec|check|sample`, `arena login` and the offline half of `arena submit`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from server.cli import app
from submissions import SubmissionSpec, validate_zip
from submissions.client import resolve_token
from tests.utils.competition import make_competition

runner = CliRunner()


@pytest.fixture
def competition(tmp_path):
    # Fewer training images than images_per_class: `sample` must draw with replacement.
    return make_competition(tmp_path / "comp", train_per_class=3, test_per_class=2, images_per_class=5)


def test_spec_prints_the_rules(competition):
    result = runner.invoke(app, ["submission", "spec", "--competition", str(competition.root)])
    assert result.exit_code == 0
    assert "exactly 5 PNG images of 64x64" in result.output and "compression_ratio_over_cap" in result.output


def test_sample_packs_training_images_that_pass_the_check(competition, tmp_path):
    out = tmp_path / "sample.zip"
    result = runner.invoke(app, ["submission", "sample", "-c", str(competition.root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    decoded = validate_zip(out, SubmissionSpec.from_competition(competition))
    for cls in competition.classes:
        training = [np.asarray(Image.open(p)) for p in competition.train_files(cls)]
        assert all(any((image == t).all() for t in training) for image in decoded.images[cls])
    check = runner.invoke(app, ["submission", "check", str(out), "-c", str(competition.root)])
    assert check.exit_code == 0 and check.output.startswith("OK valid")


def test_check_lists_problems_and_exits_one(competition, tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    result = runner.invoke(app, ["submission", "check", str(bad), "-c", str(competition.root)])
    assert result.exit_code == 1
    assert "[not_a_zip] bad.zip" in result.output and "fix:" in result.output


def test_check_json_is_the_api_report(competition, tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"")
    result = runner.invoke(app, ["submission", "check", str(bad), "-c", str(competition.root), "--json"])
    assert result.exit_code == 1
    body = json.loads(result.output)
    assert body["valid"] is False and body["problems"][0]["rule"] == "not_a_zip"


def test_missing_competition_dir_is_explained(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["submission", "spec", "-c", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "arena data demo" in result.output


def test_login_stores_the_token_where_submit_finds_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ARENA_TOKEN", raising=False)
    result = runner.invoke(app, ["login", "--server", "http://arena.test", "--token", "secret-token"])
    assert result.exit_code == 0
    assert (tmp_path / "config" / "fid-arena" / "config.toml").is_file()
    assert resolve_token("http://arena.test") == "secret-token"


def test_submit_without_a_token_says_how_to_get_one(competition, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ARENA_TOKEN", raising=False)
    zip_path = tmp_path / "s.zip"
    zip_path.write_bytes(b"x")
    result = runner.invoke(app, ["submit", str(zip_path), "--server", "http://127.0.0.1:9", "-c", "test-comp"])
    assert result.exit_code == 2 and "arena login" in result.output


def test_submit_refuses_an_invalid_zip_before_uploading(competition, tmp_path):
    zip_path = tmp_path / "s.zip"
    zip_path.write_bytes(b"not a zip")
    # Port 9 has no server: reaching the network would fail with "Cannot reach", not with the report.
    result = runner.invoke(app, ["submit", str(zip_path), "--server", "http://127.0.0.1:9", "-c", "test-comp",
                                 "--token", "t", "--competition-dir", str(competition.root)])
    assert result.exit_code == 1
    assert "[not_a_zip]" in result.output and "Not uploaded" in result.output and "Cannot reach" not in result.output


def colour_zip(competition, per_class: int) -> bytes:
    """Every image of every class in colour (RGB with unequal channels): one rule broken by every file."""
    from tests.submissions.zips import make_zip, png

    rng = np.random.default_rng(0)
    return make_zip((f"{cls}/{i:03d}.png", png(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)))
                    for cls in competition.classes for i in range(per_class))


def test_check_groups_problems_by_rule_with_a_count_and_the_first_files(tmp_path):
    competition = make_competition(tmp_path / "comp", train_per_class=2, test_per_class=2, images_per_class=10)
    bad = tmp_path / "colour.zip"
    bad.write_bytes(colour_zip(competition, 10))
    result = runner.invoke(app, ["submission", "check", str(bad), "-c", str(competition.root)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith("INVALID: 20 problem(s)")
    grouped = [line for line in lines if "[not_grayscale]" in line]
    assert len(grouped) == 1  # one line for the rule, not twenty
    assert "20 files: with_mask/000.png" in grouped[0] and "with_mask/002.png" in grouped[0]
    assert "with_mask/003.png" not in grouped[0] and grouped[0].endswith("and 17 more")
    assert sum("fix:" in line for line in lines) == 1
    api = json.loads(runner.invoke(app, ["submission", "check", str(bad), "-c", str(competition.root),
                                         "--json"]).output)
    assert len(api["problems"]) == 20  # the report (the API's 422 detail) keeps every problem
