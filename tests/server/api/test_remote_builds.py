"""Reference builds by remote workers (server/jobs/remote_builds.py, the /api/worker/builds routes), in process: the
real app, the real Scorer (random weights), the real client (`RemoteWorker`) talking to the app through its ASGI
transport. A competition with no reference statistics gets them from a remote worker and is then scored to the
scores locally built references give; an upload that does not fit its build is refused and leaves nothing."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.competition_dir import Competition, expected_reference_metadata, reference_cache_file
from server.db import ReferenceBuild
from server.jobs.remote_results import reference_file
from server.jobs.worker_tokens import revoke_worker_token
from tests.server.api.test_remote_workers import decoded, remote_worker, submission, upload, worker_token
from tests.utils.server_factories import sign_in_admin


@pytest.fixture
def unbuilt(scoring_competition, tmp_path) -> Competition:
    """The scoring competition's directory without its references: the same images, so the same statistics as the
    ones built locally once for the test session."""
    root = tmp_path / "unbuilt" / scoring_competition.slug
    shutil.copytree(scoring_competition.root, root, ignore=shutil.ignore_patterns("references"))
    return Competition.load(root)


def builds(arena) -> list[ReferenceBuild]:
    with arena.database.sessionmaker() as session:
        rows = list(session.query(ReferenceBuild).order_by(ReferenceBuild.id))
        for row in rows:
            _ = row.events
        return rows


def leftovers(competition: Competition) -> list[str]:
    """Anything in the references directory besides complete files: a temporary upload left behind."""
    return sorted(p.name for p in competition.references_dir.glob(".*"))


def test_a_competition_without_references_is_built_remotely_then_scored(make_app, unbuilt, scoring_competition,
                                                                        scorer, tmp_path):
    """No local worker anywhere: the remote worker's first claim finds submissions waiting for references, queues
    the build and gets it; it fetches the images, builds, uploads; then it scores the uploads to the scores of the
    locally built references, to 1e-6."""
    arena = make_app(competition=unbuilt)
    first, second = upload(arena, 3), upload(arena, 4)
    worker = remote_worker(arena, scorer, worker_token(arena), tmp_path / "cache")
    assert worker.run(max_jobs=3) == 3  # the build, then both submissions
    [build] = builds(arena)
    assert build.status == "done", build.outcome
    engine = scorer.extractor.engine
    assert build.outcome.startswith(f"built by remote worker {worker.worker_id} ({engine})")
    assert build.reason.startswith(f"remote worker {worker.worker_id}: ") and "no reference statistics" in build.reason
    assert build.images_done == build.images_total == len(unbuilt.manifest.files)
    assert build.weights_sha256 == scorer.extractor.weights_sha256
    references = reference_file(unbuilt, engine)
    assert references is not None and references.path == unbuilt.references_dir / reference_cache_file(engine)
    assert references.metadata == expected(unbuilt, scorer)
    assert json.loads((unbuilt.references_dir / "fid-references.json").read_text())["auto_eps"].keys() == {
        "with_mask", "without_mask"}
    assert leftovers(unbuilt) == []
    for submission_id, seed in ((first, 3), (second, 4)):
        row = submission(arena, submission_id)
        assert row.status == "scored", [e.reason for e in row.events]
        local = scorer.score(scoring_competition, decoded(arena, seed))
        assert row.score_public == pytest.approx(local.score_public, abs=1e-6, rel=0)
        assert row.score_private == pytest.approx(local.score_private, abs=1e-6, rel=0)
    waited = [e.reason for e in submission(arena, first).events if e.reason.startswith("waiting for a reference build")]
    assert len(waited) == 1 and "no reference statistics" in waited[0]  # the claim that queued the build
    cached = list((tmp_path / "cache" / "images").glob("*/*"))
    assert len(cached) == len(unbuilt.manifest.files)
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == p.name for p in cached)


def test_a_queued_build_whose_references_are_current_is_finished_at_once(make_app, scoring_competition, scorer,
                                                                         tmp_path):
    """The organizer's button queues a build; a remote worker whose engine and weights find the statistics current
    finishes it without downloading anything, as a local worker would."""
    from server.db.crud import get_competition
    from server.jobs.reference_builds import request_build

    arena = make_app(competition=scoring_competition)
    with arena.database.sessionmaker() as session:
        request_build(session=session, competition=get_competition(session=session, slug=arena.slug),
                      reason="organizer")
    worker = remote_worker(arena, scorer, worker_token(arena), tmp_path / "cache")
    assert worker.claim() is None
    [build] = builds(arena)
    assert build.status == "done" and build.outcome.startswith("already current"), build.outcome
    assert not (tmp_path / "cache" / "images").exists()


# -- uploads that do not fit ---------------------------------------------------------------------------------------


def claimed_build(arena, scorer, tmp_path) -> tuple:
    """A worker holding the build of the competition's references (one waiting upload asks for it)."""
    upload(arena, 5)
    worker = remote_worker(arena, scorer, worker_token(arena), tmp_path / "cache")
    job = worker.claim()
    assert job is not None and job["job"] == "reference_build", job
    return worker, job


