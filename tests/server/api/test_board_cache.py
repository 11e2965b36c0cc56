"""The leaderboard read path: database checks per max_age, one check for many readers, the refresher, gzip,
ETag/304, fast path."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import event

from server.api.board_cache import BoardCache, accepts_gzip, simple_query
from server.boards.cache import WATCHED_SECONDS
from server.db import Team
from server.db.crud import create_team, get_competition, register_competition
from server.errors import NotFound
from tests.utils.server_factories import ADMIN_TOKEN, START, add_scored, bearer, make_test_competition


@pytest.fixture
def scored(database, data_dir):
    """(slug, add(name, public)) for a registered competition; add() scores one submission of a new team."""
    competition = make_test_competition(data_dir)
    with database.sessionmaker() as session:
        row = register_competition(session=session, root=competition.root)
        slug = row.slug

    def add(name: str, public: float) -> None:
        with database.sessionmaker() as session:
            row = register_competition(session=session, root=competition.root)
            team = create_team(session=session, competition=row, name=name, now=START)[0]
            add_scored(session, team, public=public, private=public, created_at=START + timedelta(minutes=public))

    return slug, add


@pytest.fixture
def version_checks(database):
    """A list that grows by one for every board check (ranking's board_version query) the database sees."""
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("SELECT competitions.board_version"):
            seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", count)
    yield seen
    event.remove(database.engine, "before_cursor_execute", count)


def names(cached):
    return [e.team_name for e in cached.board.entries]


def test_a_board_is_checked_against_the_database_at_most_every_max_age(database, scored, version_checks):
    slug, add = scored
    add("a", 10.0)
    boards = BoardCache(database, max_age=3600)
    first = asyncio.run(boards.get(slug, "public"))
    add("b", 5.0)
    assert asyncio.run(boards.get(slug, "public")) is first and names(first) == ["a"]
    assert len(version_checks) == 1
    boards.max_age = 0
    assert names(asyncio.run(boards.get(slug, "public"))) == ["b", "a"]
    assert len(version_checks) == 2


def test_many_readers_of_a_stale_board_share_one_check(database, scored, version_checks):
    slug, add = scored
    add("a", 10.0)
    boards = BoardCache(database, max_age=0)

    async def readers():
        return await asyncio.gather(*(boards.get(slug, "public") for _ in range(50)))

    results = asyncio.run(readers())
    assert len(version_checks) == 1 and all(r is results[0] for r in results)


class SlowBoardCache(BoardCache):
    """Holds each database check until `release` is set, to observe readers arriving during a check."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.release = threading.Event()

    def _current_board(self, slug, board):
        assert self.release.wait(timeout=30)
        return super()._current_board(slug, board)

    def _moved_board(self, slug, board, known_version):  # the refresher's check, in its process
        assert self.release.wait(timeout=30)
        return super()._moved_board(slug, board, known_version)


def behind_a_change(database, scored, max_age):
    """(slug, cache, the board it holds): the database has moved on since, and the next check waits for release."""
    slug, add = scored
    add("a", 10.0)
    boards = SlowBoardCache(database, max_age=max_age)
    boards.release.set()
    previous = asyncio.run(boards.get(slug, "public"))
    add("b", 5.0)
    boards.release.clear()
    return slug, boards, previous


def test_readers_arriving_during_a_check_get_the_previous_board_at_once(database, scored):
    slug, boards, previous = behind_a_change(database, scored, max_age=0)

    async def check_then_read():
        checking = asyncio.ensure_future(boards.get(slug, "public"))
        await asyncio.sleep(0.05)
        during = await asyncio.wait_for(boards.get(slug, "public"), timeout=5)
        boards.release.set()
        return during, await checking

    during, checked = asyncio.run(check_then_read())
    assert during is previous and names(checked) == ["b", "a"]


def test_the_refresher_shows_a_new_score_to_steady_readers_long_before_the_max_age(database, scored):
    slug, add = scored
    add("a", 10.0)
    boards = BoardCache(database, max_age=60)  # checked by readers alone, "b" would show after a minute
    first = asyncio.run(boards.get(slug, "public"))
    boards.start()
    try:
        add("b", 5.0)

        async def read_until_b_shows(timeout: float) -> tuple[float, int]:
            started, checks_by_readers = time.monotonic(), 0
            while time.monotonic() - started < timeout:
                cached = await boards.get(slug, "public")
                checks_by_readers += len(boards._checks)
                if names(cached) == ["b", "a"]:
                    return time.monotonic() - started, checks_by_readers
                await asyncio.sleep(0.01)
            raise AssertionError(f"the new score did not show within {timeout} s")

        shown_after, checks_by_readers = asyncio.run(read_until_b_shows(timeout=10))
    finally:
        boards.stop()
    assert names(first) == ["a"] and checks_by_readers == 0  # the readers never checked, nor waited for a check
    assert shown_after < 5  # one poll (0.1 s) and one recompute; generous for a busy 2-core machine


def test_the_refresher_recomputes_in_a_process_of_its_own(database, scored):
    """Readers keep the event loop, and so the GIL, busy; a thread recomputing next to them waited at every SQLite
    row step (1.2-3.9 s for a 0.07 s recompute): the refresher asks a process of its own (boards/recompute.py)."""
    slug, add = scored
    add("a", 10.0)

    class CountingBoardCache(BoardCache):
        in_this_process = 0

        def _current_board(self, slug, board):
            CountingBoardCache.in_this_process += 1
            return super()._current_board(slug, board)

    boards = CountingBoardCache(database, max_age=60)
    asyncio.run(boards.get(slug, "public"))  # the first reader computes it here
    boards.start()
    try:
        add("b", 5.0)
        assert wait_until(lambda: names(asyncio.run(boards.get(slug, "public"))) == ["b", "a"])
    finally:
        boards.stop()
    assert CountingBoardCache.in_this_process == 1  # the new board came from the recompute process
    with database.sessionmaker() as session:  # with the version it read, for the next poll
        assert boards._boards[(slug, "public")].version == get_competition(session=session, slug=slug).board_version


def test_the_refresher_does_not_recompute_a_board_a_reader_just_checked(database, scored):
    """A reader's check records the version it read: a score landing just after must not wait behind a needless
    recompute of the same board (it then showed only after a second one: the slowest score of each server_load
    run, issue 26)."""
    slug, add = scored
    add("a", 10.0)

    answers: list[bool] = []  # per refresher poll: did the recompute process send a board back

    class RecordingBoardCache(BoardCache):
        def _moved_board(self, slug, board, known_version):
            moved = super()._moved_board(slug, board, known_version)
            answers.append(moved is not None)
            return moved

    boards = RecordingBoardCache(database, max_age=60)
    first = asyncio.run(boards.get(slug, "public"))  # the reader checks it in front
    boards.start()
    try:
        assert wait_until(lambda: len(answers) >= 3)
        polls_before, kept = list(answers), boards._boards[(slug, "public")].board
        add("b", 5.0)
        assert wait_until(lambda: names(asyncio.run(boards.get(slug, "public"))) == ["b", "a"])
    finally:
        boards.stop()
    assert not any(polls_before) and kept is first.board  # nothing sent back, nothing replaced
    assert any(answers)  # until the board moved


def test_the_refresher_leaves_a_forgotten_board_forgotten(database, scored):
    slug, boards, previous = behind_a_change(database, scored, max_age=60)
    boards.start()
    try:
        assert wait_until(lambda: boards._refreshing)  # the refresher is inside its query, held by release
        boards.forget(slug)  # e.g. the private board was hidden again: the next reader must check first
        boards.release.set()
        assert wait_until(lambda: not boards._refreshing)
    finally:
        boards.stop()
    assert not boards._boards
    assert names(asyncio.run(boards.get(slug, "public"))) == ["b", "a"]


def test_boards_nobody_reads_are_not_polled(database, scored):
    slug, add = scored
    add("a", 10.0)
    boards = BoardCache(database, max_age=60)
    cached = asyncio.run(boards.get(slug, "public"))
    assert boards._watched() == [(slug, "public")]
    cached.read_at -= WATCHED_SECONDS + 1
    assert boards._watched() == []


def test_the_refresher_runs_while_the_app_serves_and_stops_at_shutdown(make_app):
    arena = make_app(leaderboard_max_age_seconds=1)
    boards = arena.client.app.state.boards
    with arena.client:  # runs the lifespan, as uvicorn does
        refresher = boards._refresher
        assert refresher is not None and refresher.is_alive()
        assert arena.client.get(f"/api/competitions/{arena.slug}/leaderboard").status_code == 200
    assert not refresher.is_alive() and boards._refresher is None


def wait_until(condition, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_an_unknown_competition_raises_not_found_and_caches_nothing(database, scored):
    boards = BoardCache(database, max_age=60)
    with pytest.raises(NotFound):
        asyncio.run(boards.get("no-such-slug", "public"))
    assert not boards._checks and not boards._boards


def test_query_strings_the_fast_path_takes_and_leaves_to_the_route():
    assert simple_query(b"") == ("public", "json")
    assert simple_query(b"board=private&format=csv&utm=x") == ("private", "csv")
    assert simple_query(b"board=secret") is None  # the route answers 422
    assert simple_query(b"board=public&board=private") is None
    assert accepts_gzip("br, gzip;q=0.8") and not accepts_gzip("gzip;q=0") and not accepts_gzip("identity")


def test_api_serves_gzip_and_etag_and_answers_304_until_the_board_changes(arena):
    teams = [arena.create_team(name)[0] for name in ("a", "b", "c", "d")]

    def score(team_id: int, public: float) -> None:
        with arena.database.sessionmaker() as session:
            add_scored(session, session.get(Team, team_id), public=public, private=public, created_at=START)

    for public, team_id in enumerate(teams[:3], start=1):
        score(team_id, float(public))
    url = f"/api/competitions/{arena.slug}/leaderboard"
    plain = arena.client.get(url, headers={"Accept-Encoding": "identity"})
    zipped = arena.client.get(url, headers={"Accept-Encoding": "gzip"})
    assert plain.headers.get("content-encoding") is None and zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == plain.content  # httpx decodes gzip: the same board either way
    assert int(zipped.headers["content-length"]) < len(plain.content) / 2
    assert plain.headers["etag"] == zipped.headers["etag"] and plain.headers["vary"] == "Accept-Encoding"
    etag = plain.headers["etag"]
    unchanged = arena.client.get(url, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    score(teams[3], 0.5)
    changed = arena.client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert [e["team_name"] for e in changed.json()["entries"]] == ["d", "a", "b", "c"]


def test_fast_path_and_route_answer_the_same_bytes(arena):
    arena.create_team("a")
    url = f"/api/competitions/{arena.slug}/leaderboard"
    fast = arena.client.get(url + "?format=csv")
    routed = arena.client.get(url + "?format=csv&format=csv")  # a repeated parameter goes through the route
    assert fast.status_code == routed.status_code == 200
    assert fast.content == routed.content and fast.headers["etag"] == routed.headers["etag"]
    assert fast.headers["content-disposition"] == routed.headers["content-disposition"]
    assert fast.headers["content-type"].startswith("text/csv")


def test_api_errors_keep_their_shape_past_the_fast_path(arena):
    missing = arena.client.get("/api/competitions/nope/leaderboard")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    invalid = arena.client.get(f"/api/competitions/{arena.slug}/leaderboard?board=secret")
    assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "invalid_request"
    hidden = arena.client.get(f"/api/competitions/{arena.slug}/leaderboard?board=private")
    assert hidden.status_code == 403 and hidden.json()["error"]["code"] == "forbidden"
    organizer = arena.client.get(f"/api/competitions/{arena.slug}/leaderboard?board=private",
                                 headers=bearer(ADMIN_TOKEN))
    assert organizer.status_code == 200 and organizer.headers["cache-control"] == "private, no-cache"
