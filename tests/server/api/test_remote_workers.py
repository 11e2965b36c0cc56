"""Remote scoring workers over the worker API (server/api/routes/workers.py, server/jobs/remote.py), in process: the
real app, the real Scorer (random weights), the real client (`RemoteWorker`, server/jobs/remote_worker.py) talking
to the app through its ASGI transport. Tokens, the jobs' leases (server/jobs/leases.py) and their refusals, model
submissions sampled remotely with the seeds the server sends, and a server that trusts nothing it is sent."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from server.db import Submission
from server.db.crud import get_submission
from server.jobs.remote_worker import ArenaServer, RemoteWorker
from server.jobs.sampling_seeds import submission_seed
from server.jobs.worker import Worker
from server.jobs.worker_tokens import create_worker_token, revoke_worker_token
from server.storage import grid_path
from tests.utils import onnx_models
from tests.utils.server_factories import ADMIN_TOKEN, bearer, csrf_of, submission_zip, upload_model, with_kinds


@pytest.fixture
def remote_arena(make_app, scoring_competition):
    return make_app(competition=scoring_competition)


@pytest.fixture(scope="module")
def worker_cache(tmp_path_factory) -> Path:
    """One cache for the module's workers: the ~400 MB reference file is downloaded once, then found by its hash."""
    return tmp_path_factory.mktemp("worker-cache")


_results: dict[str, tuple[dict, dict[str, bytes]]] = {}  # a valid result per zip: the refusal tests break a copy


def worker_token(arena, name: str = "lab-gpu") -> str:
    with arena.database.sessionmaker() as session:
        return create_worker_token(session=session, name=name)[1]


def remote_worker(arena, scorer, token: str, cache_dir: Path) -> RemoteWorker:
    """The real client, its HTTP going to the app in process instead of over a socket."""
    server = ArenaServer("http://testserver", token, retry_seconds=1)
    server.client = TestClient(arena.client.app, base_url="http://testserver/api/worker", headers=bearer(token))
    worker = RemoteWorker(server=server, settings=arena.settings, cache_dir=cache_dir, scorer=scorer)
    worker.register()
    return worker


def upload(arena, seed: int, team: str = "team-a") -> int:
    _, token = arena.create_team(f"{team}-{seed}")
    response = arena.upload(token, submission_zip(arena.competition, seed=seed))
    assert response.status_code == 202, response.text
    return response.json()["id"]


def submission(arena, submission_id: int) -> Submission:
    with arena.database.sessionmaker() as session:
        return get_submission(session=session, submission_id=submission_id)


def test_a_remote_worker_scores_as_a_local_one(remote_arena, scorer, tmp_path):
    """Claim, download (references verified and cached by fingerprint), score, post: the board gets the score the
    local Scorer gives the same zip, to 1e-6, with grids and evidence images where a local worker writes them."""
    arena = remote_arena
    worker = remote_worker(arena, scorer, worker_token(arena), tmp_path / "cache")
    first, second = upload(arena, 3), upload(arena, 4)
    assert worker.run(max_jobs=2) == 2
    for submission_id, seed in ((first, 3), (second, 4)):
        row = submission(arena, submission_id)
        assert row.status == "scored", [e.reason for e in row.events]
        local = scorer.score(arena.competition, decoded(arena, seed))
        assert row.score_public == pytest.approx(local.score_public, abs=1e-6, rel=0)
        assert row.score_private == pytest.approx(local.score_private, abs=1e-6, rel=0)
        assert row.worker_id == worker.worker_id and row.device == "cpu"
        for cls in arena.competition.classes:
            assert Image.open(grid_path(arena.settings.data_dir, submission_id, cls)).mode == "L"
    assert len(list((tmp_path / "cache" / "references").glob("*.npz"))) == 1  # fetched once for both jobs
    for submission_id in (first, second):  # one claim, under one lease, nothing refused
        reasons = [e.reason for e in submission(arena, submission_id).events]
        assert sum("claimed by worker" in r and ", lease " in r for r in reasons) == 1
        assert not any("refused" in r for r in reasons), reasons


def decoded(arena, seed: int):
    from submissions import SubmissionSpec, validate_zip

    spec = SubmissionSpec.from_competition(arena.competition.config)
    return validate_zip(io.BytesIO(submission_zip(arena.competition, seed=seed)), spec).images


