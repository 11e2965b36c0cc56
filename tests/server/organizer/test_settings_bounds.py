"""Issue 22, items 1 and 8: every setting has a range, refused (422 naming the field) wherever settings enter, and a
competition whose competition.json cannot be read never takes the site or the workers down with it."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from typer.testing import CliRunner

from server.cli import app as cli_app
from server.competition_dir import CONFIG_FILE, CompetitionConfig, competitions_dir
from server.db import Submission, SubmissionStatus
from server.jobs.worker import Worker
from tests.utils.competition import make_competition
from tests.utils.server_factories import (
    ADMIN_TOKEN,
    SETTINGS_URL,
    bearer,
    config_file,
    form_of,
    sign_in_admin,
    submission_zip,
)

BASE = {"slug": "c", "title": "C", "classes": ["a"]}
OUT_OF_RANGE = [  # (field, value) that a competition.json, the form or the CLI could carry
    ("memorization_eps", math.nan), ("memorization_eps", math.inf), ("memorization_eps", -math.inf),
    ("memorization_eps", "nan"), ("memorization_eps", "inf"), ("memorization_eps", None), ("memorization_eps", -0.1),
    ("memorization_eps", 1.5), ("memorization_eps", "often"), ("memorization_eps", True),
    ("images_per_class", 10**12), ("images_per_class", 0), ("image_size", 10**6), ("image_size", 4),
    ("daily_limit", 10**30), ("daily_limit", 0), ("final_selection_limit", 10**6), ("final_selection_limit", -1),
    ("public_fraction", math.nan), ("public_fraction", math.inf), ("public_fraction", 1.0),
    ("title", ""), ("title", "   "), ("title", "x" * 201), ("title", "nul\x00title"), ("title", "two\nlines"),
    ("title", "rtl\u202eeman"), ("description", "bell\x07"), ("team_rules", "nul\x00"), ("description", "x" * 20_001),
]


@pytest.mark.parametrize(("field", "value"), OUT_OF_RANGE)
def test_the_config_model_refuses_non_finite_and_out_of_range_values_naming_the_field(field, value):
    with pytest.raises(ValidationError) as refused:
        CompetitionConfig.model_validate({**BASE, field: value})
    assert {error["loc"][0] for error in refused.value.errors()} == {field}


@pytest.mark.parametrize(("field", "value"), [
    ("memorization_eps", "auto"), ("memorization_eps", 0), ("memorization_eps", "0.05"), ("memorization_eps", 1),
    ("images_per_class", 50_000), ("daily_limit", 1000), ("final_selection_limit", 100), ("image_size", 1024),
    ("description", "Line one\n\tindented\r\n"), ("title", "Masks 2026 — ünïcode"),
])
def test_values_in_range_are_accepted(field, value):
    CompetitionConfig.model_validate({**BASE, field: value})


@pytest.mark.parametrize(("field", "value"), [
    ("memorization_eps", "nan"), ("memorization_eps", "inf"), ("memorization_eps", "-inf"), ("memorization_eps", "2"),
    ("images_per_class", str(10**12)), ("daily_limit", str(10**30)), ("final_selection_limit", "1000000"),
    ("title", "x" * 201), ("title", "nul\x00title"), ("description", "nul\x00"),
])
def test_the_settings_form_refuses_them_with_422_next_to_the_field(organizer, field, value):
    arena, client = organizer
    before = config_file(arena).read_text()
    response = client.post(SETTINGS_URL, data=form_of(arena, client, **{field: value}))
    assert response.status_code == 422, response.text
    assert f'id="error-{field}"' in response.text
    assert config_file(arena).read_text() == before
    assert client.get("/").status_code == 200 and client.get("/api/competitions").status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("args", "field"), [
    (["--memorization-eps", "nan"], "memorization_eps"), (["--memorization-eps", "inf"], "memorization_eps"),
    (["--daily-limit", str(10**30)], "daily_limit"), (["--images-per-class", str(10**12)], "images_per_class"),
    (["--title", "a\x00b"], "title"),
])
def test_arena_admin_settings_refuses_them_naming_the_field(monkeypatch, data_dir, database, database_url, args,
                                                            field):
    make_competition(competitions_dir(data_dir) / "test-comp")
    monkeypatch.setenv("ARENA_DATABASE_URL", database_url)
    monkeypatch.setenv("ARENA_DATA_DIR", str(data_dir))
    path = competitions_dir(data_dir) / "test-comp" / CONFIG_FILE
    assert CliRunner().invoke(cli_app, ["admin", "register", str(path.parent)]).exit_code == 0
    before = path.read_text()
    result = CliRunner().invoke(cli_app, ["admin", "settings", "test-comp", *args])
    assert result.exit_code != 0 and field in result.output and "Traceback" not in result.output, result.output
    assert path.read_text() == before


def break_config(root, **values) -> None:
    """Edit competition.json by hand as an organizer might (json.dumps writes NaN and Infinity literally)."""
    path = root / CONFIG_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}))


@pytest.mark.parametrize("edit", [{"memorization_eps": math.nan}, {"memorization_eps": None},
                                  {"daily_limit": math.inf}, {"images_per_class": 10**12}, "not json"])
def test_a_broken_competition_json_leaves_the_site_and_the_other_competitions_up(make_app, data_dir, edit):
    arena = make_app()
    healthy = make_competition(competitions_dir(data_dir) / "other", slug="other", title="Other")
    arena.client.post("/api/admin/competitions/other/teams", headers=bearer(ADMIN_TOKEN), json={"name": "t"})
    from server.db.crud import register_competition

    with arena.database.session() as session:
        register_competition(session=session, root=healthy.root)
    root = arena.competition.root
    if isinstance(edit, str):
        (root / CONFIG_FILE).write_text(edit)
    else:
        break_config(root, **edit)

    index = arena.client.get("/")
    assert index.status_code == 200 and "Other" in index.text and "Test competition" not in index.text
    listed = arena.client.get("/api/competitions")
    assert listed.status_code == 200 and [c["slug"] for c in listed.json()["data"]] == ["other"]
    assert arena.client.get("/api/competitions/other").status_code == 200
    own = arena.client.get("/api/competitions/test-comp")
    assert own.status_code == 503 and own.json()["error"]["code"] == "competition_unavailable"
    assert str(data_dir) not in own.text  # teams are not shown the server's paths
    assert arena.client.get("/c/test-comp").status_code == 503
    assert arena.client.get("/c/test-comp/leaderboard").status_code == 503
    for path in ("/api/competitions/test-comp/leaderboard", "/api/competitions/test-comp/leaderboard?format=csv",
                 "/c/test-comp/leaderboard.csv", "/c/test-comp/submit", "/healthz", "/api/teams/me"):
        assert arena.client.get(path).status_code != 500, path  # 503 for its own routes is fine

    sign_in_admin(arena.client)
    organizer = arena.client.get("/admin")
    assert organizer.status_code == 200 and "Broken:" in organizer.text and "competition.json" in organizer.text


def test_workers_skip_a_broken_competition_and_leave_its_jobs_queued(make_app, scorer, data_dir):
    arena = make_app()
    _, token = arena.create_team("a")
    assert arena.upload(token, submission_zip(arena.competition, seed=1)).status_code == 202
    break_config(arena.competition.root, memorization_eps=math.nan)

    worker = Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="w")
    worker.prepare_references()  # used to raise, and `arena worker` exited 1 for every competition
    assert worker.run_once()  # claimed, then put back: not the team's fault
    with arena.database.session() as session:
        submission = session.scalars(select(Submission)).one()
        assert submission.status == SubmissionStatus.queued and submission.attempts == 0
        assert "configuration cannot be read" in submission.events[-1].reason


@pytest.mark.parametrize(("body", "field"), [
    ('{"memorization_eps": NaN}', "memorization_eps"), ('{"memorization_eps": Infinity}', "memorization_eps"),
    ('{"memorization_eps": "nan"}', "memorization_eps"), ('{"memorization_eps": 1.5}', "memorization_eps"),
    ('{"daily_limit": 1e30}', "daily_limit"), ('{"daily_limit": 0}', "daily_limit"),
    ('{"images_per_class": 1000000000000}', "images_per_class"), ('{"final_selection_limit": -1}',
                                                                   "final_selection_limit"),
    ('{"title": "nul\\u0000title"}', "title"), ('{"title": null}', "title"), ('{"slug": "other"}', "slug"),
])
def test_the_settings_api_refuses_them_with_422_naming_the_field(make_app, body, field):
    arena = make_app()
    path = arena.competition.root / CONFIG_FILE
    before = path.read_text()
    response = arena.client.patch(f"/api/admin/competitions/{arena.slug}/settings", content=body,
                                  headers={**bearer(ADMIN_TOKEN), "content-type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    named = error["detail"] if isinstance(error["detail"], dict) else {e["loc"][1] for e in error["detail"]}
    assert field in named, error
    assert path.read_text() == before
    assert arena.client.get("/api/competitions").status_code == 200


def test_the_settings_api_changes_records_and_locks_like_the_page(make_app):
    arena = make_app()
    url = f"/api/admin/competitions/{arena.slug}/settings"
    assert arena.client.patch(url, json={"daily_limit": 3}).status_code == 401  # organizers only
    changed = arena.client.patch(url, headers=bearer(ADMIN_TOKEN), json={"daily_limit": 3, "memorization_eps": 0.2})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["daily_limit"], changed.json()["memorization_eps"]) == (3, 0.2)
    assert json.loads((arena.competition.root / CONFIG_FILE).read_text())["daily_limit"] == 3
    _, token = arena.create_team("a")
    assert arena.upload(token, submission_zip(arena.competition)).status_code == 202
    locked = arena.client.patch(url, headers=bearer(ADMIN_TOKEN), json={"memorization_eps": 0.1})
    assert locked.status_code == 409 and "affects scores" in locked.json()["error"]["message"]
