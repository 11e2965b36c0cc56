"""Model submissions end to end: upload an ONNX generator, the worker samples it in a capped process and scores the
images like a zip; a model that fails while sampling fails at once, with the reason, and costs no quota."""

from __future__ import annotations

import math
import statistics

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from server.db import Submission, SubmissionStatus
from server.jobs.entries import images_zip
from server.jobs.worker import Worker
from server.storage import grid_path, model_path, sampled_zip_path, upload_path
from submissions import validate_zip
from tests.utils import onnx_models
from tests.utils.server_factories import ADMIN_TOKEN, bearer, csrf_of, submission_zip, upload_model, with_kinds

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_a_model_is_sampled_scored_and_its_samples_kept(make_app, scorer, scoring_competition, tmp_path):
    # 6 images per class: enough for half-samples of 3 to differ (the estimated se of set 1 is checked below)
    arena = make_app(competition=with_kinds(scoring_competition, "both", tmp_path, images_per_class=6),
                     model_sample_sets=3)
    _, token = arena.create_team("gen")
    accepted = upload_model(arena, token, onnx_models.generator(tmp_path / "g.onnx"))
    assert accepted.status_code == 202, accepted.text
    worker = Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="w")
    assert worker.run(exit_when_idle=True) == 1
    with arena.database.sessionmaker() as session:
        submission = session.scalars(select(Submission)).one()
        assert submission.status == SubmissionStatus.scored, submission.error
        assert math.isfinite(submission.score_public) and submission.score_public > 0
        sha = submission.sha256
        data_dir = arena.settings.data_dir
        assert model_path(data_dir, sha).is_file() and not upload_path(data_dir, sha).exists()
        assert grid_path(arena.settings.data_dir, submission.id, "with_mask").is_file()
        sets = submission.sample_sets
        assert sets["method"] == "fresh sample sets" and len(set(sets["seeds"])) == 3
        assert sets["public"][0] == submission.score_public and len(sets["private"]) == 3
        assert sets["public_std"] > 0  # three different image sets, three different scores
        # The standard errors are the spread over the sets, not the bootstrap of the first set's images.
        assert sets["interval"] == "sample sets"
        for split in ("public", "private", "all"):
            assert getattr(submission, f"score_{split}_se") == pytest.approx(statistics.stdev(sets[split]))
        assert all(c["se_public"] > 0 for c in submission.class_scores.values())
        # A calibration sample: what the half-sampling estimator said for set 1, kept beside the measured spread.
        estimated = sets["estimated_se"]
    first = scorer.score(arena.competition, validate_zip(sampled_zip_path(data_dir, sha), worker_spec(arena)).images)
    for split in ("public", "private"):
        assert estimated[split] == pytest.approx(getattr(first, f"se_{split}")) and estimated[split] > 0
        assert estimated[split] != getattr(submission, f"score_{split}_se")  # not the sets' spread
        for cls, values in first.classes.items():
            assert estimated["classes"][cls][split] == pytest.approx(getattr(values, f"se_{split}"))
    shown = arena.client.get(accepted.json()["status_url"], headers=bearer(token)).json()["sample_sets"]
    assert shown["public"] == sets["public"] and not any(k.startswith("private") for k in shown)  # before the reveal
    samples = sampled_zip_path(arena.settings.data_dir, sha)
    before = samples.stat().st_mtime_ns
    # Rescoring reads the kept samples: same images, no second sampling.
    with arena.database.sessionmaker() as session:
        job = worker.entry_job(session.scalars(select(Submission)).one())
    assert job.kind == "model" and job.path == model_path(data_dir, sha)
    assert images_zip(job, worker_spec(arena), arena.settings, device="cpu") == samples
    assert samples.stat().st_mtime_ns == before
    # The same competition still takes zips.
    assert arena.upload(token, submission_zip(arena.competition, seed=3)).status_code == 202


def worker_spec(arena):
    from submissions import SubmissionSpec

    return SubmissionSpec.from_competition(arena.competition, **arena.settings.zip_limits)