@pytest.mark.parametrize("who", ["none", "forged", "team", "admin", "revoked"])
def test_only_a_valid_worker_token_claims(remote_arena, who):
    """401 without a token or with a forged one, 403 for a team's, the organizer's or a revoked token; nothing is
    claimed either way."""
    arena = remote_arena
    submission_id = upload(arena, 5)
    token = {"none": None, "forged": "arenaw_" + "x" * 43, "team": arena.create_team("other")[1],
             "admin": ADMIN_TOKEN, "revoked": worker_token(arena, "gone")}[who]
    if who == "revoked":
        with arena.database.sessionmaker() as session:
            revoke_worker_token(session=session, name="gone")
    body = {"worker_id": "x", "engine": "torch", "weights_sha256": "0" * 64, "scorer_version": "1.3.0"}
    response = arena.client.post("/api/worker/claim", json=body, headers=bearer(token) if token else {})
    assert response.status_code == (401 if who in ("none", "forged") else 403), response.text
    assert submission(arena, submission_id).status == "queued"


def claimed(arena, scorer, cache: Path, name: str = "lab-gpu") -> tuple[RemoteWorker, dict]:
    worker = remote_worker(arena, scorer, worker_token(arena, name), cache)
    job = worker.claim()
    assert job is not None
    return worker, job


def post(worker: RemoteWorker, job: dict, files: list, fingerprint: str | None = None):
    return worker.server.client.post(f"/jobs/{job['submission_id']}/{job['lease_id']}/result", files=files,
                                     data={"reference_fingerprint": fingerprint or job["reference_fingerprint"]})


def scored_files(worker: RemoteWorker, job: dict) -> tuple[dict, dict[str, bytes]]:
    """A valid result of the job, as the client scores it (once per zip in this module), as a copy to break."""
    if job["input_sha256"] not in _results:
        report, *images = worker.score(job, {})
        _results[job["input_sha256"]] = (json.loads(report[1][1]), {name: data for _, (name, data, _) in images})
    fields, images = _results[job["input_sha256"]]
    return json.loads(json.dumps(fields)), dict(images)


def as_files(fields: dict, images: dict[str, bytes]) -> list:
    return [("report", ("report.json", json.dumps(fields).encode(), "application/json")),
            *[("images", (name, data, "image/png")) for name, data in images.items()]]


def test_a_result_on_a_lost_lease_is_refused_and_recorded(remote_arena, scorer, tmp_path, worker_cache):
    """A worker silent past the timeout loses its job to the next claim: its late result is a 409 written into the
    job's history, and the later holder's result is the one kept."""
    arena = remote_arena
    submission_id = upload(arena, 6)
    slow, job = claimed(arena, scorer, worker_cache, "slow")
    fields, images = scored_files(slow, job)
    arena.clock.advance(seconds=arena.settings.worker_timeout_seconds + 1)
    fast = remote_worker(arena, scorer, worker_token(arena, "fast"), worker_cache)
    assert fast.run(max_jobs=1) == 1  # its claim requeued the silent worker's job first
    late = post(slow, job, as_files(fields, images))
    assert late.status_code == 409, late.text
    row = submission(arena, submission_id)
    assert row.status == "scored" and row.worker_id == fast.worker_id
    refused = [e for e in row.events if e.reason.startswith(f"result from worker {slow.worker_id} refused")]
    assert len(refused) == 1 and refused[0].from_status == refused[0].to_status == "scored"
    assert sum(e.to_status == "scored" and e.from_status == "scoring" for e in row.events) == 1


def nan(fields: dict) -> None:
    fields["score_public"] = float("nan")


def wrong_classes(fields: dict) -> None:
    fields["class_scores"]["extra"] = fields["class_scores"]["with_mask"]


def wrong_count(fields: dict) -> None:
    fields["class_scores"]["with_mask"]["n_images"] += 1


def wrong_total(fields: dict) -> None:
    fields["score_public"] += 1.0


def other_scorer(fields: dict) -> None:
    fields["scorer_version"] = "0.9"


def truncated_grid(images: dict) -> None:
    images["grids/with_mask.png"] = images["grids/with_mask.png"][:100]


def huge_grid(images: dict) -> None:
    buffer = io.BytesIO()
    Image.new("L", (1024, 1024)).save(buffer, format="PNG")
    images["grids/with_mask.png"] = buffer.getvalue()


def missing_grid(images: dict) -> None:
    del images["grids/without_mask.png"]


