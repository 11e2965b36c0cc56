"""The upload client against the real server app (FastAPI + SQLite, in process through its TestClient): every
refusal a team can meet comes back explained, and a valid zip is accepted and followed to its status."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from submissions.client import ArenaClient, SubmitError
from tests.utils.server_factories import ADMIN_TOKEN, ArenaApp, bearer, close_app, open_app, submission_zip


@pytest.fixture
def arena(data_dir: Path, tmp_path: Path) -> Iterator[Callable[..., tuple[TestClient, Any, str]]]:
    """arena(competition={...}, **settings) -> (client, competition, team token) on a fresh SQLite database."""
    opened: list[ArenaApp] = []

    def start(competition: dict[str, Any] | None = None, **overrides: Any) -> tuple[TestClient, Any, str]:
        opened.append(open_app(data_dir, f"sqlite:///{tmp_path / 'arena.db'}", competition, **overrides))
        _, token = opened[-1].create_team("Team A")
        return opened[-1].client, opened[-1].competition, token

    yield start
    for app in opened:
        close_app(app)


def write(tmp_path: Path, data: bytes, name: str = "submission.zip") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def upload_error(client: TestClient, token: str, path: Path, slug: str = "test-comp") -> SubmitError:
    with pytest.raises(SubmitError) as caught:
        ArenaClient("http://testserver", token, http=client).upload(path, slug, progress=False)
    return caught.value


def test_valid_zip_is_accepted_and_followed_to_a_final_status(arena, tmp_path, capsys):
    client, comp, token = arena()
    team = ArenaClient("http://testserver", token, http=client)
    assert team.spec(comp.slug).images_per_class == comp.config.images_per_class
    path = write(tmp_path, submission_zip(comp))
    created = team.upload(path, comp.slug, message="first", progress=True)
    assert "uploading: 100%" in capsys.readouterr().err  # the progress bar reached the file size
    assert created["status"] == "queued" and created["quota"]["used"] == 1
    assert team.submission(created["id"])["message"] == "first"

    def organizer_cancels_while_queued(submission: dict) -> None:
        seen.append(submission["status"])
        if submission["status"] == "queued":
            cancelled = client.post(f"/api/admin/submissions/{created['id']}/cancel", headers=bearer(ADMIN_TOKEN),
                                    json={"reason": "test"})
            assert cancelled.status_code == 200, cancelled.text

    seen: list[str] = []
    final = team.wait(created["id"], poll_seconds=0, on_status=organizer_cancels_while_queued)
    assert seen == ["queued", "cancelled"] and final["status"] == "cancelled"


def test_an_upload_from_memory_is_the_same_upload_and_the_organizer_lists_it(arena):
    client, comp, token = arena()
    data = submission_zip(comp)
    created = ArenaClient("http://testserver", token, http=client).upload_bytes(data, "entry.zip", comp.slug,
                                                                                message="from memory")
    assert created["status"] == "queued" and created["quota"]["used"] == 1
    organizer = ArenaClient("http://testserver", ADMIN_TOKEN, http=client)
    listed = organizer.admin_submissions(comp.slug, status="queued")
    assert [(row["id"], row["message"], row["size_bytes"]) for row in listed] == [
        (created["id"], "from memory", len(data))]
    assert organizer.admin_submissions(comp.slug, status="scored") == []
    with pytest.raises(SubmitError, match="HTTP 409"):  # the same bytes again: refused as a file upload would be
        ArenaClient("http://testserver", token, http=client).upload_bytes(data, "again.zip", comp.slug)
    with pytest.raises(SubmitError, match="HTTP 403"):  # a team's token does not list other teams' entries
        ArenaClient("http://testserver", token, http=client).admin_submissions()


def test_bad_token_is_401_with_how_to_sign_in(arena, tmp_path):
    client, comp, _ = arena()
    error = upload_error(client, "wrong-token", write(tmp_path, submission_zip(comp)))
    assert error.status_code == 401 and "arena login" in str(error)


def test_invalid_zip_is_422_with_the_validator_report(arena, tmp_path):
    client, _, token = arena()
    error = upload_error(client, token, write(tmp_path, b"not a zip"))
    assert error.status_code == 422 and error.report is not None
    assert [p.rule for p in error.report.problems] == ["not_a_zip"]
    assert "[not_a_zip]" in str(error) and "quota is unchanged" in str(error)


def test_same_zip_twice_is_409(arena, tmp_path):
    client, comp, token = arena()
    path = write(tmp_path, submission_zip(comp))
    ArenaClient("http://testserver", token, http=client).upload(path, comp.slug, progress=False)
    error = upload_error(client, token, path)
    assert error.status_code == 409 and "already submitted" in str(error)


def test_upload_over_the_size_cap_is_413(arena, tmp_path):
    client, comp, token = arena(max_upload_bytes=1000)
    error = upload_error(client, token, write(tmp_path, submission_zip(comp)))
    assert error.status_code == 413 and "size limit" in str(error)


def test_daily_limit_is_429_with_the_reset_time(arena, tmp_path):
    client, comp, token = arena(competition={"daily_limit": 1})
    team = ArenaClient("http://testserver", token, http=client)
    team.upload(write(tmp_path, submission_zip(comp, seed=1), "a.zip"), comp.slug, progress=False)
    error = upload_error(client, token, write(tmp_path, submission_zip(comp, seed=2), "b.zip"))
    assert error.status_code == 429
    assert "It resets at 2026-11-28 00:00 UTC" in str(error)


def test_past_deadline_is_403(arena, tmp_path):
    client, comp, token = arena(competition={"deadline": "2026-01-01T00:00:00Z"})
    error = upload_error(client, token, write(tmp_path, submission_zip(comp)))
    assert error.status_code == 403 and "Not allowed" in str(error)


def test_unknown_competition_is_explained(arena):
    client, _, token = arena()
    with pytest.raises(SubmitError, match="No competition 'nope'.*test-comp"):
        ArenaClient("http://testserver", token, http=client).spec("nope")


def test_team_commands_go_through_the_one_client(arena):
    client, comp, token = arena()
    team = ArenaClient("http://testserver", token, http=client)
    assert team.me()["name"] == "Team A"
    renewed = team.rotate_token()["token"]
    with pytest.raises(SubmitError, match="HTTP 401"):
        team.me()  # the old token stopped working at once
    assert ArenaClient("http://testserver", renewed, http=client).me()["name"] == "Team A"
    created = ArenaClient("http://testserver", None, http=client).create_team(comp.slug, "Team B", ["Bo"])
    assert created["name"] == "Team B" and created["token"].startswith("arena_")
    with pytest.raises(SubmitError, match="HTTP 409"):
        ArenaClient("http://testserver", None, http=client).create_team(comp.slug, "Team B")


def test_arena_team_uses_the_token_saved_by_arena_login(tmp_path, monkeypatch):
    from server.cli.team import _team_client
    from submissions.client import store_token

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("ARENA_TOKEN", raising=False)
    store_token("http://arena.example:8000", "arena_saved")
    assert _team_client("http://arena.example:8000/", None).headers == {"Authorization": "Bearer arena_saved"}
    assert _team_client("http://arena.example:8000", "arena_flag").headers == {"Authorization": "Bearer arena_flag"}


def test_wait_prints_the_scores_with_their_95_percent_interval(arena, tmp_path):
    # What `arena submit --wait` prints, from the real API's view of a scored submission (before the reveal).
    from server.jobs.leases import register_worker
    from server.jobs.queue import claim_next_submission, finish_scored
    from submissions.results import SubmissionResult, score_table

    client, comp, token = arena()
    team = ArenaClient("http://testserver", token, http=client)
    created = team.upload(write(tmp_path, submission_zip(comp)), comp.slug, progress=False)
    per_class = {"fid_public": 50.0, "fid_private": 60.0, "fid_all": 55.0, "raw_fid_public": 50.0,
                 "raw_fid_private": 60.0, "raw_fid_all": 55.0, "memorization_distance": 0.2,
                 "memorization_eps": 0.03, "penalized": False, "n_images": 2, "se_public": 1.0, "se_private": 2.0}
    result = SubmissionResult(score_public=100.0, score_private=120.0, score_all=110.0, penalized=False,
                              class_scores=dict.fromkeys(comp.classes, per_class), device="cpu", precision="exact",
                              scorer_version="test", weights_sha256="0", score_public_se=1.5, score_private_se=3.0)
    with client.app.state.database.session() as session:
        register_worker(session=session, worker_id="w", device="cpu")
        claimed = claim_next_submission(session=session, worker_id="w")
        assert claimed is not None and claimed.id == created["id"]
        assert finish_scored(session=session, submission_id=created["id"], lease_id=claimed.lease_id, worker_id="w",
                             result=result)
    lines = score_table(team.wait(created["id"], poll_seconds=0)).splitlines()
    assert lines[0] == f"Submission {created['id']}: scored"
    assert lines[3].split()[:5] == [comp.classes[0], "50.000", "±", "1.960", "hidden"]  # private: after the reveal
    assert lines[3 + len(comp.classes)].split() == ["total", "100.000", "±", "2.940", "hidden"]
    assert lines[-1].startswith("± is the half-width of a 95% interval")
