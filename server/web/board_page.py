"""The leaderboard page, read by a whole class at once: one rendering per board version and audience
(`server.web.shared`), kept on the board (`Leaderboard.rendered`), and a fast path like the API's.

`BoardPageFastPath` answers `GET /c/{slug}/leaderboard[?board=public|private]` as plain ASGI, ahead of FastAPI's
routing and dependency injection: a lookup in `BoardCache`, the reader's header, the send. A signed-in team's
reader costs a check of its sign-in against the database at most every board max age (`SignedInReaders`).
Whatever it cannot answer (an unknown competition, the private board before the reveal, other parameters) goes on
to the route, which answers with the same function or renders the error page.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from markupsafe import Markup
from starlette.responses import Response
from starlette.types import ASGIApp, Scope

from server.boards.cache import BoardCache, FastPath
from server.boards.ranking import PRIVATE_HIDDEN, Board, Leaderboard, board_visible
from server.competition_dir import load_competition
from server.db import Team
from server.db.crud import get_competition
from server.errors import ArenaError, Forbidden
from server.organizer.settings import competition_announcements
from server.web.browser_session import COOKIE_NAME, WebSession, read_session, signed_in_team, write_session
from server.web.render import templates
from server.web.shared import (
    VIEWERS_KEPT,
    SharedPage,
    SignedInTeam,
    render_shared,
    render_viewer,
    shared_response,
)

logger = logging.getLogger(__name__)


def _rows_html(board: Leaderboard, classes: list[str]) -> Markup:
    """The table rows (`_leaderboard_rows.html`), the most of the page's cost; the same for every audience."""
    template = templates.get_template("_leaderboard_rows.html")
    return Markup(board.rendered(("rows_html", tuple(classes)), lambda board: template.render(
        rows=board.entries, classes=classes, show_rank_change=board.board == "private")))


def _render(app: FastAPI, board: Leaderboard, is_admin: bool) -> SharedPage:
    with app.state.database.sessionmaker() as db:
        comp = load_competition(get_competition(session=db, slug=board.competition))
        announcements = competition_announcements(session=db, slug=board.competition)
    return render_shared(app, "leaderboard.html", {
        "comp": comp, "announcements": announcements, "board": board.board, "rows": board.entries,
        "revealed": board.revealed, "rows_html": _rows_html(board, comp.classes),
        "private_visible": board_visible("private", revealed=board.revealed, is_admin=is_admin),
        "show_rank_change": board.board == "private",
    }, is_admin=is_admin)


def shared_board_page(app: FastAPI, board: Leaderboard, *, is_admin: bool) -> SharedPage:
    """The page of one board version for one audience, rendered once (the settings and announcements shown on it
    bump the board version when they change, like every score)."""
    return board.rendered(("page", is_admin), lambda board: _render(app, board, is_admin))


async def board_page_response(request: Request, slug: str, board: Board, session: WebSession,
                              team: Team | SignedInTeam | None) -> Response:
    """The page for this reader; raises NotFound / Forbidden as the route would."""
    boards: BoardCache = request.app.state.boards
    cached = await boards.get(slug, board)
    if not cached.board.visible_to(is_admin=session.is_admin):
        raise Forbidden(PRIVATE_HIDDEN)
    page: SharedPage | None = cached.board.rendered_before(("page", session.is_admin))
    if page is None:  # the first reader of a new board or audience renders it, off the event loop
        page = await run_in_threadpool(shared_board_page, request.app, cached.board, is_admin=session.is_admin)
    return shared_response(page, render_viewer(request.app, session, team), request.headers)


def _simple_board(query_string: bytes) -> Board | None:
    """The board the query names, when it names nothing else (anything unusual goes to the route)."""
    params = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    if not params:
        return "public"
    if len(params) == 1 and params[0][0] == "board" and params[0][1] in ("public", "private"):
        return params[0][1]  # type: ignore[return-value]
    return None