def small_file(metadata: dict, *, first_mu: np.ndarray | None = None) -> bytes:
    """A reference file with every array name but tiny arrays: the first array checked is the first class's
    public mu (given here), so a refusal names it or what comes before it (the metadata)."""
    from server.jobs.remote_builds import expected_arrays

    arrays = {name: np.zeros(1) for name in expected_arrays(metadata)}
    classes = list(metadata["counts"])
    arrays[f"{classes[0]}/public/mu"] = first_mu if first_mu is not None else np.zeros(metadata["dims"])
    buffer = io.BytesIO()
    np.savez(buffer, metadata=np.array(json.dumps(metadata)), **arrays)
    return buffer.getvalue()


def post_references(worker, job: dict, data: bytes, sha256: str | None = None):
    return worker.server.client.post(job["references_url"], content=data, headers={
        "X-Content-Sha256": sha256 or hashlib.sha256(data).hexdigest(), "Content-Type": "application/octet-stream"})


def expected(unbuilt: Competition, scorer) -> dict:
    return expected_reference_metadata(unbuilt, scorer.extractor.weights_sha256, scorer.extractor.engine)


def with_nan(unbuilt, scorer) -> tuple[bytes, None]:
    mu = np.zeros(2048)
    mu[7] = np.nan
    return small_file(expected(unbuilt, scorer), first_mu=mu), None


def other_images(unbuilt, scorer) -> tuple[bytes, None]:
    return small_file({**expected(unbuilt, scorer), "dataset_hash": "0" * 64}), None


def other_weights(unbuilt, scorer) -> tuple[bytes, None]:
    return small_file({**expected(unbuilt, scorer), "weights_sha256": "f" * 64}), None


def wrong_shape(unbuilt, scorer) -> tuple[bytes, None]:
    return small_file(expected(unbuilt, scorer), first_mu=np.zeros(2047)), None


