"""`arena admin` for the organizer console's additions: what a competition accepts, and the reveal undone."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from server.cli import app
from tests.utils.server_factories import make_test_competition

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def runner(monkeypatch, data_dir, database, database_url) -> CliRunner:
    """`arena` on the test's fresh database, with the test competition registered."""
    make_test_competition(data_dir)
    monkeypatch.setenv("ARENA_DATABASE_URL", database_url)
    runner = CliRunner()
    runner.invoke(app, ["admin", "register", str(data_dir / "competitions" / "test-comp")])
    return runner


def test_arena_admin_settings_changes_what_a_competition_accepts(runner, data_dir):
    changed = runner.invoke(app, ["admin", "settings", "test-comp", "--submission-kinds", "both"])
    assert changed.exit_code == 0 and "submission_kinds: 'images' -> 'both'" in changed.output, changed.output
    refused = runner.invoke(app, ["admin", "settings", "test-comp", "--submission-kinds", "onnx"])
    assert refused.exit_code != 0 and "submission_kinds" in refused.output
    config = json.loads((data_dir / "competitions" / "test-comp" / "competition.json").read_text())
    assert config["submission_kinds"] == "both"


def test_arena_admin_reveal_asks_first_and_undo_hides_the_board_again(runner, database):
    from server.db.crud import get_competition
    from server.organizer.settings import setting_history

    def revealed() -> bool:
        with database.session() as session:
            return get_competition(session=session, slug="test-comp").private_revealed_at is not None

    declined = runner.invoke(app, ["admin", "reveal", "test-comp"], input="n\n")
    assert declined.exit_code == 1 and "will see the private leaderboard" in declined.output
    assert "no deadline: teams can still submit" in declined.output
    assert not revealed()
    assert runner.invoke(app, ["admin", "reveal", "test-comp"], input="y\n").exit_code == 0 and revealed()
    undone = runner.invoke(app, ["admin", "reveal", "test-comp", "--undo", "--yes"])
    assert undone.exit_code == 0 and "hidden" in undone.output and not revealed()
    with database.session() as session:
        history = setting_history(session=session, competition=get_competition(session=session, slug="test-comp"))
        assert [(c.field, c.old_value, c.new_value) for c in history] == [
            ("private_board", "revealed", "hidden"), ("private_board", "hidden", "revealed")]
        assert history[0].actor.startswith("arena admin reveal")
    rescore = runner.invoke(app, ["admin", "rescore", "--all", "-c", "test-comp"], input="n\n")
    assert rescore.exit_code == 1 and "go back into the queue" in rescore.output


def test_arena_admin_settings_warns_of_a_deadline_in_the_past(runner, data_dir):
    result = runner.invoke(app, ["admin", "settings", "test-comp", "--deadline", "2020-01-01 00:00"])
    assert result.exit_code == 0 and "deadline 2020-01-01 00:00 UTC is in the past" in result.output
    config = json.loads((data_dir / "competitions" / "test-comp" / "competition.json").read_text())
    assert config["deadline"] == "2020-01-01T00:00:00Z"  # saved all the same
