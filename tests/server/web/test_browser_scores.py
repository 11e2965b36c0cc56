"""What a team sees of penalized scores, grouped problems and live progress, in Chromium against `arena serve`.

The server runs without its worker (`--no-worker`); the test plays the worker through the queue's own functions
on the same SQLite database (claim, progress, finish), so every state is shown exactly when the test puts it
there. Screenshots go to test-artifacts/web/ (git-ignored).
"""

from __future__ import annotations

import os
import secrets

import pytest

from server.competition_dir import competitions_dir
from server.config import Settings
from server.db import Database, Team
from server.db.crud import authenticate_team, get_competition, load_competition
from server.jobs import queue
from server.jobs.leases import register_worker
from server.uploads.rules import create_submission
from submissions.results import ScoreReport
from tests.server.web.test_browser import (
    SLUG,
    Server,
    new_page,
    screenshot,
    sign_in,
    valid_zip,
)
from tests.server.web.test_submit_feedback import colour_zip
from tests.utils.competition import make_competition
from tests.utils.serve import running_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CLASSES = ("with_mask", "without_mask")
WORKER = "browser-test-worker"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("arena-scores")
    data_dir = root / "data"
    make_competition(competitions_dir(data_dir) / SLUG, images_per_class=4, title="Masked faces (scores)",
                     daily_limit=20)
    admin_token = "admin-" + secrets.token_urlsafe(18)
    env = {**os.environ, "ARENA_DATA_DIR": str(data_dir), "ARENA_ADMIN_TOKEN": admin_token}
    with running_server(env, root / "serve.log", "--no-worker") as url:
        yield Server(url, admin_token, data_dir)


@pytest.fixture(scope="module")
def database(server):
    database = Database(Settings(data_dir=server.data_dir).resolved_database_url)
    with database.sessionmaker() as session:
        register_worker(session=session, worker_id=WORKER, device="cpu")
    return database


def class_score(raw: float, distance: float, se: float, eps: float = 0.05) -> dict:
    factor = 1 / distance if distance < eps else 1.0  # as server.scoring.memorization.penalize
    return {"fid_public": raw * factor, "fid_private": raw * factor, "fid_all": raw * factor,
            "raw_fid_public": raw, "raw_fid_private": raw, "raw_fid_all": raw, "memorization_distance": distance,
            "memorization_eps": eps, "penalized": distance < eps, "n_images": 4, "se_public": se * factor,
            "se_private": se * factor}


def scored(database: Database, token: str, total: float, *, distance: float = 0.2, se: float = 6.0) -> int:
    """A submission of the token's team, claimed and finished as the worker would, half the total per class."""
    with database.sessionmaker() as session:
        competition = load_competition(get_competition(session=session, slug=SLUG))
        team: Team | None = authenticate_team(session=session, token=token)
        assert team is not None
        submission, _ = create_submission(session=session, competition=competition, team=team,
                                          sha256=secrets.token_hex(32), size_bytes=1, message="")
        assert queue.claim_next_submission(session=session, worker_id=WORKER).id == submission.id
        classes = {cls: class_score(total / 2, distance, se) for cls in CLASSES}
        sums = {split: sum(c[f"fid_{split}"] for c in classes.values()) for split in ("public", "private", "all")}
        report = {"classes": classes, **{f"score_{k}": v for k, v in sums.items()},
                  "se_public": se * 2**0.5 * sums["public"] / total, "se_private": se, "timings": {"total": 2.0},
                  "device": "cpu", "precision": "exact", "scorer_version": "1.3.0", "weights_sha256": "0" * 64}
        assert queue.finish_scored(session=session, submission_id=submission.id, lease_id=submission.lease_id,
                                   worker_id=WORKER, result=ScoreReport.model_validate(report).result())
    return submission.id


