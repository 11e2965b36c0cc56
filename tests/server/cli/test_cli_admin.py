"""`arena admin ...` on a real database: create a team, list, rescore, cancel, disqualify, reveal, export."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from server.cli import app
from server.db.crud import get_competition, get_submission, list_teams
from server.uploads.rules import create_submission
from tests.utils.server_factories import add_scored, make_test_competition

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def arena(monkeypatch, database_url, *args: str) -> str:
    monkeypatch.setenv("ARENA_DATABASE_URL", database_url)
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_admin_commands_drive_a_competition(monkeypatch, data_dir, database, database_url):
    make_test_competition(data_dir)
    created = arena(monkeypatch, database_url, "admin", "create-team", "test-comp", "reference", "--baseline")
    assert "Token (shown once" in created and "arena_" in created
    arena(monkeypatch, database_url, "admin", "create-team", "test-comp", "gan-gang", "-m", "Ada")
    with database.session() as session:
        row = get_competition(session=session, slug="test-comp")
        reference, team = list_teams(session=session, competition=row)
        add_scored(session, reference, 50.0, 55.0, row.created_at)
        scored = add_scored(session, team, 40.0, 45.0, row.created_at)
        queued, _ = create_submission(session=session, competition=row, team=team, sha256="a" * 64,
                                      size_bytes=1)
    listing = arena(monkeypatch, database_url, "admin", "submissions", "-c", "test-comp")
    assert "3 of 3 submissions" in listing and "gan-gang" in listing
    board = json.loads(arena(monkeypatch, database_url, "admin", "export", "test-comp", "--format", "json"))
    assert [(e["team_name"], e["rank"]) for e in board["entries"]] == [("gan-gang", 1), ("reference", None)]
    # The private board exports before the reveal for the organizer, and all scores as CSV.
    assert "rank_change" in arena(monkeypatch, database_url, "admin", "export", "test-comp", "--board", "private")
    all_scores = arena(monkeypatch, database_url, "admin", "export", "test-comp", "--board", "all")
    assert len(all_scores.strip().splitlines()) == 1 + 3

    arena(monkeypatch, database_url, "admin", "cancel", str(queued.id), "--reason", "duplicate run")
    arena(monkeypatch, database_url, "admin", "rescore", "--all", "-c", "test-comp", "--reason", "new weights",
          "--yes")
    arena(monkeypatch, database_url, "admin", "disqualify", str(scored.id), "--reason", "copied images")
    arena(monkeypatch, database_url, "admin", "reveal", "test-comp", "--yes")
    with database.session() as session:
        assert get_submission(session=session, submission_id=queued.id).status == "cancelled"
        rescored = get_submission(session=session, submission_id=scored.id)
        assert rescored.status == "queued" and rescored.disqualified_reason == "copied images"
        assert get_competition(session=session, slug="test-comp").private_revealed_at is not None


def test_admin_errors_are_one_line_not_tracebacks(monkeypatch, data_dir, database, database_url):
    make_test_competition(data_dir)
    monkeypatch.setenv("ARENA_DATABASE_URL", database_url)
    result = CliRunner().invoke(app, ["admin", "cancel", "999"])
    assert result.exit_code == 1 and "Submission 999 does not exist" in result.output
    assert "Traceback" not in result.output


def test_admin_settings_changes_validates_and_records(monkeypatch, data_dir, database, database_url):
    make_test_competition(data_dir)
    arena(monkeypatch, database_url, "admin", "register", str(data_dir / "competitions" / "test-comp"))
    output = arena(monkeypatch, database_url, "admin", "settings", "test-comp", "--daily-limit", "3",
                   "--deadline", "2031-01-02 03:04", "--status", "closed")
    assert "daily_limit: 5 -> 3" in output and "status: 'open' -> 'closed'" in output
    config = json.loads((data_dir / "competitions" / "test-comp" / "competition.json").read_text())
    assert (config["daily_limit"], config["deadline"], config["status"]) == (3, "2031-01-02T03:04:00Z", "closed")
    assert "arena admin settings" in output and "daily_limit: 5 -> 3" in output.split("}")[-1]  # the history
    monkeypatch.setenv("ARENA_DATABASE_URL", database_url)
    for args, message in ((["--daily-limit", "0"], "greater than or equal to 1"),
                          (["--deadline", "soon"], "YYYY-MM-DD HH:MM"),
                          (["--status", "paused"], "status")):
        result = CliRunner().invoke(app, ["admin", "settings", "test-comp", *args])
        assert result.exit_code != 0 and message in result.output, result.output
    assert json.loads((data_dir / "competitions" / "test-comp" / "competition.json").read_text()) == config
    assert "posted" in arena(monkeypatch, database_url, "admin", "announce", "test-comp", "Deadline moved.")


def test_admin_references_queues_one_build_for_a_worker_and_reports_it(monkeypatch, data_dir, database, database_url):
    from server.jobs.reference_builds import claim_next_build, finish_build

    make_test_competition(data_dir)
    monkeypatch.setenv("ARENA_DATABASE_URL", database_url)
    missing = CliRunner().invoke(app, ["admin", "references", "test-comp", "--status"])
    assert missing.exit_code == 1 and "has no reference build yet" in missing.output
    queued = arena(monkeypatch, database_url, "admin", "references", "test-comp")
    assert queued.strip() == "Reference build 1: queued, 0/16 images (with_mask 0/8, without_mask 0/8)"
    assert arena(monkeypatch, database_url, "admin", "references", "test-comp") == queued  # not a second build
    with database.session() as session:
        lease_id = claim_next_build(session=session, worker_id="w", engine="torch").lease_id
        finish_build(session=session, build_id=1, lease_id=lease_id, worker_id="w", ok=False,
                     outcome="OSError: no space left")
    failed = CliRunner().invoke(app, ["admin", "references", "test-comp", "--status", "--wait"])
    assert failed.exit_code == 1
    assert failed.output.strip() == ("Reference build 1: failed, 0/16 images (with_mask 0/8, without_mask 0/8); "
                                     "worker w (torch); OSError: no space left")


def test_admin_workers_create_list_revoke(monkeypatch, data_dir, database, database_url):
    """A remote worker's token from the CLI: printed once with the command to run, listed, revoked; a bad name or
    a second token of the same name is refused with the rule."""
    make_test_competition(data_dir)
    created = arena(monkeypatch, database_url, "admin", "workers", "create", "lab-gpu-1")
    assert "(shown once): arenaw_" in created and "arena worker --server" in created
    assert "token lab-gpu-1" in arena(monkeypatch, database_url, "admin", "workers", "list")
    assert "token lab-gpu-1" in arena(monkeypatch, database_url, "admin", "workers")  # `list` is the default
    for name, rule in (("lab-gpu-1", "exists already"), ("lab gpu", "letters, digits")):
        result = CliRunner().invoke(app, ["admin", "workers", "create", name])
        assert result.exit_code == 1 and rule in result.output, result.output
    revoked = arena(monkeypatch, database_url, "admin", "workers", "revoke", "lab-gpu-1")
    assert "Revoked worker token 'lab-gpu-1'" in revoked
    assert "revoked" in arena(monkeypatch, database_url, "admin", "workers", "list")
