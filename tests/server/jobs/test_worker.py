"""Workers with the real scorer (random FID weights on CPU): exactly-once scoring, grids, the whole API round trip."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from server.db import Submission, SubmissionStatus
from server.jobs.worker import Worker
from server.scoring import SCORER_VERSION
from server.storage import grid_path
from tests.utils.server_factories import ADMIN_TOKEN, bearer, submission_zip


# 20 real scorings cost about a minute of CPU per database: SQLite here (two workers fighting for its one write
# lock); the claim race itself runs on both databases in test_queue.py, the SIGKILL recovery in test_worker_process.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_two_workers_score_twenty_submissions_exactly_once(make_app, scorer, scoring_competition):
    arena = make_app(competition=scoring_competition)
    _, token = arena.create_team("a")
    for seed in range(20):
        assert arena.upload(token, submission_zip(arena.competition, seed=seed)).status_code == 202
    workers = [Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id=f"w{i}")
               for i in (1, 2)]
    threads = [threading.Thread(target=w.run, kwargs={"exit_when_idle": True}) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    with arena.database.sessionmaker() as session:
        submissions = session.scalars(select(Submission)).all()
        assert len(submissions) == 20
        for submission in submissions:
            assert submission.status == SubmissionStatus.scored and submission.attempts == 1
            assert [e.to_status for e in submission.events] == ["queued", "scoring", "scored"]
            assert math.isfinite(submission.score_public) and submission.score_public > 0
        assert {s.worker_id for s in submissions} == {"w1", "w2"}  # both took part, none twice


def test_api_round_trip_through_the_real_scoring_pipeline(make_app, scorer, scoring_competition):
    arena = make_app(competition=scoring_competition)
    team = arena.client.post(f"/api/competitions/{arena.slug}/teams", json={"name": "gan", "members": ["A"]}).json()
    upload = arena.upload(team["token"], submission_zip(arena.competition, seed=7)).json()
    worker = Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="w")
    assert worker.run(exit_when_idle=True) == 1

    detail = arena.client.get(upload["status_url"], headers=bearer(team["token"])).json()
    assert detail["status"] == "scored", detail
    assert [(e["from_status"], e["to_status"]) for e in detail["events"]] == [
        (None, "queued"), ("queued", "scoring"), ("scoring", "scored")]
    assert set(detail["class_scores"]) == {"with_mask", "without_mask"}
    assert detail["score_public"] == sum(c["fid_public"] for c in detail["class_scores"].values())
    assert detail["score_private"] is None  # hidden until the reveal
    assert detail["scorer_version"] and detail["device"] == "cpu" and detail["timings"]["total"] > 0

    grid = arena.client.get(detail["grids"]["with_mask"], headers=bearer(team["token"]))
    assert grid.status_code == 200 and grid.headers["content-type"] == "image/png"
    with Image.open(grid_path(arena.settings.data_dir, upload["id"], "with_mask")) as image:
        assert image.size == (2 * 64, 64)  # the grid holds only the cells of the 2 images (8 per row at most)
        cells = np.asarray(image)
        assert cells[:, :64].std() > 0 and cells[:, 64:].std() > 0

    board = arena.client.get(f"/api/competitions/{arena.slug}/leaderboard").json()
    assert [(e["rank"], e["team_name"], e["submission_id"]) for e in board["entries"]] == [(1, "gan", upload["id"])]
    assert board["entries"][0]["score"] == detail["score_public"]
    organizer = arena.client.get(upload["status_url"], headers=bearer(ADMIN_TOKEN)).json()
    assert organizer["score_private"] == sum(c["fid_private"] for c in organizer["class_scores"].values())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_constant_images_get_a_clear_finite_score_through_the_whole_pipeline(make_app, scorer, scoring_competition):
    """Issue 11, bad input: a class of one repeated constant image (fewer than 2 distinct images) is scored with
    finite numbers everywhere (no NaN in the JSON, no 500), its interval and diagnosis included."""
    import io

    from submissions import pack

    arena = make_app(competition=scoring_competition)
    team = arena.client.post(f"/api/competitions/{arena.slug}/teams", json={"name": "flat", "members": ["A"]}).json()
    count = arena.competition.config.images_per_class
    images = {"with_mask": np.full((count, 64, 64), 128, np.uint8),
              "without_mask": np.zeros((count, 64, 64), np.uint8)}
    buffer = io.BytesIO()
    pack(images, buffer, arena.competition.classes)
    upload = arena.upload(team["token"], buffer.getvalue())
    assert upload.status_code == 202, upload.text
    worker = Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="w")
    assert worker.run(exit_when_idle=True) == 1

    response = arena.client.get(upload.json()["status_url"], headers=bearer(team["token"]))
    assert response.status_code == 200 and "NaN" not in response.text and "Infinity" not in response.text
    detail = response.json()
    assert detail["status"] == "scored", detail
    numbers = [detail["score_public"], detail["score_public_se"], *detail["score_public_interval"]]
    for values in detail["class_scores"].values():
        numbers += [values["fid_public"], values["se_public"], *values["diagnostics"].values()]
        assert values["diagnostics"]["distinct_images"] == 1 and "identical" in values["diagnosis"]
    assert all(math.isfinite(v) for v in numbers)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_exit_when_idle_waits_for_jobs_in_a_retry_delay(make_app, scorer):
    """A job whose first attempt failed waits out its backoff; `--exit-when-idle` must not leave it behind."""
    from server.db.crud import get_competition, load_competition
    from server.uploads.rules import create_submission

    arena = make_app(retry_backoff_seconds=0.5, max_attempts=2)
    team_id, _ = arena.create_team("a")
    with arena.database.sessionmaker() as session:
        from server.db import Team

        competition = load_competition(get_competition(session=session, slug=arena.slug))
        # No zip is stored under this hash, so each attempt fails with a scoring error (the file is missing).
        submission, _ = create_submission(session=session, competition=competition, team=session.get(Team, team_id),
                                          sha256="f" * 64, size_bytes=1)
    worker = Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="w")
    assert worker.run(exit_when_idle=True) == 2
    with arena.database.sessionmaker() as session:
        done = session.get(Submission, submission.id)
        assert (done.status, done.attempts) == (SubmissionStatus.failed, 2)


def test_a_rescore_fills_in_intervals_diagnostics_and_evidence_for_an_older_entry(
    make_app, scorer, scoring_competition
):
    from server.jobs.queue import rescore_competition
    from server.storage import evidence_path

    arena = make_app(competition=scoring_competition)
    _, token = arena.create_team("a")
    upload = arena.upload(token, submission_zip(arena.competition, seed=3)).json()
    worker = Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="w")
    assert worker.run(exit_when_idle=True) == 1
    with arena.database.sessionmaker() as session:  # what scorer 1.0 left behind
        submission = session.get(Submission, upload["id"])
        submission.score_public_se = submission.score_private_se = submission.score_all_se = None
        old_fields = ("fid", "raw", "memorization", "penalized")
        submission.class_scores = {cls: {k: v for k, v in values.items() if k.startswith(old_fields)}
                                   for cls, values in submission.class_scores.items()}
        submission.scorer_version = "1.0.0"
        session.commit()
        rescore_competition(session=session, competition_id=submission.competition_id, reason="scorer 1.1")
    assert worker.run(exit_when_idle=True) == 1
    with arena.database.sessionmaker() as session:
        submission = session.get(Submission, upload["id"])
        assert submission.status == SubmissionStatus.scored and submission.scorer_version == SCORER_VERSION
        assert all(math.isfinite(v) for v in (submission.score_public_se, submission.score_private_se))
        for cls, values in submission.class_scores.items():
            assert values["diagnostics"]["n_images"] == 2 and values["diagnosis"]
            assert values["se_public"] is not None and values["nearest_train"]
            assert "se_all" not in values  # the unranked split is not bootstrapped
            for neighbour in values["nearest_train"] + values["nearest_any"]:
                assert evidence_path(arena.settings.data_dir, submission.id, cls, neighbour["image"]).is_file()