def test_a_penalized_entry_reads_penalized_everywhere_and_stays_off_the_score_axis(server, database, browser):
    alpha = server.create_team("alpha")
    copier = server.create_team("copier")
    for total in (688.0, 650.0):
        scored(database, alpha, total)
    copied = scored(database, alpha, 346.2, distance=1.0e-7)  # 3.5e9 after the penalty
    for total in (640.0, 700.0):
        scored(database, alpha, total)
    scored(database, copier, 150.0, distance=0.04)  # a mild x25 penalty: 3,750, still a number a team could beat

    page = new_page(browser, server)
    page.goto(f"/c/{SLUG}/leaderboard")
    rows = page.locator("#leaderboard tbody tr")
    assert rows.count() == 2
    assert "alpha" in rows.nth(0).inner_text() and "640.0" in rows.nth(0).inner_text()
    last = rows.nth(1).inner_text()
    assert "copier" in last and "penalized" in last and "3750" not in last.replace(",", "")
    screenshot(page, "scores-leaderboard-penalized")

    sign_in(page, alpha)
    page.goto(f"/submissions/{copied}")
    row = page.locator("#scores tbody tr").first.inner_text()
    assert "penalized" in row and "raw 173.10" in row and "±" not in row
    assert "memorized: mean distance 1.0e-07 < ε 0.05, score ×10⁷" in row and "0.0000" not in row
    history = page.inner_text("#status")
    assert "scored in" in history and "penalized for memorization" in history and "3462000000" not in history
    assert page.locator("#scores td.penalty").first.evaluate("cell => cell.scrollWidth <= cell.clientWidth")
    screenshot(page, "scores-submission-penalized")

    page.click("text=My team")
    plot = page.locator(".plot svg")
    assert plot.locator("circle").count() == 4  # the four honest entries on the axis
    cross = plot.locator("g.penalized").bounding_box()
    top_line = min(box["y"] for box in (plot.locator("line.gridline").nth(i).bounding_box()
                                        for i in range(plot.locator("line.gridline").count())))
    assert cross["y"] + cross["height"] < top_line  # above the score axis, apart from it
    labels = [t.text_content() or "" for t in plot.locator("text[text-anchor=end]").all()]
    assert "penalized" in labels and not any(len(label.replace(",", "")) > 4 for label in labels if label[0].isdigit())
    assert plot.locator("line.errorbar").count() == 4 * 3  # a bar and two caps per honest entry
    screenshot(page, "scores-team-plot")


def test_problems_are_grouped_in_the_form(server, browser, tmp_path):
    token = server.create_team("colourful")
    page = new_page(browser, server)
    sign_in(page, token)
    page.goto(f"/c/{SLUG}/submit")
    bad = tmp_path / "colour.zip"
    bad.write_bytes(colour_zip(list(CLASSES), 4))
    page.set_input_files("#file", str(bad))
    page.click("main button[type=submit]")
    page.locator("#problems li").first.wait_for()
    assert page.locator("#problems li").count() == 1
    text = page.inner_text("#problems li")
    assert "8 files" in text and "and 5 more" in text and "rule not_grayscale" in text
    screenshot(page, "scores-submit-grouped-problems")


def test_the_status_box_moves_from_accepted_to_the_sample_set_being_scored_without_a_reload(server, database,
                                                                                             browser, tmp_path):
    token = server.create_team("modeller")
    page = new_page(browser, server)
    sign_in(page, token)
    page.goto(f"/c/{SLUG}/submit")
    upload = tmp_path / "ok.zip"
    upload.write_bytes(valid_zip(seed=11))
    page.set_input_files("#file", str(upload))
    page.click("main button[type=submit]")
    page.wait_for_url("**/submissions/*")
    assert "Accepted and waiting to be scored" in page.inner_text("#status")
    page.evaluate("window.notReloaded = true")
    submission_id = int(page.url.rsplit("/", 1)[1])
    with database.sessionmaker() as session:
        claimed = queue.claim_next_submission(session=session, worker_id=WORKER)
        assert claimed.id == submission_id
        assert queue.record_progress(session=session, submission_id=submission_id, lease_id=claimed.lease_id,
                                     progress="sample set 2 of 5: scoring")
    page.wait_for_selector("#status strong.progress")
    status = page.inner_text("#status")
    assert "Scoring now: sample set 2 of 5: scoring" in status and "Accepted" not in status
    assert "accepted and is queued" not in page.inner_text("main")
    assert page.evaluate("window.notReloaded") is True  # the polled fragment changed, the page did not reload
    screenshot(page, "scores-status-progress")
