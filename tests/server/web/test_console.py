"""The organizer console through the real app (TestClient, SQLite): settings with validation, history and locks,
Markdown rendered safely, lifecycle (deadline, archive, reveal, final CSV), announcements, reference entries."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from server.competition_dir import Competition, competitions_dir
from server.db.crud import get_competition, list_competitions, list_teams
from tests.server.data.trees import make_tree, write_image
from tests.utils.server_factories import (
    SETTINGS_URL,
    Arena,
    config_file,
    csrf_of,
    form_of,
    submission_zip,
    wait_for_preparation,
)


def test_settings_are_saved_to_both_stores_recorded_and_rendered_safely(organizer):
    arena, client = organizer
    page = client.get(SETTINGS_URL)
    assert page.status_code == 200 and "Accepted submissions per team per UTC day" in page.text
    markdown = "Use **only** the data.\n\n<script>alert(1)</script> [x](javascript:alert(1))"
    saved = client.post(SETTINGS_URL, data=form_of(arena, client, title="Masks 2026", daily_limit="3",
                                                    deadline="2031-05-01 12:30", description=markdown))
    assert saved.status_code == 303, saved.text
    config = json.loads(config_file(arena).read_text())
    assert (config["title"], config["daily_limit"], config["deadline"]) == ("Masks 2026", 3, "2031-05-01T12:30:00Z")
    with arena.database.sessionmaker() as session:
        row = get_competition(session=session, slug="test-comp")
        assert row.title == "Masks 2026" and row.board_version > 0  # cached boards are dropped
    history = client.get(SETTINGS_URL).text
    row = '<code>daily_limit</code></td>\n      <td class="wrap-text">5</td><td class="wrap-text">3</td>'
    assert row in history
    assert "2031-05-01 12:30 UTC" in history and "organizer page" in history
    overview = client.get("/c/test-comp").text
    assert "<strong>only</strong>" in overview and "<script>alert(1)" not in overview
    assert "href=\"javascript:" not in overview
    assert 'datetime="2031-05-01T12:30:00+00:00" data-local-time' in overview
    # Saving the same values again changes (and records) nothing.
    client.post(SETTINGS_URL, data=form_of(arena, client, deadline="2031-05-01 12:30"))
    assert client.get(SETTINGS_URL).text.count("<code>daily_limit</code>") == 1


@pytest.mark.parametrize(("field", "value", "message"), [
    ("daily_limit", "0", "greater than or equal to 1"),
    ("daily_limit", "-2", "greater than or equal to 1"),
    ("deadline", "next friday", "write it as YYYY-MM-DD HH:MM (UTC)"),
    ("status", "paused", "open"),
])
def test_invalid_settings_are_refused_with_a_message_and_nothing_changes(organizer, field, value, message):
    arena, client = organizer
    before = config_file(arena).read_text()
    response = client.post(SETTINGS_URL, data=form_of(arena, client, **{field: value}, title="Changed"))
    assert response.status_code == 422 and message in response.text
    assert f'id="error-{field}"' in response.text  # next to the field
    assert 'value="Changed"' in response.text  # the form keeps what was typed
    assert config_file(arena).read_text() == before
    assert "No changes yet." in client.get(SETTINGS_URL).text


def test_settings_that_affect_scores_are_locked_once_entries_exist(organizer):
    arena, client = organizer
    assert client.post(SETTINGS_URL, data=form_of(arena, client, images_per_class="4")).status_code == 303
    arena.scored_submission(arena.alpha, 10.0, 12.0, with_grids=False)
    before = config_file(arena).read_text()
    refused = client.post(SETTINGS_URL, data=form_of(arena, client, images_per_class="8", daily_limit="2"))
    assert refused.status_code == 409
    assert "images_per_class affects scores" in refused.text and "1 entry" in refused.text
    assert config_file(arena).read_text() == before


def test_lifecycle_deadline_archive_reveal_and_final_csv(organizer):
    arena, client = organizer
    team = arena.client()
    arena.sign_in(team, arena.alpha_token)
    zip_bytes = submission_zip(Competition.load(config_file(arena).parent), count=8)

    def upload():
        csrf = csrf_of(team.get("/c/test-comp/submit").text)
        return team.post("/c/test-comp/submit", data={"csrf_token": csrf},
                         files={"file": ("s.zip", zip_bytes, "application/zip")})

    client.post(SETTINGS_URL, data=form_of(arena, client, deadline="2020-03-04 05:06"))
    refused = upload()
    assert refused.status_code == 403 and "2020-03-04 05:06 UTC" in refused.text
    client.post(SETTINGS_URL, data=form_of(arena, client, deadline=""))
    arena.scored_submission(arena.alpha, 10.0, 12.0, with_grids=False)

    console = client.get(SETTINGS_URL).text
    assert "Reveal private board" in console and 'id="export-final"' in console
    revealed = client.post("/admin/c/test-comp/reveal", data={"csrf_token": csrf_of(console), "back": SETTINGS_URL,
                                                                 "confirm": "1"})
    assert revealed.headers["location"] == SETTINGS_URL  # back to the console
    final = client.get("/c/test-comp/leaderboard.csv?board=private")
    assert final.status_code == 200 and "alpha" in final.text and "12" in final.text

    assert client.post(SETTINGS_URL, data=form_of(arena, client, status="archived")).status_code == 303
    overview = team.get("/c/test-comp")
    assert overview.status_code == 200 and "archived: read-only" in overview.text
    assert team.get("/c/test-comp/leaderboard").status_code == 200
    archived = upload()
    assert archived.status_code == 403 and "archived" in archived.text
    locked = client.post(SETTINGS_URL, data=form_of(arena, client, status="archived", daily_limit="9"))
    assert locked.status_code == 409 and "archived (read-only)" in locked.text
    reopened = client.post(SETTINGS_URL, data=form_of(arena, client, status="closed"))
    assert reopened.status_code == 303
    closed = upload()
    assert closed.status_code == 403 and "closed" in closed.text


def test_announcements_appear_on_the_competition_pages_and_can_be_withdrawn(organizer):
    arena, client = organizer
    csrf = csrf_of(client.get(SETTINGS_URL).text)
    empty = client.post("/admin/c/test-comp/announcements", data={"csrf_token": csrf, "message": "  "})
    assert empty.status_code == 422 and "needs a message" in empty.text
    posted = client.post("/admin/c/test-comp/announcements",
                         data={"csrf_token": csrf, "message": "Deadline moved to **Friday**. <img src=x onerror=1>"})
    assert posted.status_code == 303
    visitor = arena.client()
    for url in ("/c/test-comp", "/c/test-comp/leaderboard", "/c/test-comp/submit"):
        text = visitor.get(url).text
        assert "Deadline moved to <strong>Friday</strong>" in text and "<img" not in text, url
    withdraw = client.get(SETTINGS_URL).text
    action = withdraw.split('action="/admin/c/test-comp/announcements/')[1].split('"')[0]
    client.post(f"/admin/c/test-comp/announcements/{action}", data={"csrf_token": csrf})
    assert "Friday" not in visitor.get("/c/test-comp").text


def test_reference_entry_uploaded_from_the_console_is_a_marked_baseline(organizer):
    arena, client = organizer
    comp = Competition.load(config_file(arena).parent)
    csrf = csrf_of(client.get(SETTINGS_URL).text)
    bad = client.post("/admin/c/test-comp/references", data={"csrf_token": csrf, "name": "baseline: noise"},
                      files={"file": ("s.zip", b"not a zip", "application/zip")})
    assert bad.status_code == 422 and 'id="reference-error"' in bad.text
    assert "Existing:" not in bad.text  # no empty reference team left behind
    taken = client.post("/admin/c/test-comp/references", data={"csrf_token": csrf, "name": "alpha"},
                        files={"file": ("s.zip", submission_zip(comp, count=8), "application/zip")})
    assert taken.status_code == 422 and "is a team of participants" in taken.text
    ok = client.post("/admin/c/test-comp/references", data={"csrf_token": csrf, "name": "baseline: noise"},
                     files={"file": ("s.zip", submission_zip(comp, count=8), "application/zip")})
    assert ok.status_code == 303, ok.text
    with arena.database.sessionmaker() as session:
        references = [t for t in list_teams(session=session, competition=get_competition(session=session,
                                                                                         slug="test-comp"))
                      if t.is_baseline]
    assert [t.name for t in references] == ["baseline: noise"]
    assert "Existing: baseline: noise" in client.get(SETTINGS_URL).text


def test_console_needs_the_organizer(data_dir):
    arena = Arena(data_dir)
    assert arena.client().get(SETTINGS_URL).status_code == 403


def test_new_competition_from_a_server_folder_prepares_in_the_background_and_opens_when_told(organizer, tmp_path):
    arena, client = organizer
    source = make_tree(tmp_path / "dataset", train=3, test=4, size=80)
    csrf = csrf_of(client.get("/admin/new").text)
    started = client.post("/admin/new", data={"csrf_token": csrf, "slug": "masks-2026", "title": "Masks 2026",
                                              "images_per_class": "3", "public_fraction": "0.5",
                                              "folder": str(source)})
    assert started.status_code == 303, started.text
    done = wait_for_preparation(client, "masks-2026")
    assert 'data-state="done"' in done and "<code>with_mask</code></td><td class=\"num\">3</td>" in done
    audit = " ".join(done.split())
    assert ("Duplicate pairs (exact / near): within train 0 / 0, within test 0 / 0, across train and test 0 / 0."
            in audit)
    preview = client.get("/admin/new/masks-2026/preview/with_mask.png")
    assert preview.status_code == 200 and preview.content[:8] == b"\x89PNG\r\n\x1a\n"
    # Registered but closed: visible, not accepting uploads until the organizer opens it.
    overview = arena.client().get("/c/masks-2026")
    assert overview.status_code == 200 and "This competition is closed" in overview.text
    assert client.post("/admin/new/masks-2026/open", data={"csrf_token": csrf}).status_code == 303
    config = Competition.load(competitions_dir(arena.settings.data_dir) / "masks-2026").config
    assert (config.status, config.title, config.images_per_class) == ("open", "Masks 2026", 3)
    assert client.get("/admin/new/masks-2026").status_code == 404  # the job is forgotten once opened


def test_new_competition_from_class_folders_only_holds_out_the_test_fraction(organizer, tmp_path):
    arena, client = organizer
    source = tmp_path / "folders"
    for cls in ("with_mask", "without_mask"):
        for i in range(10):
            write_image(source / cls / f"{i}.png", 80, seed=i + 20 * len(cls))
    csrf = csrf_of(client.get("/admin/new").text)
    form = {"csrf_token": csrf, "slug": "folders", "images_per_class": "3", "public_fraction": "0.5",
            "folder": str(source)}
    client.post("/admin/new", data={**form, "slug": "no-split"})
    assert "no held-out split" in wait_for_preparation(client, "no-split")  # names the field's flag, below
    assert client.post("/admin/new", data={**form, "test_fraction": "0.3"}).status_code == 303
    assert 'data-state="done"' in wait_for_preparation(client, "folders")
    competition = Competition.load(competitions_dir(arena.settings.data_dir) / "folders")
    assert [len(competition.test_files(cls)) for cls in competition.classes] == [3, 3]
    assert [len(competition.train_files(cls)) for cls in competition.classes] == [7, 7]


@pytest.mark.parametrize(("fields", "archive", "message"), [
    ({"slug": "test-comp"}, None, "is taken by an existing or preparing competition"),
    ({"slug": "Bad Slug!"}, None, "lowercase letters, digits and dashes"),
    ({"images_per_class": "0"}, None, "a whole number from 1 to 50,000"),
    ({"images_per_class": str(10**12)}, None, "a whole number from 1 to 50,000"),
    ({"public_fraction": "nan"}, None, "between 0 and 1"),
    ({"title": "x" * 201}, None, "title: at most 200 characters"),
    ({"title": "nul\x00title"}, None, "title: one line of visible characters"),
    ({"public_fraction": "1.5"}, None, "between 0 and 1"),
    ({"folder": "/no/such/folder"}, None, "no such folder on the server"),
    ({"test_fraction": "1"}, None, "test_fraction: empty, or a number between 0 and 1"),
    ({}, b"PK\x03\x04 this is not really a zip", "not a zip or tar archive"),
])
def test_bad_new_competition_input_is_refused_on_the_form_and_creates_nothing(organizer, tmp_path, fields, archive,
                                                                               message):
    arena, client = organizer
    source = make_tree(tmp_path / "dataset", train=1, test=2, size=80)
    csrf = csrf_of(client.get("/admin/new").text)
    form = {"csrf_token": csrf, "slug": "fresh", "title": "", "images_per_class": "3", "public_fraction": "0.5",
            "folder": "" if archive else str(source), **fields}
    files = {"archive": ("data.zip", archive, "application/zip")} if archive else None
    response = client.post("/admin/new", data=form, files=files)
    assert response.status_code == 422 and message in response.text, response.text
    data_dir = arena.settings.data_dir
    assert sorted(p.name for p in competitions_dir(data_dir).iterdir()) == ["test-comp"]
    assert not (data_dir / "preparing").exists() or not any((data_dir / "preparing").iterdir())
    assert not any((data_dir / "uploads" / "incoming").glob("*")) if (data_dir / "uploads").exists() else True
    with arena.database.sessionmaker() as session:
        assert [row.slug for row in list_competitions(session=session)] == ["test-comp"]


def test_an_archive_without_class_folders_fails_in_the_background_says_why_and_leaves_nothing(organizer):
    arena, client = organizer
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("README.txt", "images coming soon")
    csrf = csrf_of(client.get("/admin/new").text)
    client.post("/admin/new", data={"csrf_token": csrf, "slug": "tiny", "images_per_class": "3",
                                    "public_fraction": "0.5"},
                files={"archive": ("dataset.zip", archive.getvalue(), "application/zip")})
    failed = wait_for_preparation(client, "tiny")
    assert 'data-state="failed"' in failed and "nothing was created" in failed
    assert "no train/ folder and no test/ folder" in failed  # prepare's own message, with its fix
    data_dir = arena.settings.data_dir
    assert sorted(p.name for p in competitions_dir(data_dir).iterdir()) == ["test-comp"]  # no folder, no leftovers
    assert not list((data_dir / "preparing" / "tiny").glob("dataset.*"))  # the uploaded archive is gone
    assert client.post("/admin/new/tiny/dismiss", data={"csrf_token": csrf}).status_code == 303
    assert client.get("/admin/new/tiny").status_code == 404
