"""The pages through the real app (TestClient, SQLite): access rules, CSRF, escaping, reveal, tokens, CSV.

Scores are stored through the queue's own functions (claim, finish_scored), as a worker would; the browser tests in
test_browser.py run the real upload and scoring pipeline.
"""

from __future__ import annotations

import json
import re

import pytest

from server.app import create_app
from server.competition_dir import competitions_dir
from server.db.crud import get_competition
from server.uploads.rules import create_submission
from tests.utils.server_factories import Arena, csrf_of


@pytest.fixture
def arena(data_dir):
    return Arena(data_dir)


def test_public_pages_render_the_rules(arena):
    client = arena.client()
    index = client.get("/")
    assert index.status_code == 200 and "Test competition" in index.text
    overview = client.get("/c/test-comp").text
    for fact in ("with_mask", "without_mask", "Lower is better", "00:00 UTC", "Images per class</dt><dd>8",
                 f"arena submit submission.zip --server {arena.settings.resolved_public_url} --competition test-comp"):
        assert fact in overview, fact
    assert "computed when the worker first builds the scoring references" in overview
    # Once the worker built the references, the calibrated threshold per class is on the page.
    references = competitions_dir(arena.settings.data_dir) / "test-comp" / "references"
    references.mkdir()
    (references / "fid-references.json").write_text(json.dumps({"auto_eps": {"with_mask": 0.0123,
                                                                             "without_mask": 0.0456}}))
    overview = client.get("/c/test-comp").text
    assert "<strong>0.0123</strong> for <code>with_mask</code>" in overview and "0.0456" in overview
    assert client.get("/c/nope").status_code == 404
    assert "No competition" in client.get("/c/nope").text
    css = client.get("/static/web/arena.css")
    assert css.status_code == 200 and "--accent" in css.text
    assert client.get("/static/web/../pages.py").status_code == 404


def test_team_sign_in_sets_a_safe_cookie_and_rejects_bad_tokens(arena):
    client = arena.client()
    csrf = csrf_of(client.get("/signin").text)
    wrong = client.post("/signin", data={"token": "arena_wrong", "csrf_token": csrf})
    assert wrong.status_code == 401 and "not valid" in wrong.text
    csrf = csrf_of(wrong.text)
    right = client.post("/signin", data={"token": arena.alpha_token, "csrf_token": csrf, "next": "//evil.example/x"})
    assert right.status_code == 303
    assert right.headers["location"] == "/c/test-comp"  # a foreign ?next is ignored: no open redirect
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert arena.alpha_token not in cookie
    assert "Team <strong>alpha</strong>" in client.get("/c/test-comp/submit").text


def test_forms_without_the_csrf_token_are_refused(arena):
    client = arena.client()
    client.get("/signin")
    refused = client.post("/signin", data={"token": arena.alpha_token})
    assert refused.status_code == 403 and "Reload the page" in refused.text
    arena.sign_in_admin(client)
    assert client.post("/admin/c/test-comp/reveal", data={"csrf_token": "forged"}).status_code == 403
    # The board stayed hidden: anonymous visitors still can't open it.
    assert arena.client().get("/c/test-comp/leaderboard?board=private").status_code == 403


