"""The pages in a real browser: Debian's Chromium (Playwright) against a real `arena serve` on loopback.

One server process for the module: a tiny competition (8 images per class), the real upload, validation, queue,
the worker process `arena serve` starts, and the scoring pipeline with random FID weights (TORCH_HOME). Screenshots
of every page go to test-artifacts/web/ (git-ignored); the README's screenshots in docs/img/ come from
tests/server/web/test_screenshots.py (a scored demo).
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from server.competition_dir import competitions_dir
from tests.utils.competition import make_competition, random_images
from tests.utils.inception import install_random_fid_weights
from tests.utils.serve import REPO, running_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = REPO / "test-artifacts" / "web"
SLUG = "test-comp"
CLASSES = ("with_mask", "without_mask")
XSS_NAME = "<script>alert('pwned')</script> crew"
IMAGES = 4
SCORING_TIMEOUT_MS = 300_000
UPLOAD_CAP = 1_000_000  # far above the test zips (tens of kB)


class Server:
    def __init__(self, url: str, admin_token: str, data_dir: Path) -> None:
        self.url, self.admin_token, self.data_dir = url, admin_token, data_dir

    def create_team(self, name: str, *, reference: bool = False) -> str:
        # Reference (baseline) entries only through the organizer route.
        route = f"/api/admin/competitions/{SLUG}/teams" if reference else f"/api/competitions/{SLUG}/teams"
        response = httpx.post(f"{self.url}{route}", json={"name": name, "members": ["Ada"], "is_baseline": reference},
                              headers=self.admin, timeout=30)
        assert response.status_code in (200, 201), response.text
        return response.json()["token"]

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def wait_scored(self, submission_id: int) -> None:
        deadline = time.monotonic() + SCORING_TIMEOUT_MS / 1000
        while time.monotonic() < deadline:
            status = httpx.get(f"{self.url}/api/submissions/{submission_id}", headers=self.admin, timeout=30).json()
            if status["status"] in ("scored", "failed", "cancelled"):
                assert status["status"] == "scored", status
                return
            time.sleep(1)
        raise AssertionError(f"submission {submission_id} was not scored in time")

    def upload(self, token: str, zip_bytes: bytes, message: str = "") -> int:
        response = httpx.post(f"{self.url}/api/competitions/{SLUG}/submissions", data={"message": message},
                              files={"file": ("s.zip", zip_bytes, "application/zip")},
                              headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert response.status_code == 202, response.text
        return response.json()["id"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("arena-web")
    data_dir = root / "data"
    # Four images per class and split: the worker extracts Inception features on the CPU (about 0.3 s per image on
    # an idle core, several times that on a busy CI machine), so each scoring stays in seconds.
    make_competition(competitions_dir(data_dir) / SLUG, images_per_class=IMAGES, train_per_class=IMAGES,
                     test_per_class=IMAGES, title="Masked faces (browser test)", daily_limit=5)
    install_random_fid_weights(root / "torch")
    admin_token = "admin-" + secrets.token_urlsafe(18)
    env = {**os.environ, "ARENA_DATA_DIR": str(data_dir), "ARENA_ADMIN_TOKEN": admin_token,
           "TORCH_HOME": str(root / "torch"), "ARENA_DEVICE": "cpu", "ARENA_WORKER_POLL_SECONDS": "0.3",
           "ARENA_WORKER_SHUTDOWN_GRACE_SECONDS": "2", "ARENA_MAX_UPLOAD_BYTES": str(UPLOAD_CAP),
           "OMP_NUM_THREADS": "2"}
    with running_server(env, root / "serve.log") as url:
        yield Server(url, admin_token, data_dir)


@pytest.fixture(scope="module")
def teams(server):
    return {"alpha": server.create_team("alpha"), "xss": server.create_team(XSS_NAME)}


@pytest.fixture(scope="module")
def xss_submission(server, teams):
    """A submission of the second team (a script tag in its name and message); the tests never wait for its score."""
    return server.upload(teams["xss"], valid_zip(seed=7), message="<img src=x onerror=alert(1)>")


@pytest.fixture(scope="module")
def reference_submission(server):
    """A reference (baseline) entry: shown on the board, marked, not ranked."""
    return server.upload(server.create_team("DCGAN baseline", reference=True), valid_zip(seed=3))


def valid_zip(seed: int) -> bytes:
    from submissions import pack

    out = io.BytesIO()
    images = {cls: random_images(IMAGES, seed=seed * 10 + i, brightness=80 + 100 * i) for i, cls in enumerate(CLASSES)}
    pack(images, out, list(CLASSES))
    return out.getvalue()


def invalid_zip() -> bytes:
    """Three problems at once: a class with too few images, a wrong image size, a missing class folder."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        from PIL import Image

        for i, image in enumerate(random_images(3, size=64)):
            png = io.BytesIO()
            Image.fromarray(image, mode="L").save(png, format="PNG")
            archive.writestr(f"with_mask/{i:05d}.png", png.getvalue())
        png = io.BytesIO()
        Image.fromarray(random_images(1, size=32)[0], mode="L").save(png, format="PNG")
        archive.writestr("with_mask/small.png", png.getvalue())
    return out.getvalue()


