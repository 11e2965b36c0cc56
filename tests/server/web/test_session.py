"""The signed session cookie: round trip, tampering, CSRF checks, cookie flags."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient

from server.web.browser_session import COOKIE_NAME, CsrfError, WebSession, read_session, write_session

SECRET = "test-secret-key-for-the-session-cookie"


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/signin/{team_id}")
    def signin(team_id: int, request: Request, response: Response) -> dict:
        session = read_session(request, SECRET)
        session.sign_in_team(team_id)
        write_session(response, session, SECRET, secure=False)
        return {"csrf": session.csrf_token}

    @app.get("/me")
    def me(request: Request) -> dict:
        session = read_session(request, SECRET)
        return {"team_id": session.team_id, "admin": session.is_admin, "csrf": session.csrf_token}

    return app


def test_signed_cookie_round_trip_and_flags():
    client = TestClient(_app())
    response = client.post("/signin/7")
    header = response.headers["set-cookie"]
    assert "HttpOnly" in header and "SameSite=lax" in header and "Path=/" in header
    me = client.get("/me").json()
    assert me == {"team_id": 7, "admin": False, "csrf": response.json()["csrf"]}


def test_tampered_cookie_is_anonymous():
    client = TestClient(_app())
    client.post("/signin/7")
    value = client.cookies[COOKIE_NAME]
    # Flip one character of the payload: the signature no longer matches, so nobody can forge a team id.
    forged = value[:5] + ("A" if value[5] != "A" else "B") + value[6:]
    client.cookies.set(COOKIE_NAME, forged)
    assert client.get("/me").json()["team_id"] is None


def test_cookie_signed_with_another_secret_is_rejected():
    session = WebSession(team_id=3, is_admin=True, changed=True)
    response = Response()
    write_session(response, session, "another-secret", secure=False)
    cookie = response.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    me = TestClient(_app(), cookies={COOKIE_NAME: cookie}).get("/me").json()
    assert (me["team_id"], me["admin"]) == (None, False)
    assert me["csrf"] != session.csrf_token


@pytest.mark.parametrize("submitted", [None, "", "wrong-token"])
def test_csrf_check_rejects_missing_or_wrong_token(submitted):
    session = WebSession()
    with pytest.raises(CsrfError, match="Reload the page"):
        session.check_csrf(submitted)


def test_csrf_token_changes_on_sign_in():
    session = WebSession()
    before = session.csrf_token
    session.check_csrf(before)
    session.sign_in_admin()
    assert session.csrf_token != before
    with pytest.raises(CsrfError):
        session.check_csrf(before)