def test_a_team_never_sees_another_teams_submission(arena):
    beta_submission = arena.scored_submission(arena.beta, 100.0, 110.0)
    client = arena.client()
    for url in (f"/submissions/{beta_submission}", f"/submissions/{beta_submission}/status",
                f"/submissions/{beta_submission}/grids/with_mask.png", f"/teams/{arena.beta.id}"):
        assert client.get(url).status_code == 403, url  # anonymous
    arena.sign_in(client, arena.alpha_token)
    for url in (f"/submissions/{beta_submission}", f"/submissions/{beta_submission}/status",
                f"/submissions/{beta_submission}/grids/with_mask.png", f"/teams/{arena.beta.id}"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert "100.00" not in response.text
    owner = arena.client()
    arena.sign_in(owner, arena.beta_token)
    page = owner.get(f"/submissions/{beta_submission}")
    assert page.status_code == 200 and "50.00" in page.text  # per-class public FID
    assert owner.get(f"/submissions/{beta_submission}/grids/with_mask.png").headers["content-type"] == "image/png"


def test_organizer_pages_need_the_admin_session(arena):
    client = arena.client()
    arena.sign_in(client, arena.alpha_token)
    for url in ("/admin", "/admin/submissions", "/admin/teams"):
        assert client.get(url).status_code == 403, url
    csrf = csrf_of(client.get("/c/test-comp").text)
    assert client.post("/admin/c/test-comp/reveal", data={"csrf_token": csrf}).status_code == 403
    csrf = csrf_of(client.get("/admin/signin").text)
    assert client.post("/admin/signin", data={"token": arena.alpha_token, "csrf_token": csrf}).status_code == 401


def test_user_text_is_escaped_everywhere(arena):
    arena.scored_submission(arena.beta, 100.0, 110.0)
    client = arena.client()
    arena.sign_in_admin(client)
    for url in ("/c/test-comp/leaderboard", "/admin/submissions", "/admin/teams"):
        html = client.get(url).text
        assert "<script>alert" not in html, url
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html, url
    assert "<b>hi</b>" not in client.get("/admin/submissions").text


def test_private_board_is_hidden_until_the_organizer_reveals_it(arena):
    arena.scored_submission(arena.alpha, 100.0, 300.0)
    arena.scored_submission(arena.beta, 200.0, 150.0)
    team = arena.client()
    arena.sign_in(team, arena.alpha_token)
    board = team.get("/c/test-comp/leaderboard")
    assert "not revealed yet" in board.text
    assert team.get("/c/test-comp/leaderboard?board=private").status_code == 403
    assert team.get("/c/test-comp/leaderboard.csv?board=private").status_code == 403

    organizer = arena.client()
    arena.sign_in_admin(organizer)
    assert "organizer preview" in organizer.get("/c/test-comp/leaderboard?board=private").text
    csrf = csrf_of(organizer.get("/admin").text)
    assert organizer.post("/admin/c/test-comp/reveal", data={"csrf_token": csrf, "confirm": "1"}).status_code == 303
    assert "revealed" in organizer.get("/admin").text

    private = team.get("/c/test-comp/leaderboard?board=private")
    assert private.status_code == 200
    rows = re.findall(r'<td class="wrap-text">([^<]+)', private.text)
    assert rows[:2] == ["&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; team", "alpha"]  # beta wins on private
    assert "▲1" in private.text and "▼1" in private.text
    csv = team.get("/c/test-comp/leaderboard.csv?board=private")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[1].startswith("1,<script>")


def test_each_viewer_sees_its_own_row_marked_and_every_new_score(arena):
    """The board page is the same for every team; the header names the viewer, whose row the script marks."""
    arena.scored_submission(arena.alpha, 100.0, 300.0)
    arena.scored_submission(arena.beta, 200.0, 150.0)

    def viewer_and_rows(client) -> tuple[list[str], list[str]]:
        html = client.get("/c/test-comp/leaderboard").text
        return re.findall(r'<header class="topbar" data-team="(\d+)"', html), re.findall(r'<tr data-team="(\d+)"', html)

    alpha, beta, anonymous = arena.client(), arena.client(), arena.client()
    arena.sign_in(alpha, arena.alpha_token)
    arena.sign_in(beta, arena.beta_token)
    both = [str(arena.alpha.id), str(arena.beta.id)]
    for _ in range(2):  # the second round reads the rendered page back
        assert viewer_and_rows(alpha) == ([str(arena.alpha.id)], both)
        assert viewer_and_rows(beta) == ([str(arena.beta.id)], both)
        assert viewer_and_rows(anonymous) == ([], both)
    arena.scored_submission(arena.beta, 42.0, 150.0)
    assert "42.00" in anonymous.get("/c/test-comp/leaderboard").text
    assert viewer_and_rows(beta) == ([str(arena.beta.id)], both[::-1])


def test_organizer_creates_a_team_and_rotates_its_token(arena):
    organizer = arena.client()
    arena.sign_in_admin(organizer)
    csrf = csrf_of(organizer.get("/admin/teams").text)
    created = organizer.post("/admin/teams", data={"competition": "test-comp", "name": "gamma",
                                                   "members": "ann, bob", "csrf_token": csrf})
    token = re.search(r"<pre[^>]*>(arena_[^<]+)</pre>", created.text).group(1)
    team_id = int(re.search(r'href="/teams/(\d+)">gamma</a>', created.text).group(1))
    duplicate = organizer.post("/admin/teams", data={"competition": "test-comp", "name": "gamma",
                                                     "csrf_token": csrf})
    assert duplicate.status_code == 409 and "already exists" in duplicate.text

    rotated = organizer.post(f"/admin/teams/{team_id}/rotate", data={"csrf_token": csrf})
    new_token = re.search(r"<pre[^>]*>(arena_[^<]+)</pre>", rotated.text).group(1)
    assert new_token != token
    team = arena.client()
    csrf_team = csrf_of(team.get("/signin").text)
    assert team.post("/signin", data={"token": token, "csrf_token": csrf_team}).status_code == 401
    arena.sign_in(team, new_token)
    assert "Team <strong>gamma</strong>" in team.get("/").text


def test_team_page_plots_the_score_history(arena):
    for public in (300.0, 200.0, 250.0):
        arena.scored_submission(arena.alpha, public, public, with_grids=False)
    client = arena.client()
    arena.sign_in(client, arena.alpha_token)
    page = client.get(f"/teams/{arena.alpha.id}").text
    assert page.count("<circle") == 3 and 'class="best"' in page
    assert "Submissions (3)" in page


def test_organizer_actions_change_submissions(arena):
    submission_id = arena.scored_submission(arena.alpha, 100.0, 110.0)
    organizer = arena.client()
    arena.sign_in_admin(organizer)
    csrf = csrf_of(organizer.get("/admin/submissions").text)
    url = f"/admin/submissions/{submission_id}"
    assert organizer.post(f"{url}/disqualify", data={"csrf_token": csrf, "reason": "copied images"}).status_code == 303
    assert "No scored submissions yet" in organizer.get("/c/test-comp/leaderboard").text
    assert organizer.post(f"{url}/rescore", data={"csrf_token": csrf}).status_code == 303
    listing = organizer.get("/admin/submissions?status=queued").text
    assert f">{submission_id}</a>" in listing
    assert organizer.post(f"{url}/cancel", data={"csrf_token": csrf}).status_code == 303
    assert "cancelled" in organizer.get(f"/submissions/{submission_id}").text
    assert organizer.post(f"{url}/explode", data={"csrf_token": csrf}).status_code == 404


def test_a_team_selects_its_finals_up_to_the_limit(data_dir):
    arena = Arena(data_dir, final_selection_limit=1)
    first = arena.scored_submission(arena.alpha, 100.0, 110.0, with_grids=False)
    second = arena.scored_submission(arena.alpha, 90.0, 120.0, with_grids=False)
    client = arena.client()
    arena.sign_in(client, arena.alpha_token)
    page = client.get(f"/submissions/{first}").text
    assert "Select as final" in page
    selected = client.post(f"/submissions/{first}/final", data={"csrf_token": csrf_of(page), "selected": "1"})
    assert selected.status_code == 303
    page = client.get(f"/submissions/{first}").text
    assert "is selected as a final" in page and "Unselect as final" in page
    over_limit = client.post(f"/submissions/{second}/final", data={"csrf_token": csrf_of(page), "selected": "1"})
    assert over_limit.status_code == 409 and "unselect one first" in over_limit.text
    other = arena.client()
    arena.sign_in(other, arena.beta_token)
    csrf = csrf_of(other.get("/").text)
    assert other.post(f"/submissions/{first}/final", data={"csrf_token": csrf, "selected": "0"}).status_code == 403


def test_submit_page_after_the_deadline_and_when_signed_out(data_dir):
    arena = Arena(data_dir, deadline="2020-01-01T00:00:00Z")
    client = arena.client()
    signed_out = client.get("/c/test-comp/submit").text
    assert "Sign in with your team token to submit" in signed_out and 'type="file"' not in signed_out
    arena.sign_in(client, arena.alpha_token)
    page = client.get("/c/test-comp/submit").text
    assert "submissions are closed" in page and 'type="file"' not in page
    assert 'id="quota"' not in page and "submissions left" not in page  # nothing left to spend: no quota bar
    upload = client.post("/c/test-comp/submit", data={"csrf_token": csrf_of(page)},
                         files={"file": ("s.zip", b"PK\x05\x06" + b"\0" * 18, "application/zip")})
    assert upload.status_code == 403 and "deadline" in upload.text
    assert "closed" in client.get("/c/test-comp").text  # the countdown without JavaScript


def test_status_page_works_without_javascript(arena):
    """Until the submission is final the page refreshes itself (noscript); the script polls a fragment instead."""
    scored = arena.scored_submission(arena.alpha, 100.0, 110.0, with_grids=False)
    with arena.database.sessionmaker() as session:
        row = get_competition(session=session, slug="test-comp")
        queued, _ = create_submission(session=session, competition=row, team=arena.alpha,
                                      sha256="a" * 64, size_bytes=10)
    client = arena.client()
    arena.sign_in(client, arena.alpha_token)
    waiting = client.get(f"/submissions/{queued.id}").text
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in waiting
    assert "position <strong>1</strong> in the queue" in waiting
    done = client.get(f"/submissions/{scored}").text
    assert 'http-equiv="refresh"' not in done and "data-final" in done
    fragment = client.get(f"/submissions/{queued.id}/status")
    assert fragment.headers["cache-control"] == "private, no-cache" and fragment.headers["etag"]
    assert 'data-status="queued"' in fragment.text and "data-final" not in fragment.text
    assert "<html" not in fragment.text


def test_an_upload_over_the_size_cap_gets_a_page_not_json(arena):
    arena.app = create_app(arena.settings.model_copy(update={"max_upload_bytes": 1000}))
    client = arena.client()
    arena.sign_in(client, arena.alpha_token)
    csrf = csrf_of(client.get("/c/test-comp/submit").text)
    # Over the cap while copying (the form shows the error), and declared far beyond it (refused before reading).
    for body in (b"x" * 5000, b"\0" * (3 * 1024 * 1024)):
        response = client.post("/c/test-comp/submit", data={"csrf_token": csrf},
                               files={"file": ("s.zip", body, "application/zip")})
        assert response.status_code == 413 and response.headers["content-type"].startswith("text/html")
        assert response.text.count("larger than the") == 1 and "Team <strong>alpha</strong>" in response.text
