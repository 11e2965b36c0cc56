"""A penalized entry on the pages: what happened (raw FID, penalty, reason) instead of a ten-digit number, ranked
below every unpenalized entry, while the API and the CSV keep the exact values (real app, SQLite)."""

from __future__ import annotations

import re
import secrets

import pytest

from server.db.crud import get_competition, load_competition
from server.jobs import queue
from server.uploads.rules import create_submission
from submissions.results import ScoreReport
from tests.utils.server_factories import Arena

CLASSES = ("with_mask", "without_mask")


def shown(html: str) -> str:
    """The text a reader sees without hovering: tooltips (the exact numbers) taken out, thousands separators too."""
    return re.sub(r'title="[^"]*"', "", html).replace(",", "")


@pytest.fixture
def arena(data_dir):
    return Arena(data_dir)


def _class(raw_public: float, raw_private: float, distance: float, eps: float = 0.05) -> dict:
    factor = 1 / distance if distance < eps else 1.0  # as server.scoring.memorization.penalize
    return {"fid_public": raw_public * factor, "fid_private": raw_private * factor,
            "fid_all": (raw_public + raw_private) / 2 * factor, "raw_fid_public": raw_public,
            "raw_fid_private": raw_private, "raw_fid_all": (raw_public + raw_private) / 2,
            "memorization_distance": distance, "memorization_eps": eps, "penalized": distance < eps, "n_images": 8,
            "se_public": 0.2 * raw_public * factor, "se_private": 0.2 * raw_private * factor}


def scored(arena: Arena, team, classes: dict[str, dict]) -> int:
    """Finish a submission with this per-class report, totals summed, as the worker does."""
    totals = {split: sum(c[f"fid_{split}"] for c in classes.values()) for split in ("public", "private", "all")}
    report = {"classes": classes, **{f"score_{split}": value for split, value in totals.items()},
              "se_public": totals["public"] / 7, "se_private": totals["private"] / 7, "timings": {"total": 1.0},
              "device": "cpu", "precision": "exact", "scorer_version": "1.2.0", "weights_sha256": "0" * 64}
    with arena.database.sessionmaker() as session:
        competition = load_competition(get_competition(session=session, slug="test-comp"))
        submission, _ = create_submission(session=session, competition=competition, team=team,
                                          sha256=secrets.token_hex(32), size_bytes=1, message="")
        assert queue.claim_next_submission(session=session, worker_id=arena.worker_id).id == submission.id
        assert queue.finish_scored(session=session, submission_id=submission.id, lease_id=submission.lease_id,
                                   worker_id=arena.worker_id, result=ScoreReport.model_validate(report).result())
    return submission.id


COPIES = {"with_mask": _class(173.11, 180.2, distance=1.0e-7), "without_mask": _class(150.0, 160.0, distance=0.2)}


def test_a_penalized_class_shows_its_raw_fid_the_penalty_and_why_without_an_interval(arena):
    submission = scored(arena, arena.alpha, COPIES)
    team = arena.client()
    arena.sign_in(team, arena.alpha_token)
    page = team.get(f"/submissions/{submission}").text
    scores = page.split('<table id="scores">')[1].split("</table>")[0]
    penalized_row = scores.split("<code>with_mask</code>")[1].split("</tr>")[0]
    assert "penalized" in penalized_row and "raw 173.11" in penalized_row
    assert "memorized: mean distance 1.0e-07 &lt; ε 0.05, score ×10⁷" in penalized_row
    assert "±" not in penalized_row and "1731100000" not in shown(penalized_row)
    honest_row = scores.split("<code>without_mask</code>")[1].split("</tr>")[0]
    assert "150.0 <span class=\"pm\"" in honest_row and "none" in honest_row  # unpenalized: score ± interval
    total = scores.split("<tfoot>")[1]
    assert "penalized" in total and "raw 323.11" in total and "±" not in total


def test_boards_and_history_read_penalized_and_rank_it_below_every_unpenalized_entry(arena):
    # A mild penalty (d = 0.04 < ε 0.05: ×25) leaves 250, a better number than the honest 700; it still ranks last.
    mild = {cls: _class(5.0, 5.0, distance=0.04) for cls in CLASSES}
    penalized = scored(arena, arena.alpha, mild)
    honest = scored(arena, arena.beta, {cls: _class(350.0, 360.0, distance=0.2) for cls in CLASSES})
    board = arena.client().get("/c/test-comp/leaderboard").text
    rows = board.split("<tbody>")[1].split("</tbody>")[0].split("<tr ")[1:]
    assert "&lt;script&gt;" in rows[0] and "700.0" in rows[0]
    assert "alpha" in rows[1] and rows[1].count(">penalized</span>") >= 3  # total and both classes
    assert "250.0" not in shown(rows[1]) and 'class="tie"' not in rows[1]

    api = arena.client().get("/api/competitions/test-comp/leaderboard").json()
    entries = {e["submission_id"]: e for e in api["entries"]}
    assert [e["submission_id"] for e in api["entries"]] == [honest, penalized]
    assert entries[penalized]["score"] == pytest.approx(250.0) and entries[penalized]["penalized"]
    assert entries[penalized]["penalized_classes"] == list(CLASSES)
    csv = arena.client().get("/c/test-comp/leaderboard.csv").text.splitlines()
    assert csv[2].split(",")[4] == "250.000000"  # the exact number stays in the CSV

    team = arena.client()
    arena.sign_in(team, arena.alpha_token)
    history = team.get(f"/teams/{arena.alpha.id}").text.split("<tbody>")[1]
    assert ">penalized</span>" in history and "250.0" not in shown(history)


def test_a_team_with_an_honest_entry_is_ranked_by_it_not_by_a_smaller_penalized_number(arena):
    honest = scored(arena, arena.alpha, {cls: _class(350.0, 360.0, distance=0.2) for cls in CLASSES})
    scored(arena, arena.alpha, {cls: _class(5.0, 5.0, distance=0.04) for cls in CLASSES})
    api = arena.client().get("/api/competitions/test-comp/leaderboard").json()
    assert [e["submission_id"] for e in api["entries"]] == [honest]
    assert not api["entries"][0]["penalized"]


def test_the_organizer_list_reads_penalized_too(arena):
    scored(arena, arena.alpha, COPIES)
    organizer = arena.client()
    arena.sign_in_admin(organizer)
    listing = organizer.get("/admin/submissions").text.split("<tbody>")[1].split("</tbody>")[0]
    assert ">penalized</span>" in listing and "1731100" not in shown(listing)