@pytest.mark.parametrize(("break_fields", "break_images", "named"), [
    (nan, None, "not a finite number"), (wrong_classes, None, "classes"), (wrong_count, None, "n_images"),
    (wrong_total, None, "add up to"), (other_scorer, None, "scorer_version"),
    (None, truncated_grid, "grids/with_mask.png"), (None, huge_grid, "1024x1024"),
    (None, missing_grid, "one grid per class"),
])
def test_a_bad_result_is_refused_with_its_reason_and_requeued(remote_arena, scorer, tmp_path, worker_cache,
                                                              break_fields, break_images, named):
    arena = remote_arena
    submission_id = upload(arena, 7)
    worker, job = claimed(arena, scorer, worker_cache)
    fields, images = scored_files(worker, job)
    (break_fields or (lambda _: None))(fields)
    (break_images or (lambda _: None))(images)
    report = json.dumps(fields).encode()  # json writes NaN as the bare constant, which the server refuses
    response = post(worker, job, [("report", ("report.json", report, "application/json")),
                                  *[("images", (name, data, "image/png")) for name, data in images.items()]])
    assert response.status_code == 422, response.text
    assert named in response.json()["error"]["message"]
    row = submission(arena, submission_id)
    assert row.status == "queued" and row.score_public is None
    assert named in row.events[-1].reason and "invalid result" in row.events[-1].reason
    assert not grid_path(arena.settings.data_dir, submission_id, "with_mask").exists()  # nothing half-written


def test_a_result_with_another_reference_fingerprint_is_refused(remote_arena, scorer, tmp_path, worker_cache):
    arena = remote_arena
    upload(arena, 8)
    worker, job = claimed(arena, scorer, worker_cache)
    fields, images = scored_files(worker, job)
    response = post(worker, job, as_files(fields, images), fingerprint="f" * 64)
    assert response.status_code == 422 and "reference_fingerprint" in response.text


def test_revoking_a_token_ends_its_leases_at_once(remote_arena, scorer, tmp_path, worker_cache):
    arena = remote_arena
    submission_id = upload(arena, 9)
    worker, job = claimed(arena, scorer, worker_cache)
    with arena.database.sessionmaker() as session:
        assert revoke_worker_token(session=session, name="lab-gpu") == [submission_id]
    row = submission(arena, submission_id)
    assert row.status == "queued" and "revoked" in row.events[-1].reason
    beat = worker.server.client.post("/heartbeat", json={"worker_id": worker.worker_id, "lease_id": job["lease_id"]})
    assert beat.status_code == 403


def test_an_oversize_report_is_413(remote_arena, scorer, tmp_path, worker_cache):
    arena = remote_arena
    upload(arena, 10)
    worker, job = claimed(arena, scorer, worker_cache)
    response = post(worker, job, [("report", ("report.json", b" " * (5 * 1024 * 1024), "application/json"))])
    assert response.status_code == 413, response.text


def test_the_workers_tab_shows_each_worker_and_manages_tokens(remote_arena, scorer, worker_cache):
    """Name, address, device and engine, current job, heartbeat, jobs done, mean scoring time, the queue's wait;
    a token created there is shown once, and revoking it there ends its worker's job."""
    arena = remote_arena
    worker = remote_worker(arena, scorer, worker_token(arena), worker_cache)
    upload(arena, 11)
    assert worker.run(max_jobs=1) == 1
    upload(arena, 12)
    client = TestClient(arena.client.app, follow_redirects=False)
    csrf = csrf_of(client.get("/admin/signin").text)
    assert client.post("/admin/signin", data={"token": ADMIN_TOKEN, "csrf_token": csrf}).status_code == 303
    page = client.get("/admin/workers").text
    row = re.search(rf"<tr>\s*<td class=\"mono\">{worker.worker_id}.*?</tr>", page, re.S).group(0)
    assert "testclient" in row and f"cpu / {scorer.extractor.engine}" in row and "alive" in row
    assert re.search(r'<td class="num">1</td>\s*<td class="num">\d+\.\d s</td>', row), row
    assert "Queue: 1 waiting, the oldest for 0 s" in page
    created = client.post("/admin/workers", data={"name": "cluster-7", "csrf_token": csrf_of(page)}).text
    assert re.search(r"ARENA_WORKER_TOKEN=arenaw_\S+ arena worker --server", created)
    job = worker.claim()
    revoked = client.post("/admin/workers/lab-gpu/revoke", data={"csrf_token": csrf_of(created)})
    assert revoked.status_code == 303
    assert submission(arena, job["submission_id"]).status == "queued"
    assert "revoked" in client.get("/admin/workers").text


def test_a_worker_token_opens_nothing_but_the_worker_routes(remote_arena):
    """No team page, no private board, no organizer route: elsewhere a worker token is an unknown token."""
    arena = remote_arena
    headers = bearer(worker_token(arena))
    for path in ("/api/teams/me", "/api/admin/workers", f"/api/competitions/{arena.slug}/submissions"):
        assert arena.client.get(path, headers=headers).status_code == 401, path
    private = arena.client.get(f"/api/competitions/{arena.slug}/leaderboard", params={"board": "private"},
                               headers=headers)
    assert private.status_code in (401, 403), private.text


