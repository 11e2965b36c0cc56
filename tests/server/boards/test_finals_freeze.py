"""Issue 22, item 2: final selection freezes at the deadline (and at the reveal when there is none), on the API and
the form, so a team that has read its private scores cannot move its finals and change the revealed board."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from server.competition_dir import CONFIG_FILE, competitions_dir
from server.db import Submission, utcnow
from server.db.crud import get_team
from tests.utils.server_factories import ADMIN_TOKEN, START, Arena, add_scored, bearer, csrf_of

DEADLINE = START + timedelta(days=1)


@pytest.fixture
def season(make_app):
    """Team a: s1 (public 10, private 30) selected, s2 (public 20, private 5) not; team b: public 15, private 20."""
    def make(deadline):
        arena = make_app(competition={"final_selection_limit": 1, "deadline": deadline})
        a_id, a_token = arena.create_team("a")
        b_id, _ = arena.create_team("b")
        with arena.database.session() as session:
            a, b = get_team(session=session, team_id=a_id), get_team(session=session, team_id=b_id)
            s1 = add_scored(session, a, public=10.0, private=30.0, created_at=START).id
            s2 = add_scored(session, a, public=20.0, private=5.0, created_at=START).id
            add_scored(session, b, public=15.0, private=20.0, created_at=START)
            session.commit()
        selected = arena.client.post(f"/api/submissions/{s1}/final", headers=bearer(a_token), json={"selected": True})
        assert selected.status_code == 200, selected.text
        return arena, a_token, s1, s2
    return make


def private_ranks(arena) -> list[tuple[str, int]]:
    board = arena.client.get(f"/api/competitions/{arena.slug}/leaderboard?board=private").json()
    return [(e["team_name"], e["rank"]) for e in board["entries"]]


def reveal(arena) -> None:
    response = arena.client.post(f"/api/admin/competitions/{arena.slug}/reveal", headers=bearer(ADMIN_TOKEN),
                                 json={"revealed": True})
    assert response.status_code == 200, response.text


def test_finals_freeze_at_the_deadline_and_the_revealed_board_cannot_change(season):
    arena, token, s1, s2 = season(DEADLINE)
    arena.clock.now = DEADLINE
    reveal(arena)
    assert private_ranks(arena) == [("b", 1), ("a", 2)]
    # Team a reads its private scores: s2 would win. Neither selecting s2 nor dropping s1 is allowed now.
    for submission_id, selected in ((s2, True), (s1, False)):
        refused = arena.client.post(f"/api/submissions/{submission_id}/final", headers=bearer(token),
                                    json={"selected": selected})
        assert refused.status_code == 409, refused.text
        assert "closed at the deadline" in refused.json()["error"]["message"]
    assert private_ranks(arena) == [("b", 1), ("a", 2)]
    detail = arena.client.get(f"/api/submissions/{s2}", headers=bearer(token)).json()
    assert detail["selected_final"] is False


def test_before_the_deadline_finals_may_still_change(season):
    arena, token, s1, s2 = season(DEADLINE)
    arena.clock.now = DEADLINE - timedelta(seconds=1)
    moved = arena.client.post(f"/api/submissions/{s1}/final", headers=bearer(token), json={"selected": False})
    assert moved.status_code == 200 and moved.json()["selected_final"] is False


def test_without_a_deadline_finals_freeze_at_the_reveal(season):
    arena, token, _, s2 = season(None)
    reveal(arena)
    refused = arena.client.post(f"/api/submissions/{s2}/final", headers=bearer(token), json={"selected": True})
    assert refused.status_code == 409 and "private board was revealed" in refused.json()["error"]["message"]
    assert private_ranks(arena) == [("b", 1), ("a", 2)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the form's path; the rule is tested above
def test_the_form_refuses_with_the_reason_and_hides_the_button(data_dir, database_url):
    arena = Arena(data_dir, final_selection_limit=1, deadline=(utcnow() + timedelta(hours=1)).isoformat())
    s2 = arena.scored_submission(arena.alpha, 20.0, 5.0, with_grids=False)
    client = arena.client()
    arena.sign_in(client, arena.alpha_token)
    page = client.get(f"/submissions/{s2}").text
    assert "Select as final" in page
    csrf = csrf_of(page)
    path = competitions_dir(data_dir) / "test-comp" / CONFIG_FILE
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "deadline": (utcnow() - timedelta(minutes=5)).isoformat()}))
    frozen_page = client.get(f"/submissions/{s2}").text
    assert "Select as final" not in frozen_page and "closed at the deadline" in frozen_page
    refused = client.post(f"/submissions/{s2}/final", data={"selected": "1", "csrf_token": csrf})
    assert refused.status_code == 409 and "closed at the deadline" in refused.text
    with arena.database.sessionmaker() as session:
        assert session.get(Submission, s2).selected_final is False
