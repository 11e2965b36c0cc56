"""Defects found by trying the API as an attacker and as an operator (issue 12): ids and paging at the edge, bounded
input, chunked uploads over the cap, re-uploads after a failure, rate limits and join codes, CSV formulas, HEAD."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from server.db import Submission, SubmissionStatus
from tests.utils.server_factories import ADMIN_TOKEN, add_scored, bearer, csrf_of, sign_in_admin, submission_zip

HUGE, NEGATIVE = "99999999999999999999", "-9223372036854775809"
ID_ROUTES = [  # (method, path template, caller) every route that takes an id in its path
    ("GET", "/api/submissions/{id}", "team"),
    ("GET", "/api/submissions/{id}/grids/with_mask.png", "team"),
    ("POST", "/api/submissions/{id}/final", "team"),
    ("POST", "/api/admin/submissions/{id}/rescore", "admin"),
    ("POST", "/api/admin/submissions/{id}/cancel", "admin"),
    ("POST", "/api/admin/submissions/{id}/disqualify", "admin"),
    ("POST", "/api/admin/teams/{id}/token", "admin"),
    ("POST", "/api/admin/teams/{id}/disqualify", "admin"),
    ("GET", "/submissions/{id}", "anonymous"),
    ("GET", "/submissions/{id}/status", "anonymous"),
    ("GET", "/submissions/{id}/grids/with_mask.png", "anonymous"),
    ("GET", "/teams/{id}", "anonymous"),
    ("GET", "/submissions/{id}/evidence/with_mask/train/0/generated.png", "anonymous"),
    ("GET", "/submissions/{id}/evidence/with_mask/train/0/real.png", "anonymous"),
    ("GET", "/submissions/{id}/evidence/with_mask/any/0/generated.png", "team"),
]
PAGED_ROUTES = [("/api/competitions/test-comp/submissions", "team"), ("/api/admin/submissions", "admin")]
BODIES = {"disqualify": {"reason": "x"}, "final": {"selected": True}}


@pytest.fixture
def caller_headers(arena):
    _, token = arena.create_team("a")
    return {"team": bearer(token), "admin": bearer(ADMIN_TOKEN), "anonymous": {}}


@pytest.mark.parametrize(("method", "path", "caller"), ID_ROUTES)
@pytest.mark.parametrize("bad_id", [HUGE, NEGATIVE, "9223372036854775807", "2147483648", "0"])
def test_ids_outside_the_column_range_are_404_or_422_never_500(arena, caller_headers, method, path, caller, bad_id):
    body = next((b for key, b in BODIES.items() if path.endswith(key)), {})
    response = arena.client.request(method, path.format(id=bad_id), headers=caller_headers[caller],
                                    json=body if method == "POST" else None)
    assert response.status_code in (404, 422), response.text


@pytest.mark.parametrize(("path", "caller"), PAGED_ROUTES)
@pytest.mark.parametrize("query", ["limit=-1", "offset=-1", f"offset={HUGE}", f"limit={HUGE}", "limit=100000"])
def test_paging_parameters_are_bounded(arena, caller_headers, path, caller, query):
    response = arena.client.get(f"{path}?{query}", headers=caller_headers[caller])
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("name", "members"), [
    ("", []), ("   ", []), ("nul\x00team", []), ("bell\x07", []), ("line\nbreak", []), ("rtl\u202eeman", []),
    ("x" * 101, []), ("ok", ["m" * 101]), ("ok", ["ann", ""]), ("ok", ["tab\tbed"]), ("ok", ["m"] * 51),
])
def test_team_names_and_members_are_bounded_and_printable(arena, name, members):
    for path, headers in ((f"/api/competitions/{arena.slug}/teams", {}),
                          (f"/api/admin/competitions/{arena.slug}/teams", bearer(ADMIN_TOKEN))):
        response = arena.client.post(path, headers=headers, json={"name": name, "members": members})
        assert response.status_code == 422, response.text
    assert arena.client.get(f"/api/admin/competitions/{arena.slug}/teams",
                            headers=bearer(ADMIN_TOKEN)).json()["count"] == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_team_name_is_stored_without_surrounding_blanks(arena):
    response = arena.client.post(f"/api/competitions/{arena.slug}/teams", json={"name": "  Ünïcode 🦊 ",
                                                                                 "members": [" Ada "]})
    assert response.status_code == 201, response.text
    assert (response.json()["name"], response.json()["members"]) == ("Ünïcode 🦊", ["Ada"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_upload_message_has_the_same_cap_as_the_form(arena):
    _, token = arena.create_team("a")
    too_long = arena.upload(token, submission_zip(arena.competition, seed=1), message="m" * 501)
    assert too_long.status_code == 422, too_long.text
    with_nul = arena.upload(token, submission_zip(arena.competition, seed=1), message="a\x00b")
    assert with_nul.status_code == 422, with_nul.text
    assert arena.upload(token, submission_zip(arena.competition, seed=1), message="m" * 500).status_code == 202


def test_an_over_cap_upload_without_content_length_is_413(make_app):
    arena = make_app(max_upload_bytes=1000)
    _, token = arena.create_team("a")
    boundary = "arena-test-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s.zip\"\r\n"
            "Content-Type: application/zip\r\n\r\n").encode()

    def chunked_body():  # a generator: httpx sends it chunked, without a Content-Length
        yield head
        for _ in range(3 * 1024):
            yield b"\0" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    response = arena.client.post(f"/api/competitions/{arena.slug}/submissions", content=chunked_body(),
                                 headers={**bearer(token), "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "upload_too_large"


@pytest.mark.parametrize("action", ["cancel", "fail"])
def test_a_failed_or_cancelled_zip_may_be_uploaded_again(arena, action):
    _, token = arena.create_team("a")
    data = submission_zip(arena.competition, seed=3)
    first = arena.upload(token, data).json()["id"]
    if action == "cancel":
        assert arena.client.post(f"/api/admin/submissions/{first}/cancel", headers=bearer(ADMIN_TOKEN),
                                 json={"reason": "test"}).status_code == 200
    else:
        with arena.database.session() as session:
            session.get(Submission, first).status = SubmissionStatus.failed
    again = arena.upload(token, data)
    assert again.status_code == 202, again.text
    duplicate = arena.upload(token, data)  # the new one is queued: now it is a duplicate
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "duplicate_submission"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_team_creation_is_rate_limited_per_client(make_app):
    arena = make_app(team_creation_rate_limit="3/hour")
    path = f"/api/competitions/{arena.slug}/teams"
    for i in range(3):
        assert arena.client.post(path, json={"name": f"t{i}"}).status_code == 201
    limited = arena.client.post(path, json={"name": "t3"})
    assert limited.status_code == 429, limited.text
    assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["Retry-After"]) > 0
    # The organizer is not limited.
    assert arena.client.post(f"/api/admin/competitions/{arena.slug}/teams", headers=bearer(ADMIN_TOKEN),
                             json={"name": "t4"}).status_code == 201


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_join_code_in_competition_json_guards_self_registration(make_app):
    arena = make_app(competition={"join_code": "class-2026"})
    path = f"/api/competitions/{arena.slug}/teams"
    assert "join_code" not in arena.client.get(f"/api/competitions/{arena.slug}").json()
    assert arena.client.post(path, json={"name": "a"}).status_code == 403
    wrong = arena.client.post(path, json={"name": "a", "join_code": "guess"})
    assert wrong.status_code == 403 and "join code" in wrong.json()["error"]["message"]
    assert arena.client.post(path, json={"name": "a", "join_code": "class-2026"}).status_code == 201
    assert arena.client.post(f"/api/admin/competitions/{arena.slug}/teams", headers=bearer(ADMIN_TOKEN),
                             json={"name": "b"}).status_code == 201


def csv_cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_csv_exports_neutralize_formulas(arena):
    from server.db import Team

    names = ['=HYPERLINK("http://evil.example","x")', "+1", "-2+3", "@SUM(A1)"]
    with arena.database.sessionmaker() as session:
        for score, name in enumerate(names, start=1):
            team_id, _ = arena.create_team(name)
            add_scored(session, session.get(Team, team_id), float(score), float(score), arena.clock())
    public = arena.client.get(f"/api/competitions/{arena.slug}/leaderboard?format=csv").text
    export = arena.client.get(f"/api/admin/competitions/{arena.slug}/scores.csv", headers=bearer(ADMIN_TOKEN)).text
    for text in (public, export):
        cells = csv_cells(text)
        for name in names:
            assert name not in cells and "'" + name in cells
        assert not any(c[:1] in ("=", "+", "@", "\t", "\r") for c in cells)
        assert not any(c.startswith("-") for c in cells)


@pytest.mark.parametrize(("cell", "written"), [
    ("=1+2", "'=1+2"), ("\tx", "'\tx"), ("\rx", "'\rx"), ("a=b", "a=b"), ("", ""), (-3, -3), (1.5, 1.5),
])
def test_spreadsheet_safe_cells(cell, written):
    from server.boards.ranking import spreadsheet_safe

    assert spreadsheet_safe(cell) == written


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", ["/healthz", "/api/competitions", "/api/competitions/test-comp/leaderboard", "/",
                                  "/c/test-comp", "/c/test-comp/leaderboard.csv"])
def test_head_is_answered_on_get_routes(arena, path):
    get, head = arena.client.get(path), arena.client.head(path)
    assert (head.status_code, get.status_code) == (200, 200)
    assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_hiding_the_private_board_again_takes_effect_at_once(make_app):
    arena = make_app(leaderboard_max_age_seconds=60)
    reveal = f"/api/admin/competitions/{arena.slug}/reveal"
    private = f"/api/competitions/{arena.slug}/leaderboard?board=private"
    assert arena.client.post(reveal, headers=bearer(ADMIN_TOKEN), json={"revealed": True}).status_code == 200
    assert arena.client.get(private).status_code == 200
    assert arena.client.post(reveal, headers=bearer(ADMIN_TOKEN), json={"revealed": False}).status_code == 200
    assert arena.client.get(private).status_code == 403
    assert arena.client.post(reveal, headers=bearer(ADMIN_TOKEN), json={"revealed": True}).status_code == 200
    assert arena.client.get(private).status_code == 200


def test_admin_reason_and_disqualify_texts_are_bounded(arena, caller_headers):
    team_id = arena.client.get("/api/teams/me", headers=caller_headers["team"]).json()["id"]
    for reason in ("x" * 2001, "nul\x00"):
        response = arena.client.post(f"/api/admin/teams/{team_id}/disqualify", headers=bearer(ADMIN_TOKEN),
                                     json={"reason": reason})
        assert response.status_code == 422, response.text
    assert arena.client.get("/api/teams/me", headers=caller_headers["team"]).json()["disqualified"] is False


@pytest.fixture
def organizer_forms(arena):
    """The API app's client signed in as organizer (a browser session), with a CSRF token for its forms."""
    sign_in_admin(arena.client)
    return arena.client, csrf_of(arena.client.get(f"/admin/c/{arena.slug}/settings").text)