def cut_off(unbuilt, scorer) -> tuple[bytes, str]:
    whole = small_file(expected(unbuilt, scorer))
    return whole[: len(whole) // 2], hashlib.sha256(whole).hexdigest()


def truncated(unbuilt, scorer) -> tuple[bytes, None]:
    whole = small_file(expected(unbuilt, scorer))
    return whole[: len(whole) // 2], None  # its own hash: the transfer was whole, the file is not


def not_numpy(unbuilt, scorer) -> tuple[bytes, None]:
    return b"PK\x03\x04 pretending", None


@pytest.mark.parametrize(("forge", "named"), [
    (with_nan, "with_mask/public/mu: holds values that are not finite"),
    (other_images, "metadata: dataset_hash differ"), (other_weights, "metadata: weights_sha256 differ"),
    (wrong_shape, "with_mask/public/mu: shape (2047,)"), (cut_off, "cut off or corrupted on the way"),
    (truncated, "not a readable reference file"), (not_numpy, "not a readable reference file"),
])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_reference_file_that_does_not_fit_is_refused_and_fails_the_build(make_app, unbuilt, scorer, tmp_path, forge,
                                                                          named):
    """422 naming what does not fit; the build fails with that reason (the console shows it), nothing is written
    where the references go, and the submissions wait for the organizer instead of a loop of builds."""
    arena = make_app(competition=unbuilt)
    worker, job = claimed_build(arena, scorer, tmp_path)
    data, announced = forge(unbuilt, scorer)
    response = post_references(worker, job, data, announced)
    assert response.status_code == 422, response.text
    assert named in response.json()["error"]["message"]
    [build] = builds(arena)
    assert build.status == "failed" and named in build.outcome
    assert reference_file(unbuilt, scorer.extractor.engine) is None and leftovers(unbuilt) == []
    assert worker.claim() is None  # the failed build is not queued again by a claim
    assert len(builds(arena)) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_oversized_reference_file_is_413_naming_the_setting(make_app, unbuilt, scorer, tmp_path):
    arena = make_app(competition=unbuilt, max_reference_upload_bytes=10_000)
    worker, job = claimed_build(arena, scorer, tmp_path)
    data = small_file(expected(unbuilt, scorer))
    assert len(data) > 10_000
    response = post_references(worker, job, data)
    assert response.status_code == 413, response.text
    assert "max_reference_upload_bytes (10,000 bytes)" in response.json()["error"]["message"]
    [build] = builds(arena)
    assert build.status == "failed" and "max_reference_upload_bytes" in build.outcome
    assert reference_file(unbuilt, scorer.extractor.engine) is None and leftovers(unbuilt) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_calls_on_a_lost_build_lease_are_409_and_recorded(make_app, unbuilt, scorer, tmp_path):
    """The build went back to the queue (its worker silent past the timeout) and another worker holds it: the first
    worker's upload, progress and image downloads are 409, its upload is recorded in the build's events, and
    nothing it sent is written."""
    arena = make_app(competition=unbuilt)
    slow, job = claimed_build(arena, scorer, tmp_path)
    arena.clock.advance(seconds=arena.settings.worker_timeout_seconds + 1)
    fast = remote_worker(arena, scorer, worker_token(arena, "fast"), tmp_path / "fast-cache")
    again = fast.claim()
    assert again is not None and again["build_id"] == job["build_id"] and again["lease_id"] != job["lease_id"]
    late = post_references(slow, job, small_file(expected(unbuilt, scorer)))
    assert late.status_code == 409, late.text
    progress = slow.server.client.post(job["progress_url"], json={"classes": {}, "stage": "late"})
    assert progress.status_code == 409
    assert slow.server.client.get(f"{job['images_url']}0").status_code == 409
    [build] = builds(arena)
    assert build.status == "building" and build.worker_id == fast.worker_id
    refused = [e.reason for e in build.events if "refused" in e.reason]
    assert any(r.startswith(f"reference upload from worker {slow.worker_id} refused") for r in refused), refused
    assert reference_file(unbuilt, scorer.extractor.engine) is None and leftovers(unbuilt) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_remote_build_shows_its_progress_on_the_console_and_revoking_gives_it_back(make_app, unbuilt, scorer,
                                                                                    tmp_path):
    arena = make_app(competition=unbuilt)
    worker, job = claimed_build(arena, scorer, tmp_path)
    classes = {cls: {"done": 3, "total": counts["total"]} for cls, counts in job["progress"]["classes"].items()}
    response = worker.server.client.post(job["progress_url"], json={"classes": classes, "stage": "with_mask train"})
    assert response.status_code == 204, response.text
    [build] = builds(arena)
    assert build.images_done == 6 and build.progress["stage"] == "with_mask train"
    unknown = worker.server.client.post(job["progress_url"], json={"classes": {"cats": {"done": 1, "total": 1}},
                                                                   "stage": "cats train"})
    assert unknown.status_code == 422 and "cats" in unknown.json()["error"]["message"]
    console = TestClient(arena.client.app, follow_redirects=False)
    sign_in_admin(console)
    row = re.search(rf"<tr>\s*<td class=\"mono\">{worker.worker_id}.*?</tr>", console.get("/admin/workers").text,
                    re.S).group(0)
    assert f"building reference statistics of {arena.slug} ({100 * 6 // build.images_total}%)" in row, row
    with arena.database.sessionmaker() as session:
        revoke_worker_token(session=session, name="lab-gpu")
    [build] = builds(arena)
    assert build.status == "queued" and build.lease_id is None  # revoking the token gave the build back


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_another_token_cannot_touch_a_build(make_app, unbuilt, scorer, tmp_path):
    arena = make_app(competition=unbuilt)
    _, job = claimed_build(arena, scorer, tmp_path)
    stranger = remote_worker(arena, scorer, worker_token(arena, "stranger"), tmp_path / "other")
    response = stranger.server.client.get(f"{job['images_url']}0")
    assert response.status_code == 404, response.text
    assert builds(arena)[0].status == "building"
