"""Reference statistics built by a scoring worker, never by the web process (issue 17): the queue of builds on both
databases, a real build with the random-weights network (progress per class reaching the total), the console pages
(progress, completion, a failure's reason and the retry), and the worker's start-up check for stale caches."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from server.competition_dir import CONFIG_FILE, Competition, competitions_dir, reference_cache_file, write_manifest
from server.db import CompetitionRow, ReferenceBuild
from server.db.crud import create_team, get_competition, register_competition
from server.jobs.leases import crashed_workers, register_worker
from server.jobs.queue import claim_next_submission, has_pending_work
from server.jobs.reference_builds import (
    claim_next_build,
    finish_build,
    record_progress,
    release_build,
    request_build,
    request_first_build,
    requeue_stale_builds,
)
from server.jobs.reference_worker import ProgressReporter, stored_progress
from server.jobs.worker import Worker
from server.scoring.references import cache_problem
from server.uploads.rules import create_submission
from tests.server.data.trees import make_tree
from tests.utils.competition import make_competition
from tests.utils.server_factories import ADMIN_TOKEN, START, csrf_of, make_test_competition, submission_zip


@pytest.fixture
def builds(database, data_dir):
    """(session, competition row) on a fresh database: 2 classes of 4 train and 4 test images."""
    competition = make_test_competition(data_dir, daily_limit=100)
    session = database.sessionmaker()
    row = register_competition(session=session, root=competition.root)
    yield session, row
    session.close()


def submit(session, row) -> int:
    team, _ = create_team(session=session, competition=row, name="t", now=START)
    submission, _ = create_submission(session=session, competition=row, team=team, sha256="a" * 64, size_bytes=10,
                                      now=START)
    return submission.id


# -- the queue (SQLite and PostgreSQL) -----------------------------------------------------------------------------


def test_submissions_wait_behind_a_queued_or_running_build_and_not_behind_a_finished_one(builds):
    session, row = builds
    build = request_build(session=session, competition=row, reason="prepared from the console", now=START)
    assert (build.status, build.images_total, build.images_done) == ("queued", 16, 0)  # 2 x (4 train + 4 test)
    assert build.progress["classes"] == {"with_mask": {"done": 0, "total": 8}, "without_mask": {"done": 0, "total": 8}}
    again = request_build(session=session, competition=row, reason="pressed twice", now=START)
    assert again.id == build.id  # one active build per competition, not two
    submission_id = submit(session, row)
    register_worker(session=session, worker_id="w", device="cpu", now=START)
    assert claim_next_submission(session=session, worker_id="w", now=START) is None  # held back: references first
    assert has_pending_work(session=session)

    claimed = claim_next_build(session=session, worker_id="w", engine="torch", now=START)
    assert claimed is not None and (claimed.id, claimed.status, claimed.worker_id) == (build.id, "building", "w")
    assert claim_next_build(session=session, worker_id="w2", engine="torch", now=START) is None
    assert claim_next_submission(session=session, worker_id="w", now=START) is None  # still building
    progress = {"classes": {"with_mask": {"done": 8, "total": 8}, "without_mask": {"done": 3, "total": 8}},
                "stage": "without_mask train"}
    assert record_progress(session=session, build_id=build.id, lease_id=claimed.lease_id, progress=progress)
    assert not record_progress(session=session, build_id=build.id, lease_id="another", progress=progress)
    session.refresh(claimed)
    assert claimed.images_done == 11 and claimed.progress["stage"] == "without_mask train"

    assert finish_build(session=session, build_id=build.id, lease_id=claimed.lease_id, worker_id="w", ok=False,
                        outcome="OSError: disk full")
    assert [(e.from_status, e.to_status) for e in claimed.events] == [
        (None, "queued"), ("queued", "building"), ("building", "failed")]
    assert claimed.events[-1].reason == "OSError: disk full" and claimed.events[1].worker_id == "w"
    claimed_submission = claim_next_submission(session=session, worker_id="w", now=START)
    assert claimed_submission is not None and claimed_submission.id == submission_id
    assert request_first_build(session=session, competition=row, reason="page view").id == build.id  # no new one


def test_the_database_itself_refuses_a_second_active_build_of_a_competition(builds):
    """Issue 22, item 5: the rule holds for any writer, not only for request_build."""
    session, row = builds
    first = request_build(session=session, competition=row, reason="first", now=START)
    session.add(ReferenceBuild(competition_id=row.id, status="queued", reason="second", images_done=0,
                               images_total=1, created_at=START, updated_at=START))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()
    claimed = claim_next_build(session=session, worker_id="w", engine="e")
    finish_build(session=session, build_id=claimed.id, lease_id=claimed.lease_id, worker_id="w", ok=False,
                 outcome="failed")
    again = request_build(session=session, competition=row, reason="retry", now=START)
    assert again.id != first.id and again.status == "queued"  # a finished build does not block the next


def test_concurrent_requests_queue_exactly_one_build(builds, database):
    """8 callers at the same instant (web replicas, the CLI, workers) once created 6 active builds on PostgreSQL."""
    _, row = builds
    callers = 8
    barrier = threading.Barrier(callers)

    def request(index: int) -> int:
        with database.sessionmaker() as session:
            competition = session.get_one(CompetitionRow, row.id)
            barrier.wait()
            return request_build(session=session, competition=competition, reason=f"caller {index}").id

    with ThreadPoolExecutor(callers) as pool:
        ids = set(pool.map(request, range(callers)))
    with database.sessionmaker() as session:
        active = session.scalars(select(ReferenceBuild).where(ReferenceBuild.status.in_(("queued", "building")))).all()
    assert len(active) == 1 and ids == {active[0].id}


def test_a_build_whose_worker_went_silent_is_claimed_again_then_fails_as_a_poison_pill(builds):
    session, row = builds
    build = request_build(session=session, competition=row, reason="organizer", now=START)
    for worker_id in ("dead-1", "dead-2"):
        register_worker(session=session, worker_id=worker_id, device="cpu", now=START)
    register_worker(session=session, worker_id="alive", device="cpu", now=START + timedelta(seconds=300))
    dead_lease = claim_next_build(session=session, worker_id="dead-1", engine="torch", now=START).lease_id
    later = START + timedelta(seconds=300)
    assert requeue_stale_builds(session=session, timeout_seconds=120, max_worker_crashes=2, now=later) == [build.id]
    session.refresh(build)
    assert (build.status, build.worker_id, crashed_workers(build)) == ("queued", None, ["dead-1"])
    assert "worker dead-1 went silent" in build.events[-1].reason and build.events[-1].worker_id == "dead-1"
    alive = claim_next_build(session=session, worker_id="alive", engine="torch", now=later)
    assert alive.id == build.id and alive.lease_id != dead_lease
    assert requeue_stale_builds(session=session, timeout_seconds=120, max_worker_crashes=2, now=later) == []  # alive

    # The dead worker's late result is refused and recorded; the live holder's is kept.
    assert not finish_build(session=session, build_id=build.id, lease_id=dead_lease, worker_id="dead-1", ok=False,
                            outcome="stale", now=later)
    assert not release_build(session=session, build_id=build.id, lease_id=dead_lease, worker_id="dead-1", now=later)
    session.refresh(build)
    refused = [e for e in build.events if "refused" in e.reason]
    assert [(e.worker_id, e.from_status, e.to_status) for e in refused] == [("dead-1", "building", "building")] * 2
    assert "now held by worker alive" in refused[0].reason
    assert finish_build(session=session, build_id=build.id, lease_id=alive.lease_id, worker_id="alive", ok=True,
                        outcome="built")
    session.refresh(build)
    assert (build.status, build.outcome) == ("done", "built")
    second = request_build(session=session, competition=row, reason="again", now=later)
    claim_next_build(session=session, worker_id="dead-2", engine="torch", now=later)
    requeue_stale_builds(session=session, timeout_seconds=120, max_worker_crashes=1, now=later)
    session.refresh(second)
    assert second.status == "failed" and "poison pill" in second.outcome and "1 distinct workers" in second.outcome


def test_progress_reaches_the_database_at_most_every_few_seconds(builds, database):
    session, row = builds
    build = request_build(session=session, competition=row, reason="organizer", now=START)
    register_worker(session=session, worker_id="w", device="cpu", now=START)
    claimed = claim_next_build(session=session, worker_id="w", engine="torch", now=START)
    eager = ProgressReporter(claimed.progress, stored_progress(database, claimed), every=0.0)
    eager("with_mask", "train", 4)
    session.commit()  # end this session's read snapshot (SQLite WAL) to see the reporter's own write
    session.refresh(build)
    assert build.images_done == 4 and build.progress["stage"] == "with_mask train"
    assert build.progress["classes"]["with_mask"] == {"done": 4, "total": 8}
    throttled = ProgressReporter(claimed.progress, stored_progress(database, claimed), every=3600.0)
    throttled("with_mask", "train", 4)
    throttled("with_mask", "public", 2)
    session.commit()
    session.refresh(build)
    assert build.images_done == 4  # counted, but not written again within the period
    assert throttled.progress["classes"]["with_mask"]["done"] == 6
    assert throttled.completed()["classes"] == {"with_mask": {"done": 8, "total": 8},
                                                "without_mask": {"done": 8, "total": 8}}


# -- a real build by a worker (SQLite: the queue itself is covered on both databases above) -----------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_builds_queued_references_with_progress_then_scores_what_waited(make_app, scorer):
    arena = make_app()
    _, token = arena.create_team("a")
    with arena.database.sessionmaker() as session:
        row = get_competition(session=session, slug=arena.slug)
        build_id = request_build(session=session, competition=row, reason="prepared from the console").id
    upload = arena.upload(token, submission_zip(arena.competition, seed=3)).json()  # open while it builds
    cache = arena.competition.references_dir / reference_cache_file(scorer.extractor.engine)
    assert not cache.exists()

    worker = Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="w")
    assert worker.run(exit_when_idle=True) == 1  # the build first (not counted as a job), then the submission
    with arena.database.sessionmaker() as session:
        build = session.get_one(ReferenceBuild, build_id)
        assert (build.status, build.worker_id, build.engine) == ("done", "w", scorer.extractor.engine)
        assert build.images_done == build.images_total == 16 and build.outcome.startswith("built in ")
        assert all(c["done"] == c["total"] == 8 for c in build.progress["classes"].values())
        assert build.started_at is not None and build.finished_at >= build.started_at
    assert cache.is_file() and cache_problem(arena.competition, scorer.extractor) is None
    status = arena.client.get(upload["status_url"], headers={"Authorization": f"Bearer {token}"}).json()
    assert status["status"] == "scored"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_failed_build_shows_its_reason_and_partial_progress_on_the_console_and_can_be_retried(make_app, scorer):
    arena = make_app()
    broken = arena.competition.test_files("without_mask", "private")[0]
    broken.write_bytes(b"not a png at all")
    with arena.database.sessionmaker() as session:
        request_build(session=session, competition=get_competition(session=session, slug=arena.slug), reason="test")
    Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="w").run(exit_when_idle=True)

    client = signed_in_organizer(arena)
    page = client.get(f"/admin/c/{arena.slug}/scoring-references").text
    assert 'data-build-status="failed"' in page and "The build failed:" in page
    assert broken.name in page  # the reason names the file
    assert '<meta http-equiv="refresh"' not in page  # nothing left to watch
    # Class with_mask went through completely before without_mask's private image broke its batch.
    assert "<td><code>with_mask</code></td><td class=\"num\">8</td><td class=\"num\">8</td>" in page
    assert 'id="build-references"' in page and "Retry the build" in page
    history = page.split('id="build-history"')[1].split("</details>")[0]  # the build's events, oldest first
    assert [step in history for step in ("new → queued: test", "queued → building: claimed by worker w",
                                         "building → failed: ")] == [True] * 3
    settings_page = client.get(f"/admin/c/{arena.slug}/settings").text
    assert "The last build failed" in settings_page and broken.name in settings_page

    retried = client.post(f"/admin/c/{arena.slug}/scoring-references/build", data={"csrf_token": csrf_of(page)},
                          follow_redirects=False)
    assert retried.status_code == 303
    page = client.get(f"/admin/c/{arena.slug}/scoring-references").text
    assert 'data-build-status="queued"' in page and '<meta http-equiv="refresh" content="2">' in page
    assert "requested by the organizer page" in page and 'id="reference-history"' in page
    assert 'id="no-workers"' in page  # the worker above stopped: the page says who would build it


def signed_in_organizer(arena):
    client = arena.client
    csrf = csrf_of(client.get("/admin/signin").text)
    assert client.post("/admin/signin", data={"token": ADMIN_TOKEN, "csrf_token": csrf},
                       follow_redirects=False).status_code == 303
    return client


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_competition_prepared_from_the_console_gets_its_references_from_a_worker_not_the_web_app(make_app, scorer,
                                                                                                  tmp_path):
    arena = make_app()
    client = signed_in_organizer(arena)
    source = make_tree(tmp_path / "dataset", train=3, test=4, size=80)
    csrf = csrf_of(client.get("/admin/new").text)
    started = client.post("/admin/new", data={"csrf_token": csrf, "slug": "masks", "images_per_class": "2",
                                              "public_fraction": "0.5", "folder": str(source)},
                          follow_redirects=False)
    assert started.status_code == 303, started.text
    done = wait_until_prepared(client, "masks")
    assert 'data-build-status="queued"' in done and "Teams may submit meanwhile" in done
    assert "0 / 14 images" in done  # 2 classes x (3 train + 4 test)
    page = client.get("/admin/c/masks/scoring-references").text
    assert 'data-build-status="queued"' in page and '<meta http-equiv="refresh" content="2">' in page
    assert "prepared from the console" in page and "You can open the competition now" in page
    assert client.post("/admin/new/masks/open", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    comp = Competition.load(competitions_dir(arena.settings.data_dir) / "masks")
    assert not comp.references_dir.exists() or not any(comp.references_dir.iterdir())  # the web app built nothing

    Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="w").run(exit_when_idle=True)
    page = client.get("/admin/c/masks/scoring-references").text
    assert 'data-build-status="done"' in page and "Ready: built in " in page
    assert f"Engine <code>{scorer.extractor.engine}</code>" in page
    assert 'id="reference-count">14 / 14</span>' in page and "(100%)" in page
    assert '<meta http-equiv="refresh"' not in page
    assert "Ready: built in " in client.get("/admin/c/masks/settings").text
    assert cache_problem(comp, scorer.extractor) is None


def wait_until_prepared(client, slug: str, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = client.get(f"/admin/new/{slug}").text
        if 'data-state="running"' not in page:
            return page
        time.sleep(0.5)
    raise AssertionError(f"{slug} still preparing after {timeout} s")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_starting_on_a_stale_cache_queues_a_build_and_runs_it(make_app, scorer):
    arena = make_app()
    worker = Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="w1")
    worker.run(exit_when_idle=True, prepare=True)
    assert cache_problem(arena.competition, scorer.extractor) is None
    # The data changed under the cache (one training image left out): the next worker finds it stale.
    manifest = arena.competition.manifest
    dropped = next(e for e in manifest.files if e.split == "train")
    write_manifest(arena.competition.root, type(manifest).build([e for e in manifest.files if e is not dropped]))
    config = arena.competition.root / CONFIG_FILE  # as `arena data prepare` rewrites it (the server reloads on it)
    os.utime(config, (config.stat().st_mtime + 5,) * 2)
    changed = Competition.load(arena.competition.root)
    problem = cache_problem(changed, scorer.extractor)
    assert problem is not None and "counts" in problem and "dataset_hash" in problem

    Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="w2").run(
        exit_when_idle=True, prepare=True)
    with arena.database.sessionmaker() as session:
        runs = session.scalars(select(ReferenceBuild).order_by(ReferenceBuild.id)).all()
    assert [(b.status, b.worker_id) for b in runs] == [("done", "w1"), ("done", "w2")]
    assert runs[0].reason == f"worker w1: no reference cache for the {scorer.extractor.engine} engine yet"
    assert runs[1].reason.startswith("worker w2: the reference cache is stale (") and runs[1].images_total == 15
    assert cache_problem(changed, scorer.extractor) is None
    Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="w3").run(
        exit_when_idle=True, prepare=True)
    with arena.database.sessionmaker() as session:
        assert len(session.scalars(select(ReferenceBuild)).all()) == 2  # current: loaded, nothing queued
        assert not session.scalars(select(ReferenceBuild).where(
            ReferenceBuild.status != "done")).all()


def test_workers_starting_together_queue_one_build_per_competition(make_app, scorer, data_dir):
    """Three workers starting at once each find the cache missing; they used to build each competition twice."""
    arena = make_app()
    other = make_competition(competitions_dir(data_dir) / "other", slug="other", train_per_class=4,
                             test_per_class=4, images_per_class=2)
    with arena.database.sessionmaker() as session:
        register_competition(session=session, root=other.root)
    workers = [Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id=f"w{i}")
               for i in range(3)]
    barrier = threading.Barrier(len(workers))

    def start(worker: Worker) -> None:
        barrier.wait()
        worker.prepare_references()

    with ThreadPoolExecutor(len(workers)) as pool:
        list(pool.map(start, workers))
    with arena.database.sessionmaker() as session:
        builds = session.scalars(select(ReferenceBuild)).all()
    assert sorted(b.competition_id for b in builds) == sorted({b.competition_id for b in builds})
    assert len(builds) == 2


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_killed_mid_build_loses_it_to_the_next_worker_which_finishes_it(make_app, fid_torch_home, scorer):
    from tests.server.jobs.test_worker_process import start_worker

    arena = make_app(competition={"train_per_class": 30, "test_per_class": 8})  # ~20 s of features at 1 thread
    with arena.database.sessionmaker() as session:
        row = get_competition(session=session, slug=arena.slug)
        build_id = request_build(session=session, competition=row, reason="prepared from the console").id
    first = start_worker(arena, fid_torch_home)
    building = wait_for_build(arena, build_id, first, lambda b: b.status == "building" and b.images_done > 0)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)

    second = start_worker(arena, fid_torch_home)
    done = wait_for_build(arena, build_id, second, lambda b: b.status == "done")
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=60) == 0
    assert done.worker_id not in (None, building.worker_id) and crashed_workers(done) == [building.worker_id]
    assert any(f"worker {building.worker_id} went silent" in e.reason for e in done.events)
    assert done.images_done == done.images_total == 76 and done.outcome.startswith("built in ")
    assert cache_problem(arena.competition, scorer.extractor) is None  # same device and engine as those workers


def wait_for_build(arena, build_id: int, process, ready, timeout: float = 300.0) -> ReferenceBuild:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with arena.database.sessionmaker() as session:
            build = session.get_one(ReferenceBuild, build_id)
            if ready(build):
                return build
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"build {build_id} never got there: {process.communicate()[0][-3000:]}")