@pytest.mark.parametrize("bad_id", [HUGE, NEGATIVE, "9223372036854775807", "2147483648", "0"])
def test_withdrawing_an_announcement_with_an_id_out_of_range_is_422_never_500(arena, organizer_forms, bad_id):
    client, csrf = organizer_forms
    response = client.post(f"/admin/c/{arena.slug}/announcements/{bad_id}/delete", data={"csrf_token": csrf},
                           follow_redirects=False)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("message", ["nul\x00note", "bell\x07", "rtl\u202eeman", "x" * 5001])
def test_announcements_refuse_nul_and_control_characters(arena, organizer_forms, message):
    client, csrf = organizer_forms
    response = client.post(f"/admin/c/{arena.slug}/announcements", data={"csrf_token": csrf, "message": message})
    assert response.status_code == 422, response.text
    from sqlalchemy import func, select

    from server.db.models import Announcement

    with arena.database.session() as session:
        assert session.scalar(select(func.count(Announcement.id))) == 0


@pytest.mark.parametrize("title", ["nul\x00title", "x" * 201, "two\nlines"])
def test_competition_titles_refuse_nul_control_characters_and_over_200_characters(arena, organizer_forms, title):
    import json

    from server.competition_dir import CONFIG_FILE

    client, csrf = organizer_forms
    config = json.loads((arena.competition.root / CONFIG_FILE).read_text())
    form = {"csrf_token": csrf, "title": title, "description": "", "team_rules": "", "deadline": "",
            "daily_limit": "5", "final_selection_limit": "0", "self_registration": "1", "status": "open",
            "images_per_class": str(config["images_per_class"]), "memorization_eps": "auto"}
    response = client.post(f"/admin/c/{arena.slug}/settings", data=form)
    assert response.status_code == 422 and 'id="error-title"' in response.text, response.text
    assert json.loads((arena.competition.root / CONFIG_FILE).read_text())["title"] == config["title"]


