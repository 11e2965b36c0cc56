"""Pages a whole class reads at once: one rendering per version and audience, the viewer's header per request,
ETag/304, gzip, and nothing of one viewer in another's copy. Through the real app (TestClient, SQLite)."""

from __future__ import annotations

import gzip
import os
import re
import secrets
import time
import zlib

import pytest

from server.app import create_app
from server.db.crud import get_competition, rotate_team_token
from server.jobs import queue
from server.organizer.settings import announce
from server.uploads.rules import create_submission
from server.web import board_page
from server.web.shared import SharedPage
from tests.utils.serve import running_server
from tests.utils.server_factories import Arena, csrf_of

BOARD = "/c/test-comp/leaderboard"
VIEWER_HEADER = re.compile(r'<header class="topbar".*?</header>\n(<div class="wrap flash">.*?</div></div>)?', re.S)


@pytest.fixture
def arena(data_dir):
    return Arena(data_dir)


@pytest.fixture
def renders(monkeypatch):
    """How many times the board page was rendered, per audience (organizer True/False)."""
    counts = {False: 0, True: 0}
    original = board_page._render

    def counting(app, board, is_admin):
        counts[is_admin] += 1
        return original(app, board, is_admin)

    monkeypatch.setattr(board_page, "_render", counting)
    return counts


def without_header(html: str) -> str:
    return VIEWER_HEADER.sub("", html, count=1)


def header_of(html: str) -> str:
    match = VIEWER_HEADER.search(html)
    assert match, "the page has no viewer header"
    return match.group(0)


def readers(arena):
    alpha, beta, anonymous, organizer = arena.client(), arena.client(), arena.client(), arena.client()
    arena.sign_in(alpha, arena.alpha_token)
    arena.sign_in(beta, arena.beta_token)
    arena.sign_in_admin(organizer)
    return alpha, beta, anonymous, organizer


@pytest.mark.parametrize("viewer", [b"", b"<header>x</header>", "<p>Team <b>\u00e9\u00e8 \u2713</b></p>".encode()])
def test_a_spliced_gzip_body_decompresses_to_the_page_with_the_viewer_header(viewer):
    html = "<html><body>" + "<tr><td>row</td></tr>" * 2000 + "<!--arena:viewer-->" + "<p>tail</p>" * 500 + "</html>"
    page = SharedPage.of(html)
    expected = html.replace("<!--arena:viewer-->", viewer.decode()).encode()
    assert page.body(viewer) == expected
    assert gzip.decompress(page.gzipped(viewer)) == expected
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one stream, as a browser reads it: CRC and size checked
    assert stream.decompress(page.gzipped(viewer)) == expected and stream.eof and not stream.unused_data
    assert len(page.gzipped(viewer)) < len(expected) / 5
    with pytest.raises(ValueError, match="viewer slot"):
        SharedPage.of("<html>no slot</html>")


