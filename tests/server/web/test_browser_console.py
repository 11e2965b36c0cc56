"""Pages a new organizer and a new team meet first, in Debian's Chromium (Playwright) against a real `arena serve`
without a scoring worker (nothing here is scored, so the module starts in seconds): the API docs offline, the
favicon, team sign-up, and the organizer's confirmations.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import httpx
import pytest

from server.competition_dir import competitions_dir
from tests.utils.competition import make_competition
from tests.utils.serve import running_server

pytestmark = [pytest.mark.browser]

SLUG = "test-comp"
CODED, JOIN_CODE = "course", "ml-2026-spring"


class Server:
    def __init__(self, url: str, admin_token: str, data_dir: Path) -> None:
        self.url, self.admin_token, self.data_dir = url, admin_token, data_dir

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("arena-console")
    data_dir = root / "data"
    make_competition(competitions_dir(data_dir) / SLUG, images_per_class=4, train_per_class=4, test_per_class=4,
                     title="Masked faces (console test)")
    make_competition(competitions_dir(data_dir) / CODED, images_per_class=4, train_per_class=4, test_per_class=4,
                     slug=CODED, title="Course GAN contest", join_code=JOIN_CODE)
    admin_token = "admin-" + secrets.token_urlsafe(18)
    env = {**os.environ, "ARENA_DATA_DIR": str(data_dir), "ARENA_ADMIN_TOKEN": admin_token}
    with running_server(env, root / "serve.log", "--no-worker") as url:
        yield Server(url, admin_token, data_dir)


def offline_page(browser, server):
    """A page whose every request off the server is refused, as on a machine without internet; `page.blocked` lists
    what was refused and `page.failed` every answer of 400 or more."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    blocked: list[str] = []
    failed: list[str] = []

    def only_the_server(route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            blocked.append(f"{route.request.resource_type} {route.request.url}")
            route.abort("internetdisconnected")

    context.route("**/*", only_the_server)
    page.on("response", lambda response: failed.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)
    page.blocked, page.failed = blocked, failed  # type: ignore[attr-defined]
    return page


def test_api_docs_render_the_operations_without_internet(server, browser):
    page = offline_page(browser, server)
    page.goto("/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    operations = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/competitions/{slug}/submissions" in text for text in operations), operations
    assert page.blocked == [] and page.failed == []
    page.goto("/redoc")
    page.wait_for_selector("h2:has-text('Register Team')", timeout=20_000)
    page.wait_for_load_state("networkidle")
    # ReDoc's footer asks for its maker's logo from a CDN: the page's policy keeps the browser from sending it.
    assert page.blocked == [] and page.failed == []


def test_every_page_finds_its_favicon(server, browser):
    page = offline_page(browser, server)
    page.goto("/")
    page.wait_for_load_state("networkidle")
    icon = httpx.get(f"{server.url}/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO header
    svg = httpx.get(server.url + page.locator("link[rel=icon][type='image/svg+xml']").get_attribute("href"))
    assert svg.status_code == 200 and "<svg" in svg.text
    assert page.failed == []


def sign_in_organizer(page, server) -> None:
    page.goto("/admin/signin")
    page.fill("#token", server.admin_token)
    page.click("main button[type=submit]")
    page.wait_for_selector(".notice.ok")


def test_reveal_asks_first_warns_before_the_deadline_and_can_be_undone(server, browser):
    page = offline_page(browser, server)
    sign_in_organizer(page, server)
    settings = f"/admin/c/{SLUG}/settings"
    page.goto(settings)
    page.click("#reveal-board")
    assert "Everyone, teams and anonymous visitors, will see the private leaderboard" in page.inner_text(
        "#consequence")
    assert "no deadline: teams can still submit" in page.inner_text("#confirm-warning")
    page.click("#cancel-action")  # changed my mind: nothing happens
    assert page.url.endswith(settings) and page.locator("#reveal-board").count() == 1
    assert httpx.get(f"{server.url}/api/competitions/{SLUG}").json()["private_revealed"] is False

    page.click("#reveal-board")
    page.click("#confirm-action")
    page.wait_for_selector("text=is now visible to everyone")
    assert httpx.get(f"{server.url}/api/competitions/{SLUG}").json()["private_revealed"] is True

    page.click("#hide-board")  # revealed by mistake
    assert "no longer see the private leaderboard" in page.inner_text("#consequence")
    page.click("#confirm-action")
    page.wait_for_selector("text=hidden from teams and visitors again")
    assert httpx.get(f"{server.url}/api/competitions/{SLUG}").json()["private_revealed"] is False
    history = page.inner_text("#settings-history")
    assert history.count("private_board") == 2
    assert "hidden\trevealed" in history and "revealed\thidden" in history


def test_rescore_all_names_how_many_entries_go_back_into_the_queue(server, browser):
    page = offline_page(browser, server)
    sign_in_organizer(page, server)
    page.goto("/admin")
    page.click(f"#admin-competitions tr:has-text('{SLUG}') >> text=Rescore all…")
    assert "0 scored or failed submissions of 'test-comp' go back into the queue" in page.inner_text("#consequence")
    assert "The competition is running" in page.inner_text("#confirm-warning")
    page.click("#confirm-action")
    page.wait_for_selector("text=Queued 0 submission(s) of test-comp for rescoring")


def test_a_team_signs_up_in_the_browser_and_sees_its_token_once(server, browser):
    page = offline_page(browser, server)
    page.goto("/signin")
    page.click("#sign-up-links >> text=Masked faces (console test)")
    page.fill("#name", "Pix2Pix Pioneers")
    page.fill("#members", "Grace Hopper\nAlan Turing")
    page.click("#join-form button[type=submit]")
    token = page.input_value("#team-token")
    assert token.startswith("arena_") and "shown only this once" in page.inner_text("main")
    assert "Team Pix2Pix Pioneers" in page.inner_text("header")  # this browser is signed in as the team
    me = httpx.get(f"{server.url}/api/teams/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert (me["name"], me["members"]) == ("Pix2Pix Pioneers", ["Grace Hopper", "Alan Turing"])
    page.goto(f"/c/{SLUG}/join")  # the token is never shown again
    assert token not in page.content()


def test_sign_up_needs_the_join_code_where_one_is_set(server, browser):
    page = offline_page(browser, server)
    page.goto(f"/c/{CODED}")
    page.click("#create-team-link")
    page.fill("#name", "Latent Space Cadets")
    page.fill("#join_code", "guess")
    page.click("#join-form button[type=submit]")
    assert "needs its join code" in page.inner_text("#join-error")
    assert page.input_value("#name") == "Latent Space Cadets"  # nothing to type twice
    page.fill("#join_code", JOIN_CODE)
    page.click("#join-form button[type=submit]")
    assert page.input_value("#team-token").startswith("arena_")