def test_join_code_guessing_is_rate_limited_per_client(make_app):
    """Issue 22, item 7: 300 wrong codes in 8.9 s were all answered 403, none 429. Wrong codes count per client;
    past the limit even the right code is refused until the window passes (else guessing would still win)."""
    arena = make_app(competition={"join_code": "class-2026"}, join_code_failure_rate_limit="5/hour",
                     team_creation_rate_limit="100/hour")
    path = f"/api/competitions/{arena.slug}/teams"
    assert arena.client.post(path, json={"name": "early", "join_code": "class-2026"}).status_code == 201
    for guess in range(5):
        wrong = arena.client.post(path, json={"name": "g", "join_code": f"guess-{guess}"})
        assert wrong.status_code == 403, wrong.text
    blocked = arena.client.post(path, json={"name": "g", "join_code": "guess-5"})
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0, blocked.text
    assert "join codes" in blocked.json()["error"]["message"]
    assert arena.client.post(path, json={"name": "late", "join_code": "class-2026"}).status_code == 429
    # Another client address is not affected; the organizer never is.
    other = TestClient(arena.client.app, client=("203.0.113.9", 50000))
    assert other.post(path, json={"name": "other", "join_code": "class-2026"}).status_code == 201
    assert arena.client.post(f"/api/admin/competitions/{arena.slug}/teams", headers=bearer(ADMIN_TOKEN),
                             json={"name": "organizer-made"}).status_code == 201


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", ["/", "/c/test-comp", "/admin/signin", "/signin", "/c/test-comp/leaderboard",
                                  "/api/competitions", "/api/competitions/test-comp/leaderboard"])
