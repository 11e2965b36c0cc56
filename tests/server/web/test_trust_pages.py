"""Intervals, diagnostics, memorization evidence and statistical ties on the pages (real app, SQLite).

Scores are stored through the queue's functions as a worker would, with the fields scorer 1.1 adds; the evidence
images are written with the storage function the worker uses.
"""

from __future__ import annotations

import secrets

import pytest

from server.db.crud import competitions_dir, get_competition, load_competition
from server.jobs import queue
from server.storage import write_evidence_images
from server.uploads.rules import create_submission
from submissions.results import ScoreReport
from tests.utils.competition import random_images
from tests.utils.server_factories import Arena, csrf_of

CLASSES = ("with_mask", "without_mask")


@pytest.fixture
def arena(data_dir):
    return Arena(data_dir)


def _report(competition, public: float, private: float, se: float, penalized: bool) -> dict:
    def neighbour(split: str, index: int, distance: float) -> dict:
        files = competition.train_files(cls) if split == "train" else competition.test_files(cls, split)
        return {"image": index, "split": split, "file": files[0].relative_to(competition.root).as_posix(),
                "distance": distance}

    classes = {}
    for cls in CLASSES:
        classes[cls] = {
            "fid_public": public / 2, "fid_private": private / 2, "fid_all": (public + private) / 4,
            "raw_fid_public": public / 2, "raw_fid_private": private / 2, "raw_fid_all": 0.0,
            "memorization_distance": 0.01, "memorization_eps": 0.03, "penalized": penalized, "n_images": 8,
            "se_public": se / 2**0.5, "se_private": se / 2**0.5, "se_all": se / 2,
            "diagnostics": {"kid_mean": 0.0123, "kid_std": 0.001, "precision": 0.91, "recall": 0.4,
                            "density": 1.1, "coverage": 0.62, "distinct_images": 8, "n_images": 8},
            "diagnosis": "Covers 62% of the real images' neighbourhoods; 91% of samples look real: likely mode "
                         "collapse (realistic samples, too little variety).",
            "nearest_train": [neighbour("train", 3, 0.0101)],
            "nearest_any": [neighbour("private", 5, 0.0042), neighbour("train", 3, 0.0101)],
        }
    return {"classes": classes, "score_public": public, "score_private": private, "score_all": (public + private) / 2,
            "se_public": se, "se_private": se, "se_all": se / 2, "timings": {"total": 1.5}, "device": "cpu",
            "precision": "exact", "scorer_version": "1.1.0", "weights_sha256": "0" * 64}


def score(arena: Arena, team, public: float, private: float, se: float = 1.0, penalized: bool = False) -> int:
    with arena.database.sessionmaker() as session:
        competition = load_competition(get_competition(session=session, slug="test-comp"))
        submission, _ = create_submission(session=session, competition=competition, team=team,
                                          sha256=secrets.token_hex(32), size_bytes=1, message="")
        assert queue.claim_next_submission(session=session, worker_id=arena.worker_id).id == submission.id
        report = _report(competition, public, private, se, penalized)
        assert queue.finish_scored(session=session, submission_id=submission.id, lease_id=submission.lease_id,
                                   worker_id=arena.worker_id, result=ScoreReport.model_validate(report).result())
    for cls in CLASSES:
        write_evidence_images(arena.settings.data_dir, submission.id, cls, random_images(8), [3, 5])
    return submission.id


def test_submission_page_shows_intervals_sentences_and_training_evidence_only(arena):
    submission = score(arena, arena.alpha, 100.0, 120.0, se=2.0, penalized=True)
    team = arena.client()
    arena.sign_in(team, arena.alpha_token)
    page = team.get(f"/submissions/{submission}").text
    assert "raw 50.00" in page and "±" not in page.split('id="scores"')[1].split("</table>")[0]  # penalized: no ±
    honest = team.get(f"/submissions/{score(arena, arena.alpha, 100.0, 120.0, se=2.0)}").text
    assert "50.0 <span class=\"pm\"" in honest and "± 2.8" in honest  # class: se 2/sqrt(2) -> 1.96 x 1.414 = 2.77
    assert "100.0 <span class=\"pm\"" in honest and "± 3.9" in honest  # total: 1.96 x 2
    assert "likely mode collapse" in page and "Memorization evidence" in page
    competition_root = competitions_dir(arena.settings.data_dir) / "test-comp"
    private_name = sorted((competition_root / "test" / "with_mask").iterdir())[1].name  # public/private alternate
    assert private_name not in page and "private" not in page.split("Memorization evidence")[1]
    base = f"/submissions/{submission}/evidence/with_mask"
    for url in (f"{base}/train/0/generated.png", f"{base}/train/0/real.png"):
        response = team.get(url)
        assert response.status_code == 200 and response.headers["content-type"] == "image/png", url
    for url in (f"{base}/any/0/generated.png", f"{base}/any/0/real.png"):
        assert team.get(url).status_code == 403, url  # the nearest test image never reaches a team
    assert team.get(f"{base}/train/7/real.png").status_code == 404

    organizer = arena.client()
    arena.sign_in_admin(organizer)
    admin_page = organizer.get(f"/submissions/{submission}").text
    assert private_name in admin_page and "Organizer view" in admin_page
    real = organizer.get(f"{base}/any/0/real.png")
    assert real.status_code == 200
    assert real.content == (competition_root / "test" / "with_mask" / private_name).read_bytes()

    api = team.get(f"/api/submissions/{submission}", headers={"Authorization": f"Bearer {arena.alpha_token}"})
    body = api.json()
    assert body["score_public_se"] == 2.0 and body["score_public_interval"] == pytest.approx([96.08, 103.92], 1e-4)
    assert body["score_private_se"] is None and "se_private" not in body["class_scores"]["with_mask"]
    assert "nearest_any" not in body["class_scores"]["with_mask"] and body["class_scores"]["with_mask"]["nearest_train"]


def test_unpenalized_classes_show_no_evidence_to_the_team(arena):
    submission = score(arena, arena.alpha, 100.0, 120.0, penalized=False)
    team = arena.client()
    arena.sign_in(team, arena.alpha_token)
    page = team.get(f"/submissions/{submission}").text
    assert "Why this score" in page and "Memorization evidence" not in page


def test_boards_mark_statistical_ties_and_the_shake_up(arena):
    score(arena, arena.alpha, 100.0, 150.0, se=1.0)
    score(arena, arena.beta, 101.0, 120.0, se=1.0)  # 1 apart, difference se 1.41: a tie
    board = arena.client().get("/c/test-comp/leaderboard").text
    assert board.count('class="tie"') == 2 and "within noise of the entry above" in board  # marker + legend
    assert board.index("alpha") < board.index("&lt;script&gt;")  # the order is still by score
    csv = arena.client().get("/c/test-comp/leaderboard.csv").text.splitlines()
    assert csv[0].endswith("score_se,ci95_low,ci95_high,tied_above,interval")
    assert csv[2].endswith(",1,half-sampling over the images")

    organizer = arena.client()
    arena.sign_in_admin(organizer)
    csrf = csrf_of(organizer.get("/admin").text)
    assert organizer.post("/admin/c/test-comp/reveal", data={"csrf_token": csrf, "confirm": "1"}).status_code == 303
    private = arena.client().get("/c/test-comp/leaderboard?board=private").text
    assert "▲1" in private and "▼1" in private and "public #2" in private and "public #1" in private
    assert 'class="tie"' not in private.split("<tbody>")[1].split("</tbody>")[0]  # 30 apart on private