def test_a_model_that_fails_while_sampling_fails_at_once_without_quota(make_app, scorer, scoring_competition,
                                                                          tmp_path):
    arena = make_app(competition=with_kinds(scoring_competition, "model", tmp_path), model_sampling_seconds=0.01)
    _, token = arena.create_team("slow")
    assert upload_model(arena, token, onnx_models.generator(tmp_path / "g.onnx")).status_code == 202
    worker = Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="w")
    assert worker.run(exit_when_idle=True) == 1
    with arena.database.sessionmaker() as session:
        submission = session.scalars(select(Submission)).one()
        assert submission.status == SubmissionStatus.failed and submission.attempts == 1
        assert "model sampling failed (timeout)" in submission.error
        assert "does not use your quota" in submission.events[-1].reason
    assert arena.client.get("/api/teams/me", headers=bearer(token)).json()["quota"]["used"] == 0


def first_rule(response) -> str:
    return response.json()["error"]["detail"]["problems"][0]["rule"]


def test_each_competition_takes_only_its_kinds(make_app, scoring_competition, tmp_path):
    images_only = make_app(competition=scoring_competition)
    _, token = images_only.create_team("a")
    rejected = upload_model(images_only, token, onnx_models.generator(tmp_path / "g.onnx"))
    assert rejected.status_code == 422 and first_rule(rejected) == "kind_not_accepted"
    problem = rejected.json()["error"]["detail"]["problems"][0]
    assert problem["file"] == "g.onnx" and "this competition takes images only" in problem["fix"]  # not tmpXXXX.zip
    models_only = make_app(competition=with_kinds(scoring_competition, "model", tmp_path))
    _, token = models_only.create_team("b")
    rejected = models_only.upload(token, submission_zip(models_only.competition))
    assert rejected.status_code == 422 and first_rule(rejected) == "kind_not_accepted"
    custom = upload_model(models_only, token, onnx_models.custom_op(tmp_path / "c.onnx"))
    assert custom.status_code == 422 and first_rule(custom) == "operator_not_allowed"


def test_the_pages_say_what_the_competition_takes(make_app, scoring_competition, tmp_path):
    arena = make_app(competition=with_kinds(scoring_competition, "both", tmp_path))
    _, token = arena.create_team("web")
    overview = arena.client.get(f"/c/{arena.slug}").text
    assert "A zip of PNG images or an ONNX generator the server samples." in overview
    csrf = csrf_of(arena.client.get("/signin").text)
    arena.client.post("/signin", data={"token": token, "csrf_token": csrf})
    form = arena.client.get(f"/c/{arena.slug}/submit").text
    assert 'accept=".zip,application/zip,.onnx"' in form and "Submission zip or generator (.onnx)" in form


def test_a_model_interval_is_the_spread_of_its_sample_sets_everywhere(make_app, scorer, scoring_competition, tmp_path):
    """Page, API, board, CSV and tie rule all use the sample sets' standard deviation, and say so."""
    from submissions.results import Z_95

    arena = make_app(competition=with_kinds(scoring_competition, "both", tmp_path), model_sample_sets=3)
    _, token = arena.create_team("gen")
    submission_id = upload_model(arena, token, onnx_models.generator(tmp_path / "g.onnx")).json()["id"]
    _, image_token = arena.create_team("pngs")
    assert arena.upload(image_token, submission_zip(arena.competition, seed=3)).status_code == 202
    Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="w").run(exit_when_idle=True)

    api = arena.client.get(f"/api/submissions/{submission_id}", headers=bearer(token)).json()
    public = api["sample_sets"]["public"]
    half_width = Z_95 * statistics.stdev(public)
    assert api["score_public"] == public[0]  # the score is the first set's: the kept images
    assert api["score_public_interval"] == pytest.approx([public[0] - half_width, public[0] + half_width])
    assert (api["interval"], api["interval_sets"]) == ("over 3 sample sets", 3)

    arena.client.post("/signin", data={"token": token, "csrf_token": csrf_of(arena.client.get("/signin").text)})
    page = arena.client.get(f"/submissions/{submission_id}").text
    assert f"± {half_width:.1f}</span>" in page and "± over 3 sample sets" in page
    assert "over 3 fresh sample sets of your model, not a bootstrap" in page
    assert 'id="calibration"' not in page  # the estimator's check is the organizer's business
    organizer = TestClient(arena.client.app)
    csrf = csrf_of(organizer.get("/admin/signin").text)
    organizer.post("/admin/signin", data={"token": ADMIN_TOKEN, "csrf_token": csrf})
    estimated = api_estimated_se(arena, submission_id)
    calibration = organizer.get(f"/submissions/{submission_id}").text.split('id="calibration">')[1].split("</dd>")[0]
    assert f"public {estimated:.3f}" in calibration
    assert f"{estimated / statistics.stdev(public):.2f}× the sets' standard deviation" in calibration

    board = arena.client.get(f"/api/competitions/{arena.slug}/leaderboard").json()["entries"]
    by_team = {entry["team_name"]: entry for entry in board}
    assert by_team["gen"]["score_se"] == pytest.approx(statistics.stdev(public))  # what the tie rule reads
    assert (by_team["gen"]["interval_sets"], by_team["pngs"]["interval_sets"]) == (3, None)
    csv = arena.client.get(f"/api/competitions/{arena.slug}/leaderboard?format=csv").text.splitlines()
    rows = {line.split(",")[1]: line for line in csv[1:]}
    assert rows["gen"].endswith(",over 3 sample sets") and rows["pngs"].endswith(",half-sampling over the images")
    assert "fresh sample sets" in arena.client.get(f"/c/{arena.slug}/leaderboard").text



