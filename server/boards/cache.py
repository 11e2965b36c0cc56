"""The boards as readers get them: `BoardCache`, shared by the API (JSON/CSV) and the pages (HTML).

Everyone keeps refreshing the leaderboard, so it is answered from memory.
- `BoardCache` remembers each board and when the database last confirmed it. A board confirmed within
  `leaderboard_max_age_seconds` is served without touching the database, and without awaiting anything.
- While the server runs (`start` in the app's lifespan), one refresher thread keeps the boards that readers read
  fresh: every `poll_interval` (a quarter of the max age, at most 0.1 s) it asks each board read within
  `WATCHED_SECONDS` for its `board_version` (one cheap query), and only when that moved recomputes the board,
  prerenders it and swaps it in. A new score is so visible within one poll interval and one recompute, however many
  readers there are: detecting a change does not wait for a reader, and the event loop makes no threadpool hop
  for it (a check started by readers waited for them: about max age / 2 + two checks, 2-3 s on a busy 2-core
  machine; docs/BENCHMARKS.md, issue 26). The poll and the recompute run in a process of their own
  (server/boards/recompute.py): next to readers that keep the GIL busy, a thread took 1.2-3.9 s for a 0.07 s
  recompute. An in-memory database, which no other process sees, is recomputed in the thread.
- A reader who finds no board, or one past its max age (the first read, a board unread for a while, max age 0, or
  no refresher), checks it in front and waits: one check per board at a time, however many readers arrive, and
  readers arriving while a board is being checked (by them or the refresher) get the previous board at once.
- Every rendering of a board (the API's bytes, the pages' HTML) is kept on its `Leaderboard` by
  `Leaderboard.rendered`, so it is made once per board version and dropped exactly when the board changes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from server.boards.ranking import Board, Leaderboard, leaderboard
from server.boards.recompute import BoardProcess, shareable
from server.db import Database
from server.db.crud import get_competition

logger = logging.getLogger(__name__)

GZIP_MIN_BYTES = 500  # smaller bodies gain less than the header costs (Starlette's GZipMiddleware default)
WATCHED_SECONDS = 60.0  # a board unread this long is no longer polled: its next reader checks it, and waits
# A new score shows within one poll and one recompute, with a longer max age too. A poll is two primary-key
# lookups (about 1 ms), ten a second per board read lately; the recompute (0.3-0.9 s on the busy 2-core machine
# with 50 readers) dominates the wait anyway.
MAX_POLL_INTERVAL = 0.1

BoardKey = tuple[str, Board]


@dataclass
class CachedBoard:
    board: Leaderboard
    checked_at: float  # time.monotonic() of the database check that confirmed it current
    read_at: float  # time.monotonic() of its last reader: the refresher polls boards read within WATCHED_SECONDS
    version: int  # its competition's board_version when it was computed (the refresher's polls compare it)


class BoardCache:
    """Boards by (competition slug, board), each confirmed by the database at most `max_age` seconds ago.

    `prerender` runs on each new board off the event loop before any reader gets it (the API's JSON bytes, the
    teams' page), so the first reader after a change does not render on the event loop.
    """

    def __init__(self, database: Database, max_age: float,
                 prerender: Callable[[Leaderboard], object] | None = None) -> None:
        self.database, self.max_age, self.prerender = database, max_age, prerender
        self.poll_interval = min(max_age / 4, MAX_POLL_INTERVAL)
        self._boards: dict[BoardKey, CachedBoard] = {}
        self._checks: dict[BoardKey, asyncio.Future[CachedBoard]] = {}  # by readers, on the event loop
        self._refreshing: set[BoardKey] = set()  # by the refresher thread
        self._swap = threading.Lock()  # the refresher, readers' checks and forget (a route's thread) all write
        self._stopping = threading.Event()
        self._refresher: threading.Thread | None = None
        self._process: BoardProcess | None = None

    async def get(self, slug: str, board: Board) -> CachedBoard:
        """The board as organizers see it (callers apply visibility); raises NotFound for an unknown slug."""
        key, now = (slug, board), time.monotonic()
        cached = self._boards.get(key)
        if cached is not None:
            cached.read_at = now
            if now - cached.checked_at <= self.max_age or key in self._refreshing or key in self._checks:
                return cached  # fresh, or being checked: the previous board beats queueing behind the check
        check = self._checks.get(key)
        if check is None:
            check = self._checks[key] = asyncio.ensure_future(self._check(key, cached))
        # Shielded: a reader who hangs up must not cancel the check the others are waiting for.
        return await asyncio.shield(check)

    def start(self) -> None:
        """Keep the boards readers read fresh from a thread of its own (the app's lifespan); with max age 0 every
        reader checks anyway."""
        if self.max_age > 0 and self._refresher is None:
            self._stopping.clear()
            if shareable(self.database.url):
                self._process = BoardProcess(self.database.url)
            self._refresher = threading.Thread(target=self._refresh_until_stopped, name="board-refresher",
                                               daemon=True)  # daemon: a stuck query must not keep the process up
            self._refresher.start()

    def stop(self) -> None:
        """Stop the refresher (the app's shutdown), after the poll it is in."""
        if self._refresher is not None:
            self._stopping.set()
            self._refresher.join(timeout=10)
            self._refresher = None
        if self._process is not None:
            self._process.close()
            self._process = None

    def forget(self, slug: str) -> None:
        """Drop a competition's boards (its visibility changed): the next read checks the database first."""
        with self._swap:
            for key in [key for key in self._boards if key[0] == slug]:
                del self._boards[key]

    async def _check(self, key: BoardKey, previous: CachedBoard | None) -> CachedBoard:
        try:
            return self._keep(key, previous, *await run_in_threadpool(self._checked_board, *key, previous))
        finally:
            del self._checks[key]

    def _refresh_until_stopped(self) -> None:
        while not self._stopping.wait(self.poll_interval):
            for key in self._watched():
                try:
                    self._refresh(key)
                except Exception:  # e.g. the database away for a moment: the next poll tries again
                    logger.warning("refreshing the leaderboard %s failed", key, exc_info=True)

    def _watched(self) -> list[BoardKey]:
        """The boards read lately that no reader is checking right now."""
        since = time.monotonic() - WATCHED_SECONDS
        return [key for key, cached in self._boards.copy().items()
                if cached.read_at >= since and key not in self._checks]

    def _refresh(self, key: BoardKey) -> None:
        previous = self._boards.get(key)
        if previous is None:
            return
        self._refreshing.add(key)
        try:
            if self._process is None:  # an in-memory database: only this process sees it
                self._keep(key, previous, *self._checked_board(*key, previous))
                return
            moved = self._moved_board(*key, previous.version)
            checked_at = time.monotonic()
            if moved is None:
                previous.checked_at = checked_at
                return
            version, board = moved
            if self.prerender is not None:
                self.prerender(board)
            self._keep(key, previous, board, checked_at, version)
        finally:
            self._refreshing.discard(key)

    def _moved_board(self, slug: str, board: Board, known_version: int) -> tuple[int, Leaderboard] | None:
        """From the recompute process (server/boards/recompute.py): None while the board is at `known_version`."""
        assert self._process is not None
        return self._process.board_if_moved(slug, board, known_version)

    def _keep(self, key: BoardKey, previous: CachedBoard | None, board: Leaderboard, checked_at: float,
              version: int) -> CachedBoard:
        """The checked board, kept in place of `previous` unless that was forgotten or replaced meanwhile."""
        if previous is not None and previous.board is board:  # unchanged: keep the rendered bytes
            previous.checked_at, previous.version = checked_at, version
            return previous
        fresh = CachedBoard(board, checked_at, read_at=checked_at if previous is None else previous.read_at,
                            version=version)
        with self._swap:
            if self._boards.get(key) is previous:
                self._boards[key] = fresh
        return fresh

    def _checked_board(self, slug: str, board: Board,
                       previous: CachedBoard | None) -> tuple[Leaderboard, float, int]:
        """The current board, when the database confirmed it and its version; a new one prerendered, before anyone
        reads it. One threadpool hop for both when a reader checks: under a full event loop each hop waited
        0.1-0.2 s for the GIL on the busy 2-core machine, longer than the prerender itself (docs/BENCHMARKS.md,
        issue 26)."""
        current, version = self._current_board(slug, board)
        checked_at = time.monotonic()
        if self.prerender is not None and (previous is None or previous.board is not current):
            self.prerender(current)
        return current, checked_at, version

    def _current_board(self, slug: str, board: Board) -> tuple[Leaderboard, int]:
        """The board and its `board_version`, read before the board (so the board is at least that new): with it
        the refresher's next poll finds the board unchanged instead of recomputing it once more. A board unread for
        `WATCHED_SECONDS` is checked by its next reader, and a score landing during that extra recompute showed
        only after a second one (the slowest score of each server_load run, 0.9-1.1 s; issue 26)."""
        with self.database.sessionmaker() as session:
            competition = get_competition(session=session, slug=slug)
            version = competition.board_version
            return leaderboard(session=session, competition=competition, board=board, is_admin=True), version


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
