"""Browser sessions: one signed cookie (itsdangerous) holding who is signed in, a CSRF token and a flash message.

The cookie is signed, not encrypted, so it never holds a secret: a team is stored by id after its token was checked,
an organizer as a flag after the admin token was checked. HttpOnly keeps it away from scripts; SameSite=Lax keeps it
off cross-site POSTs, and every form also carries the session's CSRF token (checked with a constant-time compare).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE_NAME = "arena_session"
MAX_AGE_SECONDS = 7 * 24 * 3600
_SALT = "fid-arena-web-session"


class CsrfError(Exception):
    """A form arrived without the session's CSRF token (expired page, or a cross-site request)."""


@dataclass
class WebSession:
    team_id: int | None = None
    is_admin: bool = False
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
        self.team_id, self.is_admin, self.changed = None, False, True
        self.rotate_csrf()

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
        return {"t": self.team_id, "a": self.is_admin, "c": self.csrf_token, "f": list(self.flash or ()) or None}


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=_SALT)


def read_session(request: Request, secret_key: str) -> WebSession:
    """The request's session, or a fresh anonymous one (marked changed so its cookie gets set)."""
    raw = request.cookies.get(COOKIE_NAME)
    if raw:
        try:
            data = _serializer(secret_key).loads(raw, max_age=MAX_AGE_SECONDS)
            flash = tuple(data["f"]) if data.get("f") else None
            return WebSession(team_id=data.get("t"), is_admin=bool(data.get("a")), csrf_token=data["c"], flash=flash)
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
