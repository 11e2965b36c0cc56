"""The boards as readers get them: `BoardCache`, shared by the API (JSON/CSV) and the pages (HTML).

Everyone keeps refreshing the leaderboard, so it is answered from memory.
- `BoardCache` remembers each board's last database check. A board checked within `leaderboard_max_age_seconds`
  is served without touching the database. One check per board runs at a time (one query, and a recompute only
  when `board_version` moved), however many readers there are, and readers arriving during it get the previous
  board at once. Under steady reads the check starts at half the max age, so nobody waits for it; only a reader
  who finds the board past its max age with no check running (after a quiet spell, or with max age 0) waits.
- Every rendering of a board (the API's bytes, the pages' HTML) is kept on its `Leaderboard` by
  `Leaderboard.rendered`, so it is made once per board version and dropped exactly when the board changes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from server.boards.ranking import Board, Leaderboard, leaderboard
from server.db import Database
from server.db.crud import get_competition

logger = logging.getLogger(__name__)

GZIP_MIN_BYTES = 500  # smaller bodies gain less than the header costs (Starlette's GZipMiddleware default)


@dataclass
class CachedBoard:
    board: Leaderboard
    checked_at: float  # time.monotonic() of the database check that confirmed it current


class BoardCache:
    """Boards by (competition slug, board), each checked against the database at most every `max_age` seconds.

    `prerender` runs on each new board in the threadpool before any reader gets it (the API's JSON bytes), so the
    first reader after a change does not render on the event loop.
    """

    def __init__(self, database: Database, max_age: float,
                 prerender: Callable[[Leaderboard], object] | None = None) -> None:
        self.database, self.max_age, self.prerender = database, max_age, prerender
        self._boards: dict[tuple[str, Board], CachedBoard] = {}
        self._checks: dict[tuple[str, Board], asyncio.Future[CachedBoard]] = {}

    async def get(self, slug: str, board: Board) -> CachedBoard:
        """The board as organizers see it (callers apply visibility); raises NotFound for an unknown slug."""
        key = (slug, board)
        cached = self._boards.get(key)
        age = math.inf if cached is None else time.monotonic() - cached.checked_at
        if cached is not None and age <= self.max_age / 2:
            return cached
        check = self._checks.get(key)
        if check is None:
            check = self._checks[key] = asyncio.ensure_future(self._check(key, cached))
            check.add_done_callback(_log_failure)  # a check started early may have no reader waiting for it
        elif cached is not None:
            return cached  # being checked right now: the previous board beats queueing behind the check
        if cached is not None and age <= self.max_age:
            return cached  # still fresh: its check starts at half its age, so steady readers never wait for one
        # Shielded: a reader who hangs up must not cancel the check the others are waiting for.
        return await asyncio.shield(check)

    async def _check(self, key: tuple[str, Board], previous: CachedBoard | None) -> CachedBoard:
        try:
            board, checked_at = await run_in_threadpool(self._checked_board, *key, previous)
            if previous is not None and previous.board is board:  # unchanged: keep the rendered bytes
                previous.checked_at = checked_at
                return previous
            fresh = self._boards[key] = CachedBoard(board, checked_at)
            return fresh
        finally:
            del self._checks[key]

    def _checked_board(self, slug: str, board: Board, previous: CachedBoard | None) -> tuple[Leaderboard, float]:
        """The current board and when the database confirmed it; a new one prerendered, before anyone reads it.
        One threadpool hop for both: under a full event loop each hop waited 0.1-0.2 s for the GIL on the busy
        2-core machine, longer than the prerender itself (docs/BENCHMARKS.md, issue 26)."""
        current = self._current_board(slug, board)
        checked_at = time.monotonic()
        if self.prerender is not None and (previous is None or previous.board is not current):
            self.prerender(current)
        return current, checked_at

    def forget(self, slug: str) -> None:
        """Drop a competition's boards (its visibility changed): the next read checks the database first."""
        for key in [key for key in self._boards if key[0] == slug]:
            del self._boards[key]

    def _current_board(self, slug: str, board: Board) -> Leaderboard:
        with self.database.sessionmaker() as session:
            competition = get_competition(session=session, slug=slug)
            return leaderboard(session=session, competition=competition, board=board, is_admin=True)


def _log_failure(check: asyncio.Future[CachedBoard]) -> None:
    if not check.cancelled() and check.exception() is not None:
        logger.warning("leaderboard check failed: %r", check.exception())


def accepts_gzip(accept_encoding: str) -> bool:
    for coding in accept_encoding.split(","):
        name, _, params = coding.strip().partition(";")
        if name.strip().lower() == "gzip":
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def client_has(etag: str, if_none_match: str) -> bool:
    """The client's copy (If-None-Match) is `etag`: answer 304."""
    return if_none_match.strip() == "*" or etag in if_none_match


class FastPath:
    """ASGI middleware that answers some GETs from memory before routing: `respond` returns None for the rest,
    which go on to `app` (the API's board and the board page each have one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.respond(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    async def respond(self, scope: Scope) -> Response | None:
        raise NotImplementedError
