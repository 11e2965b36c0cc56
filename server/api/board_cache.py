"""The leaderboard read path. Everyone keeps refreshing this page, so it is answered from memory.

- `BoardCache` remembers each board's last database check. A board checked within `leaderboard_max_age_seconds`
  is served without touching the database. One check per board runs at a time (one query, and a recompute only
  when `board_version` moved), however many readers there are, and readers arriving during it get the previous
  board at once. Under steady reads the check starts at half the max age, so nobody waits for it; only a reader
  who finds the board past its max age with no check running (after a quiet spell, or with max age 0) waits.
- Each board is rendered once per format (JSON, CSV, each also gzipped) with an ETag, so a reader costs a lookup,
  and a client that already holds the board gets 304.
- `LeaderboardFastPath` answers the common read (the public board, or the private one once revealed) as plain
  ASGI, ahead of FastAPI's routing and dependency injection, which cost several times the send itself. Every
  other request (the private board before the reveal, bad parameters, an unknown competition) goes on to the
  route in `routes/leaderboard.py`, which uses this same cache.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Literal, get_args
from urllib.parse import parse_qsl

from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from server.db import Database
from server.db.crud import get_competition
from server.errors import ArenaError
from server.ranking import Board, Leaderboard, leaderboard, leaderboard_csv

logger = logging.getLogger(__name__)

Format = Literal["json", "csv"]
MEDIA_TYPES: dict[Format, str] = {"json": "application/json", "csv": "text/csv; charset=utf-8"}
GZIP_MIN_BYTES = 500  # smaller bodies gain less than the header costs (Starlette's GZipMiddleware default)


@dataclass(frozen=True)
class Rendered:
    """One board in one format: the bytes, the same bytes gzipped, and their ETag."""

    body: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> Rendered:
        digest = hashlib.blake2b(body, digest_size=12).hexdigest()
        return cls(body, gzip.compress(body, compresslevel=6, mtime=0), f'"{digest}"')


def _render(fmt: Format, board: Leaderboard) -> Rendered:
    return Rendered.of((board.model_dump_json() if fmt == "json" else leaderboard_csv(board)).encode())


@dataclass
class CachedBoard:
    board: Leaderboard
    checked_at: float  # time.monotonic() of the database check that confirmed it current

    def rendered(self, fmt: Format) -> Rendered:
        """The bytes in one format, kept with the board (ranking's one board cache: `Leaderboard.rendered`)."""
        return self.board.rendered(("api", fmt), lambda board: _render(fmt, board))


class BoardCache:
    """Boards by (competition slug, board), each checked against the database at most every `max_age` seconds."""

    def __init__(self, database: Database, max_age: float) -> None:
        self.database, self.max_age = database, max_age
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
            board = await run_in_threadpool(self._current_board, *key)
            if previous is not None and previous.board is board:  # unchanged: keep the rendered bytes
                previous.checked_at = time.monotonic()
                return previous
            fresh = CachedBoard(board, time.monotonic())
            await run_in_threadpool(fresh.rendered, "json")  # render off the event loop, before anyone reads it
            self._boards[key] = fresh
            return fresh
        finally:
            del self._checks[key]

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


def board_response(cached: CachedBoard, fmt: Format, headers: Headers) -> Response:
    """200 with the board (gzipped when the client accepts it), or 304 when the client's copy is current."""
    rendered, board = cached.rendered(fmt), cached.board
    response_headers = {"ETag": rendered.etag, "Vary": "Accept-Encoding",
                        "Cache-Control": "no-cache" if board.visible_to(is_admin=False) else "private, no-cache"}
    if fmt == "csv":
        response_headers["Content-Disposition"] = (
            f'attachment; filename="{board.competition}-{board.board}-leaderboard.csv"')
    if_none_match = headers.get("if-none-match", "")
    if if_none_match.strip() == "*" or rendered.etag in if_none_match:
        return Response(status_code=304, headers=response_headers)
    body = rendered.body
    if len(body) >= GZIP_MIN_BYTES and accepts_gzip(headers.get("accept-encoding", "")):
        body, response_headers["Content-Encoding"] = rendered.gzipped, "gzip"
    return Response(body, media_type=MEDIA_TYPES[fmt], headers=response_headers)


LEADERBOARD_PATH = re.compile(r"/api/competitions/([^/]+)/leaderboard")
BOARDS, FORMATS = frozenset(get_args(Board)), frozenset(get_args(Format))


def simple_query(query_string: bytes) -> tuple[Board, Format] | None:
    """(board, format) from a query string the route would accept unchanged; None for anything unusual."""
    params = {"board": "public", "format": "json"}
    seen: set[str] = set()
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name in params:
            if name in seen:
                return None
            seen.add(name)
            params[name] = value
    if params["board"] not in BOARDS or params["format"] not in FORMATS:
        return None
    return params["board"], params["format"]  # type: ignore[return-value]


class LeaderboardFastPath:
    """Serves publicly visible boards straight from `BoardCache`; everything else goes on to `app`."""

    def __init__(self, app: ASGIApp, boards: BoardCache) -> None:
        self.app, self.boards = app, boards

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._respond(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    async def _respond(self, scope: Scope) -> Response | None:
        match = LEADERBOARD_PATH.fullmatch(scope["path"])
        query = simple_query(scope["query_string"]) if match else None
        if match is None or query is None:
            return None
        board, fmt = query
        try:
            cached = await self.boards.get(match.group(1), board)
        except ArenaError:
            return None  # the route answers it, in the API's error shape
        if not cached.board.visible_to(is_admin=False):
            return None  # only organizers may read it: the route checks the token
        return board_response(cached, fmt, Headers(scope=scope))
