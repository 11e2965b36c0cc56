"""Browser sessions: one signed cookie (itsdangerous) holding who is signed in, a CSRF token and a flash message.

The cookie is signed, not encrypted, so it never holds a secret: a team is stored by id after its token was checked,
an organizer as a flag after the admin token was checked. HttpOnly keeps it away from scripts; SameSite=Lax keeps it
off cross-site POSTs, and every form also carries the session's CSRF token (checked with a constant-time compare).

A sign-in is also a `browser_sessions` row (the cookie holds a random key, the row its hash and the hashes of the
tokens it was opened with); every page checks it, so a session dies with its token: rotation, the team's
disqualification, a changed admin token, or signing out (a copy of the old cookie is then worthless too).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete
from sqlalchemy.orm import Session

from server.db import BrowserSession, Team, begin_write, utcnow
from server.db.crud import hash_token

COOKIE_NAME = "arena_session"
MAX_AGE_SECONDS = 7 * 24 * 3600
_SALT = "fid-arena-web-session"


class CsrfError(Exception):
    """A form arrived without the session's CSRF token (expired page, or a cross-site request)."""


@dataclass
class WebSession:
    team_id: int | None = None
    is_admin: bool = False
    key: str | None = None  # the browser_sessions row's key while signed in
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    flash: tuple[str, str] | None = None  # (kind, text), shown once on the next page
    changed: bool = False

    def sign_in_team(self, team_id: int) -> None:
        self.team_id, self.changed = team_id, True
        self.rotate_csrf()

    def sign_in_admin(self) -> None:
        self.is_admin, self.changed = True, True
        self.rotate_csrf()

    def sign_out(self) -> None:
        self.team_id, self.is_admin, self.key, self.changed = None, False, None, True
        self.rotate_csrf()

    @property
    def signed_in(self) -> bool:
        return self.team_id is not None or self.is_admin

    def rotate_csrf(self) -> None:
        # A new token on every sign-in/out, so a token seen before signing in is useless afterwards.
        self.csrf_token, self.changed = secrets.token_urlsafe(24), True

    def set_flash(self, kind: str, text: str) -> None:
        self.flash, self.changed = (kind, text), True

    def pop_flash(self) -> tuple[str, str] | None:
        flash, self.flash = self.flash, None
        if flash:
            self.changed = True
        return flash

    def check_csrf(self, submitted: str | None) -> None:
        if not submitted or not hmac.compare_digest(submitted, self.csrf_token):
            raise CsrfError("The form expired or did not come from this site. Reload the page and try again.")

    def to_cookie_payload(self) -> dict[str, Any]:
        return {"t": self.team_id, "a": self.is_admin, "k": self.key, "c": self.csrf_token,
                "f": list(self.flash or ()) or None}


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=_SALT)


def read_session(request: Request, secret_key: str) -> WebSession:
    """The request's session, or a fresh anonymous one (marked changed so its cookie gets set)."""
    raw = request.cookies.get(COOKIE_NAME)
    if raw:
        try:
            data = _serializer(secret_key).loads(raw, max_age=MAX_AGE_SECONDS)
            flash = tuple(data["f"]) if data.get("f") else None
            return WebSession(team_id=data.get("t"), is_admin=bool(data.get("a")), key=data.get("k"),
                              csrf_token=data["c"], flash=flash)
        except (BadSignature, KeyError, TypeError, ValueError):
            pass  # tampered, expired or from an older secret: start over as anonymous
    return WebSession(changed=True)


def write_session(response: Response, session: WebSession, secret_key: str, *, secure: bool) -> None:
    """Set the cookie when the session changed (sign-in, new CSRF token, flash message)."""
    if not session.changed:
        return
    response.set_cookie(
        COOKIE_NAME,
        _serializer(secret_key).dumps(session.to_cookie_payload()),
        max_age=MAX_AGE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )


# -- the server side of a sign-in ----------------------------------------------------------------------------------

ENDED = "Your sign-in has ended (the token was replaced, the team was disqualified, or you signed out). Sign in again."


def _row_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def start_signed_in(db: Session, web: WebSession, *, team: Team | None = None, admin_token: str | None = None,
                    now: datetime | None = None) -> None:
    """Record a sign-in (a team, or the organizer) in the session's row, creating the row on the first one."""
    begin_write(db)
    row = db.get(BrowserSession, _row_id(web.key)) if web.key else None
    if row is None:
        web.key = secrets.token_urlsafe(32)
        row = BrowserSession(id=_row_id(web.key), created_at=now or utcnow())
        db.add(row)
    if team is not None:
        row.team_id, row.team_token_hash = team.id, team.token_hash
        web.sign_in_team(team.id)
    if admin_token is not None:
        row.admin_token_hash = hash_token(admin_token)
        web.sign_in_admin()
    db.commit()


def end_signed_in(db: Session, web: WebSession) -> None:
    """Sign out: the row goes, so the cookie (and any copy of it) signs in nobody any more."""
    if web.key:
        begin_write(db)
        db.execute(delete(BrowserSession).where(BrowserSession.id == _row_id(web.key)))
        db.commit()
    web.sign_out()


def signed_in_team(db: Session, web: WebSession, admin_token: str, *, now: datetime | None = None) -> Team | None:
    """The signed-in team after checking the cookie against its row; a sign-in whose token changed ends here."""
    if not web.signed_in:
        return None
    row = db.get(BrowserSession, _row_id(web.key)) if web.key else None
    team = db.get(Team, web.team_id) if web.team_id is not None else None
    team_valid = web.team_id is None or (
        row is not None and team is not None and row.team_id == team.id and team.disqualified_at is None
        and hmac.compare_digest(row.team_token_hash or "", team.token_hash))
    admin_valid = not web.is_admin or (
        row is not None and bool(admin_token) and hmac.compare_digest(row.admin_token_hash or "",
                                                                      hash_token(admin_token)))
    expired = row is not None and (now or utcnow()) - row.created_at > timedelta(seconds=MAX_AGE_SECONDS)
    if team_valid and admin_valid and not expired:
        return team
    end_signed_in(db, web)
    web.set_flash("info", ENDED)
    return None
