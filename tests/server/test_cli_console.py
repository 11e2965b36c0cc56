"""`arena admin` for the organizer console's additions: what a competition accepts, and the reveal undone."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from server.cli import app
from tests.utils.server_factories import make_test_competition

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_arena_admin_settings_changes_what_a_competition_accepts(monkeypatch, data_dir, database, database_url):
    make_test_competition(data_dir)
    monkeypatch.setenv("ARENA_DATABASE_URL", database_url)
    runner = CliRunner()
    runner.invoke(app, ["admin", "register", str(data_dir / "competitions" / "test-comp")])
    changed = runner.invoke(app, ["admin", "settings", "test-comp", "--submission-kinds", "both"])
    assert changed.exit_code == 0 and "submission_kinds: 'images' -> 'both'" in changed.output, changed.output
    refused = runner.invoke(app, ["admin", "settings", "test-comp", "--submission-kinds", "onnx"])
    assert refused.exit_code != 0 and "submission_kinds" in refused.output
    config = json.loads((data_dir / "competitions" / "test-comp" / "competition.json").read_text())
    assert config["submission_kinds"] == "both"
