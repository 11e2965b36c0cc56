"""Rows that older scorers and workers stored read back through the typed result, unchanged, everywhere."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient

from server.db import Submission, SubmissionStatus, Team, bump_board_version
from tests.utils.server_factories import ADMIN_TOKEN, bearer

# What scorer 1.0 stored per class: no standard errors, no image count, no diagnostics or evidence.
SCORER_1_0 = {"fid_public": 40.0, "fid_private": 50.0, "fid_all": 45.0, "raw_fid_public": 40.0,
              "raw_fid_private": 50.0, "raw_fid_all": 45.0, "memorization_distance": 0.2, "memorization_eps": 0.03,
              "penalized": False}
# Scorer 1.1 bootstrapped "all" too, and named the evidence.
SCORER_1_1 = {**SCORER_1_0, "n_images": 8, "se_public": 1.0, "se_private": 1.5, "se_all": 0.8,
              "diagnostics": {"kid_mean": 0.0123, "kid_std": 0.001, "precision": 0.91, "recall": 0.4, "density": 1.1,
                              "coverage": 0.62, "distinct_images": 8, "n_images": 8},
              "diagnosis": "Covers 62% of the real images' neighbourhoods.",
              "nearest_train": [{"image": 1, "split": "train", "file": "train/with_mask/a.png", "distance": 0.1}],
              "nearest_any": [{"image": 2, "split": "private", "file": "test/with_mask/b.png", "distance": 0.05}]}
# A model's sample sets as the worker of scorer 1.3 stored them.
SAMPLE_SETS = {"method": "fresh sample sets", "seeds": [7, 8, 9], "public": [80.0, 82.0, 84.0], "public_mean": 82.0,
               "public_std": 2.0, "private": [100.0, 101.0, 102.0], "private_mean": 101.0, "private_std": 1.0,
               "all": [90.0, 91.5, 93.0], "all_mean": 91.5, "all_std": 1.5,
               "estimated_se": {"public": 1.8, "private": 1.1, "classes": {"with_mask": {"public": 1.2,
                                                                                         "private": 0.8}}},
               "interval": "sample sets"}
ROWS = {
    "1.0": {"class_scores": dict.fromkeys(("with_mask", "without_mask"), SCORER_1_0)},
    "1.1": {"class_scores": dict.fromkeys(("with_mask", "without_mask"), SCORER_1_1), "score_public_se": 1.4,
            "score_private_se": 2.1, "score_all_se": 1.1},
    "model": {"class_scores": dict.fromkeys(("with_mask", "without_mask"), SCORER_1_1), "score_public_se": 2.0,
              "score_private_se": 1.0, "score_all_se": 1.5, "sample_sets": SAMPLE_SETS},
}
PRIVATE_KEYS = {"fid_private", "raw_fid_private", "fid_all", "raw_fid_all", "se_private", "se_all"}


@pytest.fixture
def stored(arena):
    """One team with one submission per old row format, inserted as those versions left them."""
    team_id, token = arena.create_team("old")
    ids = {}
    with arena.database.sessionmaker() as session:
        team = session.get(Team, team_id)
        for version, columns in ROWS.items():
            row = Submission(competition_id=team.competition_id, team_id=team.id, sha256=uuid.uuid4().hex * 2,
                             size_bytes=1, message="", status=SubmissionStatus.scored, attempts=1,
                             created_at=arena.clock(), updated_at=arena.clock(), score_public=80.0,
                             score_private=100.0, score_all=90.0, penalized=False, timings={"total": 1.0},
                             device="cpu", precision="exact", scorer_version=version, **columns)
            session.add(row)
            session.flush()
            ids[version] = row.id
        bump_board_version(session, team.competition_id)
        session.commit()
    return arena, token, ids


@pytest.mark.parametrize("version", list(ROWS))
def test_the_api_shows_an_old_row_as_it_was_stored(stored, version):
    arena, token, ids = stored
    path = f"/api/submissions/{ids[version]}"
    organizer = arena.client.get(path, headers=bearer(ADMIN_TOKEN)).json()
    team = arena.client.get(path, headers=bearer(token)).json()
    classes = ROWS[version]["class_scores"]
    assert organizer["class_scores"] == classes  # every stored key, nothing added
    assert team["class_scores"] == {cls: {k: v for k, v in values.items() if k not in PRIVATE_KEYS | {"nearest_any"}}
                                    for cls, values in classes.items()}
    assert organizer["score_public_se"] == ROWS[version].get("score_public_se") and team["score_private_se"] is None
    if version == "model":
        assert organizer["sample_sets"] == SAMPLE_SETS and (team["interval"], team["interval_sets"]) == (
            "over 3 sample sets", 3)
        assert team["sample_sets"] == {k: v for k, v in SAMPLE_SETS.items() if not k.startswith(("private", "all"))}
    else:
        assert team["sample_sets"] is None and team["interval_sets"] is None


def test_the_boards_and_the_csv_read_old_rows(stored):
    arena, _, ids = stored
    board = arena.client.get(f"/api/competitions/{arena.slug}/leaderboard").json()
    assert [entry["submission_id"] for entry in board["entries"]] == [ids["1.0"]]  # the team's earliest best
    csv = arena.client.get(f"/api/competitions/{arena.slug}/leaderboard?format=csv").text
    assert csv.splitlines()[1].split(",")[:5] == ["1", "old", "0", str(ids["1.0"]), "80.000000"]


def sign_in(client, path: str, token: str) -> None:
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert csrf, f"{path} has no form with a CSRF token"
    assert client.post(path, data={"token": token, "csrf_token": csrf.group(1)}, follow_redirects=False
                       ).status_code == 303


@pytest.mark.parametrize("version", list(ROWS))
def test_the_submission_page_shows_an_old_row(stored, version):
    arena, token, ids = stored
    with TestClient(arena.client.app) as team, TestClient(arena.client.app) as organizer:
        sign_in(team, "/signin", token)
        sign_in(organizer, "/admin/signin", ADMIN_TOKEN)
        own = team.get(f"/submissions/{ids[version]}")
        seen = organizer.get(f"/submissions/{ids[version]}")
    assert own.status_code == seen.status_code == 200
    assert "Private FID" in seen.text and "Private FID" not in own.text
    assert ("± over 3 sample sets" in own.text) == (version == "model")
    assert ("40.0 <span class=\"pm\"" in own.text) == (version != "1.0")  # the class's ±, where it was stored