def test_the_submit_page_names_the_uploaded_model_and_says_the_competition_takes_images(
        make_app, scoring_competition, tmp_path):
    arena = make_app(competition=scoring_competition)  # images only
    _, token = arena.create_team("web")
    csrf = csrf_of(arena.client.get("/signin").text)
    arena.client.post("/signin", data={"token": token, "csrf_token": csrf})
    csrf = csrf_of(arena.client.get(f"/c/{arena.slug}/submit").text)
    model = onnx_models.generator(tmp_path / "g.onnx")
    page = arena.client.post(f"/c/{arena.slug}/submit", data={"csrf_token": csrf, "message": ""},
                             files={"file": ("g.onnx", model.read_bytes(), "application/octet-stream")})
    assert page.status_code == 422
    problems = page.text.split('id="problems"')[1].split("</div>")[0]
    assert '<span class="problem-file">g.onnx</span>: an ONNX model' in problems
    assert "this competition takes images only" in problems and "tmp" not in problems  # no temporary name


def test_a_model_shows_which_sample_set_it_is_on_and_one_scoring_time(make_app, scorer, scoring_competition,
                                                                       tmp_path, monkeypatch):
    """While the worker goes through the sets the status box (and the API) say "sample set k of 3"; once scored,
    Details and the history give the same scoring time (claim to result, every set included)."""
    import re

    from server.jobs import worker as worker_module

    arena = make_app(competition=with_kinds(scoring_competition, "both", tmp_path), model_sample_sets=3)
    _, token = arena.create_team("gen")
    submission_id = upload_model(arena, token, onnx_models.generator(tmp_path / "g.onnx")).json()["id"]
    csrf = csrf_of(arena.client.get("/signin").text)
    arena.client.post("/signin", data={"token": token, "csrf_token": csrf})
    seen: list[tuple[str | None, str]] = []
    record = worker_module.record_progress

    def record_and_look(**kwargs):  # the real write, then what a team polling right now would see
        held = record(**kwargs)
        api = arena.client.get(f"/api/submissions/{submission_id}", headers=bearer(token)).json()
        seen.append((api["progress"], arena.client.get(f"/submissions/{submission_id}/status").text))
        return held

    monkeypatch.setattr(worker_module, "record_progress", record_and_look)
    Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="w").run(exit_when_idle=True)
    expected = [f"sample set {k} of 3: {step}" for k in (1, 2, 3) for step in ("sampling the model", "scoring")]
    assert [progress for progress, _ in seen] == expected
    for progress, fragment in seen:
        assert 'data-status="scoring"' in fragment and f'<strong class="progress">{progress}</strong>' in fragment

    page = arena.client.get(f"/submissions/{submission_id}").text
    history = re.search(r"scored in ([\d.]+) s", page).group(1)
    details = re.search(r"<dt>Scoring time</dt><dd>([\d.]+) s", page).group(1)
    assert details == history and "sampling and scoring 3 sample sets" in page
    assert arena.client.get(f"/api/submissions/{submission_id}", headers=bearer(token)).json()["progress"] is None


def api_estimated_se(arena, submission_id: int) -> float:
    with arena.database.sessionmaker() as session:
        return session.get(Submission, submission_id).sample_sets["estimated_se"]["public"]