def new_page(browser, server):
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs  # type: ignore[attr-defined]
    return page


def sign_in(page, token: str) -> None:
    page.goto("/signin")
    page.fill("#token", token)
    page.click("main button[type=submit]")
    page.wait_for_selector(".notice.ok")


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def quota_remaining(page) -> int:
    return int(re.search(r"(\d+) of \d+ submissions left", page.inner_text("#quota")).group(1))


def test_invalid_zip_lists_the_validator_problems_and_costs_no_quota(server, browser, teams, tmp_path):
    # First in the module: it needs no scoring, so it runs while the worker still builds the reference statistics.
    page = new_page(browser, server)
    page.goto("/")
    screenshot(page, "index")
    page.click("text=Rules & how to submit")
    assert "Lower is better" in page.inner_text("main")
    screenshot(page, "overview")
    sign_in(page, teams["alpha"])
    page.goto(f"/c/{SLUG}/submit")
    before = quota_remaining(page)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(invalid_zip())
    page.set_input_files("#file", str(bad))
    page.click("main button[type=submit]")
    problems = page.locator("#problems li")
    problems.first.wait_for()
    text = page.inner_text("#problems")
    assert problems.count() >= 2, text
    assert "without_mask" in text and "with_mask/small.png" in text
    assert "quota is unchanged" in text
    assert quota_remaining(page) == before
    screenshot(page, "submit-invalid")


def test_an_upload_far_over_the_cap_shows_a_page_not_a_dropped_connection(server, browser, teams, tmp_path):
    # Refused from its Content-Length before the body is read: Chromium must still show the answer.
    page = new_page(browser, server)
    sign_in(page, teams["alpha"])
    page.goto(f"/c/{SLUG}/submit")
    before = quota_remaining(page)
    huge = tmp_path / "huge.zip"
    huge.write_bytes(os.urandom(3 * UPLOAD_CAP))
    page.set_input_files("#file", str(huge))
    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        page.click("main button[type=submit]")
    assert answer.value.status == 413
    page.wait_for_selector("h1:has-text('Upload too large')")
    assert "1,000,000 bytes" in page.inner_text("main")
    page.goto(f"/c/{SLUG}/submit")
    assert quota_remaining(page) == before


def test_team_uploads_through_the_form_and_watches_it_scored_live(server, browser, teams, tmp_path):
    page = new_page(browser, server)
    sign_in(page, teams["alpha"])
    page.goto(f"/c/{SLUG}/submit")
    before = quota_remaining(page)
    screenshot(page, "submit")
    zip_path = tmp_path / "alpha.zip"
    zip_path.write_bytes(valid_zip(seed=1))
    page.set_input_files("#file", str(zip_path))
    page.fill("#message", "DCGAN, 20 epochs")
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if request.url.endswith("/status") else None)
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/submissions/\d+$"))
    first = page.get_attribute("[data-status]", "data-status")
    assert first in ("queued", "scoring"), first  # the page opens before the worker is done
    # No navigation by the test from here on: the script polls the status and reloads once it is final.
    page.wait_for_selector('[data-status="scored"]', timeout=SCORING_TIMEOUT_MS)
    page.wait_for_selector("#scores")
    assert polls, "the status box was never polled"
    grids = page.locator(".grids img")
    assert grids.count() == len(CLASSES)
    for i in range(grids.count()):
        # The worker's grid: one row of the 4 images, 64 px each.
        assert grids.nth(i).evaluate("img => img.complete && img.naturalWidth") == IMAGES * 64
    assert "Memorization distance" in page.inner_text("#scores")
    screenshot(page, "submission")

    page.goto(f"/c/{SLUG}/submit")
    assert quota_remaining(page) == before - 1
    page.goto(f"/c/{SLUG}/leaderboard")
    row = page.locator("#leaderboard tbody tr", has_text="alpha")
    assert row.count() == 1 and "mine" in (row.get_attribute("class") or "")
    screenshot(page, "leaderboard-first-entry")
    page.click("text=My team")
    assert page.locator(".plot svg circle").count() == 1
    screenshot(page, "team")


