"""A browser session dies with the token it was opened with (rotation, disqualification, sign-out, a new admin
token), and form POSTs from another site are refused even with a valid CSRF token (issue 12)."""

from __future__ import annotations

import io

import pytest

from server.app import create_app
from server.db.crud import disqualify_team, rotate_team_token
from tests.utils.server_factories import ADMIN_TOKEN, Arena, csrf_of


@pytest.fixture
def arena(data_dir):
    return Arena(data_dir)


def signed_in(client) -> bool:
    return "Team <strong>alpha</strong>" in client.get("/c/test-comp/submit").text


def try_submit(client) -> int:
    csrf = csrf_of(client.get("/signin").text)
    return client.post("/c/test-comp/submit", data={"csrf_token": csrf},
                       files={"file": ("s.zip", io.BytesIO(b"PK\x05\x06" + b"\0" * 18), "application/zip")}).status_code


@pytest.mark.parametrize("how", ["rotate", "disqualify"])
def test_a_session_ends_when_its_token_is_rotated_or_the_team_disqualified(arena, how):
    client = arena.client()
    arena.sign_in(client, arena.alpha_token)
    assert signed_in(client)
    with arena.database.sessionmaker() as db:
        if how == "rotate":
            rotate_team_token(session=db, team=arena.alpha)
        else:
            disqualify_team(session=db, team_id=arena.alpha.id, reason="test")
    page = client.get("/c/test-comp/submit").text
    assert "Team <strong>alpha</strong>" not in page and "Your sign-in has ended" in page
    assert try_submit(client) == 403  # "sign in before submitting": nothing was created
    assert client.get(f"/teams/{arena.alpha.id}").status_code == 403


def test_signing_out_ends_the_session_for_every_copy_of_the_cookie(arena):
    client = arena.client()
    arena.sign_in(client, arena.alpha_token)
    stolen = dict(client.cookies)
    csrf = csrf_of(client.get("/c/test-comp").text)
    assert client.post("/signout", data={"csrf_token": csrf}).status_code == 303
    replay = arena.client()
    replay.cookies.update(stolen)
    assert not signed_in(replay)


def test_an_organizer_session_ends_when_the_admin_token_changes(arena):
    client = arena.client()
    arena.sign_in_admin(client)
    assert client.get("/admin").status_code == 200
    cookies = dict(client.cookies)
    arena.app = create_app(arena.settings.model_copy(update={"admin_token": ADMIN_TOKEN + "-new"}))
    client = arena.client()
    client.cookies.update(cookies)
    assert client.get("/admin").status_code == 403


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Referer": "https://evil.example/page"},
                                     {"Origin": "null"}])
def test_cross_site_form_posts_are_refused_even_with_the_csrf_token(arena, headers):
    client = arena.client()
    arena.sign_in(client, arena.alpha_token)
    csrf = csrf_of(client.get("/c/test-comp").text)
    refused = client.post("/signout", data={"csrf_token": csrf}, headers=headers)
    assert refused.status_code == 403 and "another site" in refused.text
    assert signed_in(client)
    same_site = client.post("/signout", data={"csrf_token": csrf}, headers={"Origin": "http://testserver"})
    assert same_site.status_code == 303


@pytest.mark.parametrize("team", ["²", "99999999999999999999", "-1", "abc"])
def test_the_admin_submission_filter_takes_any_team_text(arena, team):
    client = arena.client()
    arena.sign_in_admin(client)
    assert client.get(f"/admin/submissions?team={team}").status_code == 200