class BoardPageFastPath(FastPath):
    """Serves the leaderboard page from `BoardCache` and the board's shared rendering; the rest goes on to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        self.readers = SignedInReaders()

    async def respond(self, scope: Scope) -> Response | None:
        path: str = scope["path"]
        if not (path.startswith("/c/") and path.endswith("/leaderboard")):
            return None
        slug, board = path[len("/c/"):-len("/leaderboard")], _simple_board(scope["query_string"])
        if not slug or "/" in slug or board is None:
            return None
        request = Request(scope)
        app: Any = scope["app"]
        settings = app.state.settings
        session, team = await self.readers.get(app, request)
        try:
            response = await board_page_response(request, slug, board, session, team)
        except ArenaError:
            return None  # the route renders the error page
        if COOKIE_NAME in request.cookies:  # a reader without a cookie needs none here: the page holds no form
            write_session(response, session, settings.secret_key, secure=scope.get("scheme") == "https")
        return response


class SignedInReaders:
    """Signed-in teams by session cookie, their sign-in checked against the database at most every board max age.

    The board is public and may be that old, so may its header's sign-in: a team's reader then costs neither a
    signature check nor a query, and a check starts at half the max age while readers keep getting the last
    result, so under steady reads none waits for one. A sign-in that ended (token rotated, team disqualified,
    signed out elsewhere) shows on the board within the max age; forms, team pages and submissions always check
    (`web.deps`). The organizer's sign-in (it opens the private preview), cookies with a flash
    message and failed checks are checked on each request.
    """

    def __init__(self) -> None:
        self._known: dict[str, tuple[dict[str, Any], SignedInTeam, float]] = {}  # cookie: session, team, checked
        self._checking: set[str] = set()

    async def get(self, app: Any, request: Request) -> tuple[WebSession, SignedInTeam | None]:
        raw, max_age = request.cookies.get(COOKIE_NAME, ""), app.state.settings.leaderboard_max_age_seconds
        known = self._known.get(raw) if raw else None
        if known is not None:
            known_fields, known_team, checked_at = known
            age = time.monotonic() - checked_at
            if age <= max_age and raw not in self._checking and age > max_age / 2:
                self._checking.add(raw)
                asyncio.ensure_future(self._check(app, raw, known_fields)).add_done_callback(_log_failure)
            if age <= max_age:
                return WebSession(**known_fields), known_team
        session = read_session(request, app.state.settings.secret_key)
        if not session.signed_in:
            return session, None
        fields = {"team_id": session.team_id, "is_admin": session.is_admin, "key": session.key,
                  "csrf_token": session.csrf_token}
        team = await run_in_threadpool(_viewer, app, session)
        if team is not None and not session.is_admin and session.flash is None and max_age > 0:
            self._remember(raw, fields, team)
        return session, team

    async def _check(self, app: Any, raw: str, fields: dict[str, Any]) -> None:
        try:
            team: SignedInTeam | None = await run_in_threadpool(_viewer, app, WebSession(**fields))
            if team is None:
                self._known.pop(raw, None)  # the next read checks again, in front, and tells the reader
            else:
                self._remember(raw, fields, team)
        finally:
            self._checking.discard(raw)

    def _remember(self, raw: str, fields: dict[str, Any], team: SignedInTeam) -> None:
        if len(self._known) >= VIEWERS_KEPT:
            self._known.clear()
        self._known[raw] = (fields, team, time.monotonic())


def _log_failure(check: asyncio.Future[None]) -> None:
    if not check.cancelled() and check.exception() is not None:
        logger.warning("sign-in check failed: %r", check.exception())


def _viewer(app: Any, session: WebSession) -> SignedInTeam | None:
    """The signed-in team after checking the sign-in against its row (an ended one leaves a flash message)."""
    with app.state.database.sessionmaker() as db:
        team = signed_in_team(db, session, app.state.settings.admin_token, now=app.state.clock())
        return None if team is None else SignedInTeam(team.id, team.name)