def test_a_team_name_with_a_script_tag_is_shown_as_text(server, browser, teams, xss_submission, reference_submission):
    page = new_page(browser, server)
    sign_in(page, teams["xss"])
    assert page.inner_text(".who strong") == XSS_NAME
    page.click("text=My team")
    assert page.inner_text("h1") == f"Team {XSS_NAME}"
    page.click(f"table a[href='/submissions/{xss_submission}']")
    page.wait_for_selector("[data-status]")
    assert page.inner_text("p.lead") == "“<img src=x onerror=alert(1)>”"
    screenshot(page, "submission-live")
    assert page.dialogs == []  # neither the name nor the message ran as script


def test_a_team_cannot_open_another_teams_submission(server, browser, teams, xss_submission):
    page = new_page(browser, server)
    sign_in(page, teams["alpha"])
    for path in (f"/submissions/{xss_submission}", f"/submissions/{xss_submission}/grids/with_mask.png"):
        response = page.goto(path)
        assert response.status == 403, path
    assert "belongs to another team" in page.content() or page.url.endswith(".png")
    page.goto(f"/submissions/{xss_submission}")
    screenshot(page, "forbidden")


def test_organizer_reveals_the_private_board_and_teams_then_see_it(server, browser, teams, xss_submission,
                                                                   reference_submission):
    for submission_id in (xss_submission, reference_submission):
        server.wait_scored(submission_id)
    team = new_page(browser, server)
    sign_in(team, teams["alpha"])
    team.goto(f"/c/{SLUG}/leaderboard")
    assert team.locator("#leaderboard tbody tr").count() == 3
    reference = team.locator("#leaderboard tr.reference")
    assert reference.count() == 1 and reference.locator("td.rank").inner_text() == "–"  # shown, not ranked
    assert team.locator("text=not revealed yet").count() == 1
    screenshot(team, "leaderboard")
    assert team.goto(f"/c/{SLUG}/leaderboard?board=private").status == 403

    organizer = new_page(browser, server)
    organizer.goto("/admin/signin")
    organizer.fill("#token", server.admin_token)
    organizer.click("main button[type=submit]")
    organizer.wait_for_selector("#admin-workers")
    assert organizer.locator("#admin-workers .badge.scored").count() >= 1  # the server's worker process is alive
    screenshot(organizer, "admin")
    organizer.click("text=Submissions")
    organizer.wait_for_selector("#admin-submissions")
    assert organizer.locator("#admin-submissions td", has_text="<script>").count() == 1
    screenshot(organizer, "admin-submissions")
    organizer.click("text=Teams")
    organizer.wait_for_selector("#admin-teams")
    screenshot(organizer, "admin-teams")
    organizer.click("text=Competitions & workers")
    organizer.click("text=Reveal private board")
    organizer.click("#confirm-action")  # the page named the consequence first
    organizer.wait_for_selector("text=is now visible to everyone")

    team.goto(f"/c/{SLUG}/leaderboard?board=private")
    assert team.locator("#leaderboard tbody tr").count() == 3
    assert team.locator("#leaderboard th", has_text="Δ").count() == 1
    screenshot(team, "leaderboard-private")
    csv = team.request.get(f"/c/{SLUG}/leaderboard.csv?board=private")
    assert csv.status == 200 and csv.text().splitlines()[0].startswith("rank,team")