def test_the_board_page_has_an_etag_answers_304_and_is_gzipped(arena):
    arena.scored_submission(arena.alpha, 100.0, 300.0)
    client = arena.client()
    first = client.get(BOARD, headers={"Accept-Encoding": "gzip"})
    assert first.status_code == 200 and first.headers["content-encoding"] == "gzip"
    assert first.headers["etag"] and "Accept-Encoding" in first.headers["vary"] and "Cookie" in first.headers["vary"]
    assert first.headers["cache-control"] == "private, no-cache"
    plain = client.get(BOARD, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.text == first.text and "100.00" in plain.text
    assert plain.headers["etag"] == first.headers["etag"]
    again = client.get(BOARD, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    head = client.head(BOARD)
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == first.headers["etag"]
    assert "set-cookie" not in first.headers  # a reader without a cookie gets none: the page holds no form
    arena.scored_submission(arena.beta, 50.0, 300.0)
    changed = client.get(BOARD, headers={"If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200 and "50.00" in changed.text and changed.headers["etag"] != first.headers["etag"]


def test_two_teams_an_anonymous_reader_and_the_organizer_each_see_only_their_own_marks(arena, renders):
    arena.scored_submission(arena.alpha, 100.0, 300.0)
    arena.scored_submission(arena.beta, 200.0, 150.0)
    alpha, beta, anonymous, organizer = readers(arena)
    for _ in range(3):  # interleaved: any copy kept from one reader would show in the next one's page
        pages = {name: client.get(BOARD).text for name, client in
                 (("organizer", organizer), ("alpha", alpha), ("anonymous", anonymous), ("beta", beta))}
        assert f'data-team="{arena.alpha.id}">' in header_of(pages["alpha"])
        assert f'data-team="{arena.beta.id}">' in header_of(pages["beta"])
        assert "data-team" not in header_of(pages["anonymous"]) + header_of(pages["organizer"])
        assert "Team <strong>alpha</strong>" in pages["alpha"] and "Team <strong>alpha" not in pages["beta"]
        assert "Team <strong>" not in pages["anonymous"] and "Sign out" not in pages["anonymous"]
        for name in ("alpha", "beta"):  # one CSRF token per session, in its own page only
            token = csrf_of(pages[name])
            assert all(token not in pages[other] for other in pages if other != name)
        # The teams and the anonymous reader get the same page apart from the header; no row is marked in it.
        assert without_header(pages["alpha"]) == without_header(pages["beta"]) == without_header(pages["anonymous"])
        assert 'class="mine' not in "".join(pages.values())
        # The organizer's parts (private preview tab, settings tabs) reach the organizer only.
        assert "organizer preview" in pages["organizer"] and "/admin/c/test-comp/settings" in pages["organizer"]
        for name in ("alpha", "beta", "anonymous"):
            assert "organizer preview" not in pages[name] and "/admin/c/test-comp/settings" not in pages[name]
            assert "badge reference\">organizer" not in pages[name]
    assert renders == {False: 1, True: 1}  # once per audience for 12 reads
    arena.scored_submission(arena.beta, 42.0, 150.0)
    assert "42.00" in alpha.get(BOARD).text and "42.00" in organizer.get(BOARD).text
    assert renders == {False: 2, True: 2}


def test_the_overview_and_a_team_page_keep_viewers_apart(arena):
    arena.scored_submission(arena.alpha, 100.0, 300.0)
    alpha, beta, anonymous, organizer = readers(arena)
    overview = {name: client.get("/c/test-comp") for name, client in
                (("alpha", alpha), ("organizer", organizer), ("beta", beta), ("anonymous", anonymous))}
    assert all(page.headers["etag"] and page.headers["content-encoding"] == "gzip" for page in overview.values())
    assert without_header(overview["alpha"].text) == without_header(overview["anonymous"].text)
    assert "/admin/c/test-comp/settings" in overview["organizer"].text
    assert "/admin/c/test-comp/settings" not in overview["alpha"].text + overview["beta"].text
    assert "Team <strong>alpha" in overview["alpha"].text and "Team <strong>alpha" not in overview["beta"].text
    assert anonymous.get("/c/test-comp", headers={"If-None-Match": overview["anonymous"].headers["etag"]}
                         ).status_code == 304
    team = f"/teams/{arena.alpha.id}"
    own, seen_by_organizer = alpha.get(team), organizer.get(team)
    assert own.status_code == 200 and seen_by_organizer.status_code == 200
    assert beta.get(team).status_code == 403 and anonymous.get(team).status_code == 403
    assert "Private score" in seen_by_organizer.text and "Private score" not in own.text  # before the reveal
    assert alpha.get(team, headers={"If-None-Match": own.headers["etag"]}).status_code == 304
    arena.scored_submission(arena.alpha, 90.0, 300.0)
    assert alpha.get(team, headers={"If-None-Match": own.headers["etag"]}).status_code == 200


def test_an_announcement_reaches_the_board_page(arena):
    client = arena.client()
    assert "Mind the deadline" not in client.get(BOARD).text
    with arena.database.sessionmaker() as session:
        announce(session=session, competition=get_competition(session=session, slug="test-comp"),
                 message="Mind the deadline", actor="test")
    assert "Mind the deadline" in client.get(BOARD).text
    assert "Mind the deadline" in client.get("/c/test-comp").text


def test_a_cached_board_page_still_ends_a_sign_in_whose_token_was_rotated(arena):
    alpha = arena.client()
    arena.sign_in(alpha, arena.alpha_token)
    assert "Team <strong>alpha" in alpha.get(BOARD).text
    with arena.database.sessionmaker() as session:
        rotate_team_token(session=session, team=session.merge(arena.alpha))
    after = alpha.get(BOARD).text
    assert "Team <strong>alpha" not in after and "Your sign-in has ended" in after
    assert "Your sign-in has ended" not in alpha.get(BOARD).text  # a flash message shows once


def test_the_board_page_checks_a_team_sign_in_again_after_the_board_max_age(data_dir):
    arena = Arena(data_dir)
    arena.app = create_app(arena.settings.model_copy(update={"leaderboard_max_age_seconds": 0.3}),
                           database=arena.database)
    alpha = arena.client()
    arena.sign_in(alpha, arena.alpha_token)
    for _ in range(3):  # the sign-in's flash, then the remembered sign-in
        assert "Team <strong>alpha" in alpha.get(BOARD).text
    with arena.database.sessionmaker() as session:
        rotate_team_token(session=session, team=session.merge(arena.alpha))
    assert "Team <strong>alpha" not in alpha.get(f"/teams/{arena.alpha.id}").text  # other pages check at once
    alpha.cookies.clear()
    arena.sign_in(alpha, arena.beta_token)  # a new cookie is a new reader: checked before it is remembered
    assert "Team <strong>&lt;script" in alpha.get(BOARD).text
    time.sleep(0.4)
    with arena.database.sessionmaker() as session:
        rotate_team_token(session=session, team=session.merge(arena.beta))
    ended = alpha.get(BOARD).text  # past the max age: checked again before the page is sent
    assert "Team <strong>" not in ended and "Your sign-in has ended" in ended


def test_unusual_reads_of_the_board_page_get_the_routes_answers(arena):
    arena.scored_submission(arena.alpha, 100.0, 300.0)
    client = arena.client()
    assert client.get(BOARD + "?board=private").status_code == 403  # before the reveal: the error page
    assert "hidden until the organizer reveals it" in client.get(BOARD + "?board=private").text
    assert client.get("/c/no-such-comp/leaderboard").status_code == 404
    odd = client.get(BOARD + "?board=public&extra=1")  # not the fast path's shape: the route, same page
    assert odd.status_code == 200 and without_header(odd.text) == without_header(client.get(BOARD).text)


def test_a_board_page_within_max_age_is_served_from_memory(data_dir):
    arena = Arena(data_dir)
    arena.app = create_app(arena.settings.model_copy(update={"leaderboard_max_age_seconds": 3600}),
                           database=arena.database)
    client = arena.client()
    arena.scored_submission(arena.alpha, 100.0, 300.0)
    assert "100.0" in client.get(BOARD).text
    arena.scored_submission(arena.beta, 77.0, 300.0)
    assert "77.0" not in client.get(BOARD).text  # checked less than an hour ago: the same rendering


def test_the_team_page_pages_through_many_submissions(data_dir):
    arena = Arena(data_dir, daily_limit=1000)
    for _ in range(3):
        arena.scored_submission(arena.alpha, 100.0, 300.0)
    with arena.database.sessionmaker() as session:
        row = get_competition(session=session, slug="test-comp")
        for _ in range(120):
            create_submission(session=session, competition=row, team=arena.alpha, sha256=secrets.token_hex(32),
                              size_bytes=10)
    alpha = arena.client()
    arena.sign_in(alpha, arena.alpha_token)
    first = alpha.get(f"/teams/{arena.alpha.id}").text
    assert "Submissions (123)" in first and "Page 1 of 3" in first and 'rel="next"' in first
    assert len(re.findall(r'href="/submissions/\d+"', first)) == 50
    last = alpha.get(f"/teams/{arena.alpha.id}?page=3").text
    assert len(re.findall(r'href="/submissions/\d+"', last)) == 23 and 'rel="prev"' in last
    assert 'rel="next"' not in last
    assert first.count("<circle") == last.count("<circle") == 3  # the plot shows every scored one on each page
    assert alpha.get(f"/teams/{arena.alpha.id}?page=0").status_code == 422


def test_the_polled_status_fragment_answers_304_until_the_status_changes(arena):
    with arena.database.sessionmaker() as session:
        row = get_competition(session=session, slug="test-comp")
        queued, _ = create_submission(session=session, competition=row, team=arena.alpha, sha256="b" * 64,
                                      size_bytes=10)
    alpha = arena.client()
    arena.sign_in(alpha, arena.alpha_token)
    url = f"/submissions/{queued.id}/status"
    first = alpha.get(url)
    assert 'data-status="queued"' in first.text and first.headers["etag"]
    assert alpha.get(url, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    assert arena.client().get(url).status_code in (401, 403)  # another reader's poll never gets it
    with arena.database.sessionmaker() as session:
        assert queue.claim_next_submission(session=session, worker_id=arena.worker_id) is not None
    scoring = alpha.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert scoring.status_code == 200 and 'data-status="scoring"' in scoring.text


@pytest.mark.browser
@pytest.mark.slow
def test_chromium_reads_the_spliced_gzip_page_and_marks_only_its_own_row(data_dir, browser):
    """A real browser: the gzip body made of three deflate pieces decodes, and the script marks the own row."""
    arena = Arena(data_dir)
    arena.scored_submission(arena.alpha, 100.0, 300.0)
    arena.scored_submission(arena.beta, 200.0, 150.0)
    env = {**os.environ, "ARENA_DATA_DIR": str(data_dir), "ARENA_ADMIN_TOKEN": arena.settings.admin_token}
    with running_server(env, data_dir / "serve.log", "--no-worker") as url:
        marked = {}
        for name, token in (("alpha", arena.alpha_token), ("beta", arena.beta_token), ("anonymous", None)):
            page = browser.new_context(base_url=url).new_page()
            if token:
                page.goto("/signin")
                page.fill("#token", token)
                page.click("main button[type=submit]")
                page.wait_for_selector(".notice.ok")
            response = page.goto(BOARD)
            assert response is not None and response.headers.get("content-encoding") == "gzip"
            assert page.locator("#leaderboard tbody tr").count() == 2
            marked[name] = page.eval_on_selector_all("tr.mine", "rows => rows.map(r => r.dataset.team)")
    assert marked == {"alpha": [str(arena.alpha.id)], "beta": [str(arena.beta.id)], "anonymous": []}