def test_a_remote_worker_samples_a_model_with_the_seeds_the_server_sends(make_app, scorer, scoring_competition,
                                                                          tmp_path):
    """A model submission scored remotely: the claim carries its seed (computed under the server's secret salt,
    which it never carries) and the server's sampling settings; the remote worker samples and scores it as a local
    worker does, and the stored score is what the local sampler and Scorer give for those seeds."""
    from server.jobs.model_entries import sample_images
    from server.jobs.sampling_seeds import sampling_salt
    from server.storage import model_path
    from submissions import SubmissionSpec

    arena = make_app(competition=with_kinds(scoring_competition, "model", tmp_path), model_sample_sets=2)
    _, team_token = arena.create_team("gen")
    assert upload_model(arena, team_token, onnx_models.generator(tmp_path / "g.onnx")).status_code == 202
    worker = remote_worker(arena, scorer, worker_token(arena), tmp_path / "cache")
    worker.settings = worker.settings.model_copy(update={"model_sample_sets": 5})  # the server's setting wins
    job = worker.claim()
    assert job is not None and job["submission_kind"] == "model"
    with arena.database.sessionmaker() as session:
        sha = session.get_one(Submission, job["submission_id"]).sha256
    seed = submission_seed(arena.settings, sha)
    assert job["seed"] == seed and job["settings"]["model_sample_sets"] == 2
    salt = sampling_salt(arena.settings.data_dir, arena.settings.model_sampling_salt).decode()
    assert salt not in json.dumps(job)
    assert worker.run_job(job) == 1
    row = submission(arena, job["submission_id"])
    assert row.status == "scored", [e.reason for e in row.events]
    assert row.sample_sets["seeds"] == [seed, seed + 1] and row.sample_sets["interval"] == "sample sets"
    spec = SubmissionSpec.from_competition(arena.competition.config, **arena.settings.zip_limits)
    images = sample_images(model_path(arena.settings.data_dir, sha), spec, arena.settings, device="cpu", seed=seed)
    local = scorer.score(arena.competition, images)
    assert row.score_public == pytest.approx(local.score_public, abs=1e-6, rel=0)
    assert all(grid_path(arena.settings.data_dir, row.id, cls).is_file() for cls in arena.competition.classes)


def test_a_model_result_with_other_seeds_is_refused(make_app, scorer, scoring_competition, tmp_path):
    """The server checks a model's result against the seeds it sent: a worker that sampled with others (or fewer
    sets) is refused, and the job goes back to the queue."""
    arena = make_app(competition=with_kinds(scoring_competition, "model", tmp_path), model_sample_sets=2)
    _, team_token = arena.create_team("gen")
    assert upload_model(arena, team_token, onnx_models.generator(tmp_path / "g.onnx")).status_code == 202
    worker = remote_worker(arena, scorer, worker_token(arena), tmp_path / "cache")
    job = worker.claim()
    assert job is not None
    report, *images = worker.score({**job, "seed": job["seed"] + 7}, {})
    response = post(worker, job, [report, *images])
    assert response.status_code == 422 and "sample_sets.seeds" in response.json()["error"]["message"]
    assert submission(arena, job["submission_id"]).status == "queued"


def test_a_model_that_fails_remotely_fails_at_once(make_app, scorer, scoring_competition, tmp_path):
    """A model the remote worker cannot sample (here: over the server's time cap, which the claim carries) fails
    at once with the reason, as on a local worker, without retries."""
    arena = make_app(competition=with_kinds(scoring_competition, "model", tmp_path), model_sampling_seconds=0.01)
    _, team_token = arena.create_team("gen")
    assert upload_model(arena, team_token, onnx_models.generator(tmp_path / "g.onnx")).status_code == 202
    worker = remote_worker(arena, scorer, worker_token(arena), tmp_path / "cache")
    job = worker.claim()
    assert job is not None and worker.run_job(job) == 0
    row = submission(arena, job["submission_id"])
    assert row.status == "failed" and "model" in (row.error or "").lower(), row.error
    assert row.attempts == 1


def test_a_local_worker_and_a_remote_one_give_a_model_the_same_seeds(make_app, scorer, scoring_competition,
                                                                     tmp_path):
    """The seed a local worker samples with (Worker.entry_job) is the one a remote claim is sent."""
    arena = make_app(competition=with_kinds(scoring_competition, "model", tmp_path))
    _, team_token = arena.create_team("gen")
    assert upload_model(arena, team_token, onnx_models.generator(tmp_path / "g.onnx")).status_code == 202
    job = remote_worker(arena, scorer, worker_token(arena), tmp_path / "cache").claim()
    assert job is not None
    local = Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="local")
    with arena.database.sessionmaker() as session:
        assert local.entry_job(session.get_one(Submission, job["submission_id"])).seed == job["seed"]