def test_organizer_walks_one_season_from_the_browser(server, browser, tmp_path):
    """Create from a dataset archive, configure, open, a team submits and is scored, the deadline passes, reveal,
    export the final CSV, archive: every step through the organizer console."""
    from tests.server.data.trees import make_tree

    slug = "season-2026"
    dataset = make_tree(tmp_path / "dataset", train=IMAGES, test=2 * IMAGES, size=80)
    archive = Path(shutil.make_archive(str(tmp_path / "dataset"), "zip", dataset))
    organizer = new_page(browser, server)
    organizer.goto("/admin/signin")
    organizer.fill("#token", server.admin_token)
    organizer.click("main button[type=submit]")
    organizer.wait_for_selector(".notice.ok")

    organizer.goto("/admin/new")
    organizer.fill("#slug", slug)
    organizer.fill("#title", "Season 2026")
    organizer.set_input_files("#archive", str(archive))
    organizer.fill("#images_per_class", str(IMAGES))
    organizer.click("#new-form button[type=submit]")
    organizer.wait_for_selector('#job[data-state="done"]', timeout=120_000)  # the page refreshes while preparing
    assert organizer.locator("#prepared-counts img").count() == len(CLASSES)
    screenshot(organizer, "console-prepared")

    # The server's worker process (never a web request) builds the scoring references; their page refreshes itself.
    assert organizer.get_attribute("#reference-build", "data-build-status") in ("queued", "building", "done")
    organizer.click("#reference-build-details")
    organizer.wait_for_selector('#reference-build[data-build-status="done"]', timeout=SCORING_TIMEOUT_MS)
    assert "(100%)" in organizer.inner_text("#reference-build")
    screenshot(organizer, "console-references")

    organizer.goto(f"/admin/new/{slug}")
    organizer.click("text=Settings first")
    organizer.fill("#daily_limit", "0")
    organizer.click("#settings-form button[type=submit]")
    assert "greater than or equal to 1" in organizer.inner_text("#error-daily_limit")
    organizer.fill("#daily_limit", "2")
    organizer.fill("#description", "Generate **masked** faces.")
    organizer.select_option("#status", "open")
    organizer.click("#settings-form button[type=submit]")
    organizer.wait_for_selector(".notice.ok")
    assert "daily_limit" in organizer.inner_text("#settings-history")
    screenshot(organizer, "console-settings")

    organizer.goto("/admin/teams")
    organizer.select_option("select[name=competition]", slug)
    organizer.fill("input[name=name]", "season team")
    organizer.click("text=Create team")
    token = organizer.inner_text("#new-token pre").strip()

    team = new_page(browser, server)
    sign_in(team, token)
    team.goto(f"/c/{slug}")
    assert team.locator(".lead strong", has_text="masked").count() == 1
    zip_path = tmp_path / "season.zip"
    zip_path.write_bytes(valid_zip(seed=11))
    team.goto(f"/c/{slug}/submit")
    team.set_input_files("#file", str(zip_path))
    team.click("main button[type=submit]")
    team.wait_for_selector('[data-status="scored"]', timeout=SCORING_TIMEOUT_MS)

    organizer.goto(f"/admin/c/{slug}/settings")
    organizer.fill("#deadline", "2020-01-01 00:00")
    organizer.click("#settings-form button[type=submit]")
    assert "is in the past: uploads are refused from now on" in organizer.inner_text(".notice.warn")  # saved
    team.goto(f"/c/{slug}/submit")
    assert "The deadline has passed (2020-01-01 00:00 UTC)" in team.inner_text("main")

    organizer.goto(f"/admin/c/{slug}/settings")
    organizer.click("text=Reveal private board")
    organizer.click("#confirm-action")
    organizer.wait_for_selector("text=is now visible to everyone")
    organizer.goto(f"/admin/c/{slug}/settings")
    with organizer.expect_download() as download:
        organizer.click("#export-final")
    final_csv = Path(download.value.path()).read_text()
    assert "season team" in final_csv.splitlines()[1]

    organizer.select_option("#status", "archived")
    organizer.click("#settings-form button[type=submit]")
    organizer.wait_for_selector(".notice.ok")
    team.goto(f"/c/{slug}/leaderboard?board=private")
    assert "archived" in team.inner_text("#competition-status")
    assert team.locator("#leaderboard tbody tr", has_text="season team").count() == 1
    screenshot(team, "season-archived")
