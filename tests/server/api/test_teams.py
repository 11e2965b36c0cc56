"""Team registration: self-registration where allowed, organizer-only otherwise; token shown once, stored hashed."""

from __future__ import annotations

from sqlalchemy import select

from server.db import Team
from tests.utils.server_factories import ADMIN_TOKEN, bearer


def test_self_registration_returns_the_token_once_and_stores_only_its_hash(arena):
    response = arena.client.post(f"/api/competitions/{arena.slug}/teams", json={"name": "gan-gang", "members": ["A"]})
    assert response.status_code == 201, response.text
    team = response.json()
    assert team["token"].startswith("arena_") and team["members"] == ["A"] and not team["is_baseline"]
    assert f"/api/competitions/{arena.slug}/submissions" in team["submit_hint"]
    with arena.database.sessionmaker() as session:
        stored = session.scalar(select(Team).where(Team.name == "gan-gang"))
        assert stored.token_hash != team["token"] and team["token"] not in stored.token_hash
    assert "token" not in arena.client.get("/api/teams/me", headers=bearer(team["token"])).json()


def test_duplicate_team_name_is_409(arena):
    url = f"/api/competitions/{arena.slug}/teams"
    assert arena.client.post(url, json={"name": "x"}).status_code == 201
    response = arena.client.post(url, json={"name": "x"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "conflict"


def test_closed_registration_needs_the_organizer(make_app):
    arena = make_app(competition={"self_registration": False})
    url = f"/api/competitions/{arena.slug}/teams"
    assert arena.client.post(url, json={"name": "x"}).status_code == 401
    created = arena.client.post(url, json={"name": "x"}, headers=bearer(ADMIN_TOKEN))
    assert created.status_code == 201
    assert arena.client.post(url, json={"name": "y"}, headers=bearer(created.json()["token"])).status_code == 403


def test_unknown_competition_and_malformed_body_use_the_error_shape(arena):
    missing = arena.client.post("/api/competitions/nope/teams", json={"name": "x"})
    assert missing.status_code == 404 and "test-comp" in missing.json()["error"]["message"]
    malformed = arena.client.post(f"/api/competitions/{arena.slug}/teams", json={"members": "x"})
    assert malformed.status_code == 422 and malformed.json()["error"]["code"] == "invalid_request"


def test_competitions_list_and_health(arena):
    listed = arena.client.get("/api/competitions").json()
    assert listed["count"] == 1
    first = listed["data"][0]
    assert (first["slug"], first["images_per_class"], first["daily_limit"]) == (arena.slug, 2, 5)
    health = arena.client.get("/healthz").json()
    assert health["status"] == "ok" and health["competitions"] == 1
    assert "/api/competitions/{slug}/submissions" in arena.client.get("/openapi.json").json()["paths"]
