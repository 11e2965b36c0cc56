"""Auth matrix: every protected route answers 401 without a token (or with an unknown one) and 403 with the wrong
team's token or a team token on an organizer route. Teams, admin token and tokens are all real."""

from __future__ import annotations

import pytest

from server.db import Team
from tests.utils.server_factories import ADMIN_TOKEN, add_scored, bearer

TEAM_ROUTES = [  # (method, path) a team may call for itself; the organizer token is refused (403)
    ("GET", "/api/teams/me"),
    ("POST", "/api/teams/me/token"),
    ("GET", "/api/competitions/test-comp/submissions"),
    ("POST", "/api/competitions/test-comp/submissions"),
]
OWNER_ROUTES = [  # the owning team or the organizer
    ("GET", "/api/submissions/{sid}"),
    ("GET", "/api/submissions/{sid}/grids/with_mask.png"),
]
ADMIN_ROUTES = [
    ("GET", "/api/admin/submissions"),
    ("POST", "/api/admin/submissions/{sid}/rescore"),
    ("POST", "/api/admin/submissions/{sid}/cancel"),
    ("POST", "/api/admin/submissions/{sid}/disqualify"),
    ("POST", "/api/admin/competitions/test-comp/rescore"),
    ("POST", "/api/admin/competitions/test-comp/reveal"),
    ("GET", "/api/admin/competitions/test-comp/teams"),
    ("POST", "/api/admin/competitions/test-comp/teams"),
    ("POST", "/api/admin/teams/{tid}/token"),
    ("POST", "/api/admin/teams/{tid}/disqualify"),
    ("GET", "/api/admin/competitions/test-comp/scores.csv"),
    ("GET", "/api/admin/workers"),
]
# Authorization does not depend on the database; the database tests cover both engines.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

BODIES = {"disqualify": {"reason": "x"}, "teams": {"name": "new"}, "final": {"selected": True}}


@pytest.fixture
def world(arena):
    """Two teams; team A owns one scored submission."""
    a_id, a_token = arena.create_team("a")
    b_id, b_token = arena.create_team("b")
    with arena.database.sessionmaker() as session:
        sid = add_scored(session, session.get(Team, a_id), 1.0, 1.0, arena.clock()).id
    return arena, {"a": a_token, "b": b_token, "tid": a_id, "sid": sid}


def call(arena, method, path, token=None, ids=None):
    path = path.format(**(ids or {}))
    body = next((b for key, b in BODIES.items() if path.endswith(key)), {})
    kwargs = {"json": body} if method == "POST" and not path.endswith("/submissions") else {}
    if path.endswith("/submissions") and method == "POST":
        kwargs = {"files": {"file": ("s.zip", b"PK\x05\x06" + b"\0" * 18, "application/zip")}}
    return arena.client.request(method, path, headers=bearer(token) if token else {}, **kwargs)


@pytest.mark.parametrize(("method", "path"), TEAM_ROUTES + OWNER_ROUTES + ADMIN_ROUTES)
def test_without_a_token_is_401_with_the_stable_error_shape(world, method, path):
    arena, ids = world
    for token in (None, "arena_not-a-real-token"):
        response = call(arena, method, path, token, ids)
        assert response.status_code == 401, (token, response.text)
        assert set(response.json()["error"]) == {"code", "message", "detail"}
        assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_refuse_team_tokens(world, method, path):
    arena, ids = world
    response = call(arena, method, path, ids["a"], ids)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(("method", "path"), OWNER_ROUTES + [("POST", "/api/submissions/{sid}/final")])
def test_another_teams_submission_is_403(world, method, path):
    arena, ids = world
    assert call(arena, method, path, ids["b"], ids).status_code == 403


@pytest.mark.parametrize(("method", "path"), TEAM_ROUTES)
def test_team_routes_refuse_the_admin_token(world, method, path):
    arena, ids = world
    assert call(arena, method, path, ADMIN_TOKEN, ids).status_code == 403


def test_owner_and_organizer_see_the_submission_but_only_the_organizer_sees_private_scores(world):
    arena, ids = world
    own = call(arena, "GET", "/api/submissions/{sid}", ids["a"], ids).json()
    organizer = call(arena, "GET", "/api/submissions/{sid}", ADMIN_TOKEN, ids).json()
    assert own["score_public"] == organizer["score_public"] == 1.0
    assert own["score_private"] is None and organizer["score_private"] == 1.0
    assert all("fid_private" not in values for values in own["class_scores"].values())


def test_private_leaderboard_hidden_from_teams_and_anonymous_until_revealed(world):
    arena, ids = world
    url = f"/api/competitions/{arena.slug}/leaderboard?board=private"
    assert arena.client.get(url).status_code == 403
    assert arena.client.get(url, headers=bearer(ids["a"])).status_code == 403
    assert arena.client.get(url, headers=bearer(ADMIN_TOKEN)).status_code == 200
    revealed = arena.client.post(f"/api/admin/competitions/{arena.slug}/reveal", json={}, headers=bearer(ADMIN_TOKEN))
    assert revealed.json()["private_revealed"] is True
    board = arena.client.get(url).json()
    assert [e["team_name"] for e in board["entries"]] == ["a"] and board["entries"][0]["rank_change"] == 0
    csv_text = arena.client.get(url + "&format=csv").text
    assert csv_text.splitlines()[1].startswith("1,a,0,")


def test_rotated_token_replaces_the_old_one(world):
    arena, ids = world
    new = arena.client.post("/api/teams/me/token", headers=bearer(ids["a"])).json()["token"]
    assert arena.client.get("/api/teams/me", headers=bearer(ids["a"])).status_code == 401
    me = arena.client.get("/api/teams/me", headers=bearer(new)).json()
    assert me["name"] == "a" and me["quota"]["remaining"] == me["quota"]["limit"] - 1
