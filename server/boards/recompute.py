"""The refresher's recomputes, in a process of their own (issue 26).

Readers hammering a board keep the server's event loop busy, and with it the GIL. A thread that recomputes a board
then gives the GIL up at every SQLite row step (about 750 a recompute) and waits to get it back each time: a
recompute of 0.07 s took 1.2-3.9 s next to 50 readers, so a new score showed seconds late (docs/BENCHMARKS.md,
issue 26). A process has its own interpreter: `BoardProcess` asks it whether a board's version moved and, when it
did, for the new board, which comes back pickled (250 entries: a few ms) for the refresher to prerender.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from sqlalchemy.engine import make_url

from server.boards.ranking import Board, Leaderboard, leaderboard
from server.db import Database
from server.db.crud import get_competition

_database: Database | None = None  # the recompute process's own connection pool


def shareable(database_url: str) -> bool:
    """Another process sees this database (not an in-memory SQLite one)."""
    url = make_url(database_url)
    return not url.get_backend_name() == "sqlite" or url.database not in (None, "", ":memory:")


class BoardProcess:
    """One process that recomputes boards; started on the first request, forked from a server that has the ranking
    code loaded already (forkserver), so starting it costs milliseconds, not an interpreter's imports."""

    def __init__(self, database_url: str) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_open, initargs=(database_url,))

    def board_if_moved(self, slug: str, board: Board, known_version: int | None) -> tuple[int, Leaderboard] | None:
        """None while the board's version is `known_version`, else (its version, the board)."""
        return self._pool.submit(_board_if_moved, slug, board, known_version).result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _open(database_url: str) -> None:
    global _database
    _database = Database(database_url)


def _board_if_moved(slug: str, board: Board, known_version: int | None) -> tuple[int, Leaderboard] | None:
    assert _database is not None, "the recompute process starts with _open"
    with _database.sessionmaker() as session:
        competition = get_competition(session=session, slug=slug)
        if competition.board_version == known_version:
            return None
        return competition.board_version, leaderboard(session=session, competition=competition, board=board,
                                                      is_admin=True)