def test_no_page_may_be_framed_by_another_site(arena, path):
    """Issue 22, item 10: organizer forms could be framed from another port of the same host (clickjacking)."""
    response = arena.client.get(path)
    assert response.status_code == 200
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-security-policy"] == "frame-ancestors 'none'"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_api_docs_load_nothing_from_another_origin(arena, path):
    """Issue 26: ReDoc's footer fetched its maker's logo from a CDN; the browser check is in test_browser_console."""
    response = arena.client.get(path)
    assert response.status_code == 200 and response.headers["x-frame-options"] == "DENY"
    directives = dict(d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))
    assert directives["default-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert not [d for d, sources in directives.items() if "http" in sources or "*" in sources], directives


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", "/c/test-comp/submit", "GET, POST, HEAD"),
    ("DELETE", "/api/competitions/test-comp/teams", "POST"),
    ("PATCH", "/admin/signin", "GET, POST, HEAD"),
    ("DELETE", "/api/teams/me", "GET, HEAD"),
])
def test_405_names_every_method_of_the_path(arena, method, path, allowed):
    response = arena.client.request(method, path)
    assert response.status_code == 405 and response.headers["allow"] == allowed


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("flag", [0, 1, "true", "yes", None])
def test_flags_are_json_booleans_only(arena, caller_headers, flag):
    for path, body, headers in (("/api/submissions/1/final", {"selected": flag}, caller_headers["team"]),
                                (f"/api/admin/competitions/{arena.slug}/reveal", {"revealed": flag},
                                 bearer(ADMIN_TOKEN)),
                                (f"/api/admin/competitions/{arena.slug}/teams", {"name": "x", "is_baseline": flag},
                                 bearer(ADMIN_TOKEN))):
        response = arena.client.post(path, json=body, headers=headers)
        assert response.status_code == 422, (path, response.text)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_openapi_documents_the_real_rules(arena, caller_headers):
    schema = arena.client.get("/openapi.json").json()
    team = schema["components"]["schemas"]["TeamCreate"]["properties"]
    assert team["name"]["maxLength"] == 100 and "printable" in team["name"]["description"]
    assert team["members"]["items"]["maxLength"] == 100
    assert schema["components"]["schemas"]["FinalSelection"]["properties"]["selected"]["type"] == "boolean"
    upload = schema["paths"]["/api/competitions/{slug}/submissions"]["post"]["responses"]
    assert "400" in upload
    assert "400" in schema["paths"]["/api/competitions/{slug}/teams"]["post"]["responses"]
    # ... and a body that cannot be parsed is that documented 400, in the API's error shape.
    for path, content_type, body in (
            (f"/api/competitions/{arena.slug}/submissions", "multipart/form-data", b"no boundary"),
            (f"/api/competitions/{arena.slug}/submissions", "multipart/form-data; boundary=b", b"--b\r\nbad line\r\n"),
            (f"/api/competitions/{arena.slug}/teams", "application/json", b"\xff")):
        broken = arena.client.post(path, content=body, headers={**caller_headers["team"], "content-type": content_type})
        assert broken.status_code == 400 and broken.json()["error"]["code"] == "malformed_body", broken.text
