"""The refresher's recomputes, in a process of their own (issue 26).

Readers hammering a board keep the server's event loop busy, and with it the GIL. A thread that recomputes a board
then gives the GIL up at every SQLite row step (about 750 a recompute) and waits to get it back each time: a
recompute of 0.07 s took 1.2-3.9 s next to 50 readers, so a new score showed seconds late (docs/BENCHMARKS.md,
issue 26). A process has its own interpreter: `BoardProcess` asks it whether a board's version moved and, when it
did, for the new board, which comes back pickled (250 entries: a few ms) for the refresher to prerender.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from sqlalchemy.engine import make_url

from server.boards.ranking import Board, Leaderboard, leaderboard
from server.db import Database
from server.db.crud import get_competition
from server.jobs.signals import ignore_shutdown_signals

_database: Database | None = None  # the recompute process's own connection pool


def shareable(database_url: str) -> bool:
    """Another process sees this database (not an in-memory SQLite one)."""
    url = make_url(database_url)
    return not url.get_backend_name() == "sqlite" or url.database not in (None, "", ":memory:")


class BoardProcess:
    """One process that recomputes boards; started on the first request, forked from a server that has the ranking
    code loaded already (forkserver), so starting it costs milliseconds, not an interpreter's imports."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_open,
                                   initargs=(self.database_url, os.getpid()))

    def board_if_moved(self, slug: str, board: Board, known_version: int) -> tuple[int, Leaderboard] | None:
        """None while the board's version is `known_version`, else (its version, the board). A process that died
        (killed, out of memory) is replaced for the next call."""
        try:
            return self._pool.submit(_board_if_moved, slug, board, known_version).result()
        except BrokenProcessPool:
            self._pool = self._new_pool()
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _open(database_url: str, server_pid: int) -> None:
    global _database
    _database = Database(database_url)
    # The server stops this process when it shuts down (`close`); a server that died without shutting down
    # (SIGKILL) must not leave it behind.
    ignore_shutdown_signals()
    threading.Thread(target=_exit_with, args=(server_pid,), daemon=True).start()


def _exit_with(server_pid: int) -> None:
    while _alive(server_pid):
        time.sleep(1)
    os._exit(0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _board_if_moved(slug: str, board: Board, known_version: int) -> tuple[int, Leaderboard] | None:
    assert _database is not None, "the recompute process starts with _open"
    with _database.sessionmaker() as session:
        competition = get_competition(session=session, slug=slug)
        if competition.board_version == known_version:
            return None
        return competition.board_version, leaderboard(session=session, competition=competition, board=board,
                                                      is_admin=True)
