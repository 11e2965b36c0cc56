"""Uploads are a bounded resource: model dry runs go through a queue bounded globally and per team, uploads are
rate-limited per team and per client address, and models that fail in the worker use up a visible budget."""

from __future__ import annotations

import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from server.db import Submission, SubmissionStatus
from server.errors import RateLimited
from server.jobs.worker import Worker
from server.uploads.limits import DryRunQueue
from submissions.orphans import sampling_processes
from tests.utils import onnx_models
from tests.utils.competition import make_competition
from tests.utils.serve import start_server
from tests.utils.server_factories import ADMIN_TOKEN, bearer, csrf_of, submission_zip, upload_model, with_kinds


def test_the_dry_run_queue_bounds_running_and_waiting_per_team_and_in_all():
    queue = DryRunQueue(slots=2, per_team=1, waiting=2, wait_s=0.5)
    release = threading.Event()

    def hold(team: int) -> None:
        with queue.slot(team):
            release.wait(5)

    runners = [threading.Thread(target=hold, args=(team,)) for team in (1, 2)]
    for runner in runners:
        runner.start()
    time.sleep(0.2)
    with pytest.raises(RateLimited) as waited:  # a free team, but no free slot within wait_s
        with queue.slot(3):
            pass
    assert waited.value.headers["Retry-After"] == "1" and "within 0.5 s" in waited.value.message
    release.set()
    for runner in runners:
        runner.join()
    assert queue.most_running == 2
    with queue.slot(3):  # free again
        pass


def test_a_team_waits_behind_its_own_dry_run_and_the_queue_refuses_past_its_length():
    queue = DryRunQueue(slots=4, per_team=1, waiting=1, wait_s=5)
    started, release, outcomes = threading.Event(), threading.Event(), []

    def first() -> None:
        with queue.slot(1):
            started.set()
            release.wait(5)

    def second() -> None:
        with queue.slot(1):
            outcomes.append("ran after the first")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    started.wait(5)
    threads[1].start()
    time.sleep(0.2)
    with pytest.raises(RateLimited, match="queue of model dry runs is full"):
        with queue.slot(1):  # team 1's third: one running, one waiting is its share
            pass
    with queue.slot(2):  # another team with a free slot does not wait at all
        outcomes.append("another team at once")
    release.set()
    for thread in threads:
        thread.join()
    assert outcomes == ["another team at once", "ran after the first"] and queue.most_running == 2


@pytest.fixture
def model_server(tmp_path):
    """A real `arena serve --no-worker` with a model competition and dry runs bounded at 2 (1 per team)."""
    make_competition(tmp_path / "data" / "competitions" / "models", slug="models", submission_kinds="model",
                     train_per_class=2, test_per_class=2, images_per_class=2, daily_limit=100)
    env = {**os.environ, "ARENA_DATA_DIR": str(tmp_path / "data"), "ARENA_ADMIN_TOKEN": ADMIN_TOKEN,
           "ARENA_MODEL_DRY_RUNS": "2", "ARENA_MODEL_DRY_RUNS_PER_TEAM": "1", "ARENA_MODEL_DRY_RUN_QUEUE": "3",
           "ARENA_MODEL_DRY_RUN_SECONDS": "60", "OMP_NUM_THREADS": "1"}
    server, url = start_server(env, tmp_path / "serve.log", "--no-worker")
    try:
        yield url, server.pid
    finally:
        server.kill()
        server.wait()


@pytest.mark.slow
def test_concurrent_model_uploads_never_run_more_dry_runs_than_the_bound(model_server, tmp_path):
    url, server_pid = model_server
    tokens = [httpx.post(f"{url}/api/admin/competitions/models/teams", json={"name": f"t{i}"}, timeout=30,
                         headers=bearer(ADMIN_TOKEN)).json()["token"] for i in range(2)]
    # about a second of matrix products each; distinct files, so none is a duplicate
    models = [onnx_models.slow(tmp_path / f"m{i}.onnx", rounds=20 + i, side=512) for i in range(12)]
    most, watching = [0], threading.Event()

    def watch() -> None:
        while not watching.is_set():
            most[0] = max(most[0], sum(1 for p in sampling_processes() if p.parent == server_pid))
            time.sleep(0.01)

    def upload(index: int) -> httpx.Response:
        return httpx.post(f"{url}/api/competitions/models/submissions", timeout=120,
                          headers=bearer(tokens[index % 2]),
                          files={"file": (models[index].name, models[index].read_bytes())})

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(len(models)) as pool:
            responses = list(pool.map(upload, range(len(models))))
    finally:
        watching.set()
        watcher.join()
    codes = [r.status_code for r in responses]
    assert set(codes) <= {202, 429}, [r.text for r in responses]
    assert 1 <= most[0] <= 2, most[0]  # 12 at once started at most 2 dry-run processes
    assert codes.count(202) >= 2 and codes.count(429) >= 1
    for refused in (r for r in responses if r.status_code == 429):
        assert int(refused.headers["Retry-After"]) >= 1 and "quota is unchanged" in refused.json()["error"]["message"]


def test_uploads_are_rate_limited_per_team_and_per_client(make_app):
    arena = make_app(upload_rate_limit_team="2/minute", upload_rate_limit_client="3/minute")
    (_, first), (_, second) = arena.create_team("a"), arena.create_team("b")
    assert [arena.upload(first, submission_zip(arena.competition, seed=s)).status_code for s in (1, 2)] == [202, 202]
    refused = arena.upload(first, submission_zip(arena.competition, seed=3))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["detail"]["per"] == "from this team"
    assert arena.upload(second, submission_zip(arena.competition, seed=4)).status_code == 202  # another team
    from_address = arena.upload(second, submission_zip(arena.competition, seed=5))  # the address's 4th
    assert from_address.status_code == 429 and from_address.json()["error"]["detail"]["per"] == "from this address"


def test_a_bad_rate_limit_setting_is_refused():
    from server.config import Settings

    with pytest.raises(ValueError, match="upload_rate_limit_team"):
        Settings(upload_rate_limit_team="lots")


def test_models_failing_in_the_worker_use_up_a_visible_budget(make_app, scorer, scoring_competition, tmp_path):
    arena = make_app(competition=with_kinds(scoring_competition, "both", tmp_path), model_sampling_seconds=0.01,
                     model_failure_budget=1)
    team_id, token = arena.create_team("hangs")
    assert upload_model(arena, token, onnx_models.generator(tmp_path / "g.onnx")).status_code == 202
    assert Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="w").run(
        exit_when_idle=True) == 1
    with arena.database.sessionmaker() as session:
        assert session.scalars(select(Submission)).one().status == SubmissionStatus.failed
    me = arena.client.get("/api/teams/me", headers=bearer(token)).json()
    assert me["quota"]["used"] == 0  # the failed model gave its quota back...
    assert me["model_failures"] == {**me["model_failures"], "used": 1, "limit": 1, "remaining": 0}  # ...not this
    refused = upload_model(arena, token, onnx_models.generator(tmp_path / "g2.onnx", classes=["without_mask",
                                                                                               "with_mask"]))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["detail"]["model_failures"]["used"] == 1
    assert arena.upload(token, submission_zip(arena.competition, seed=7)).status_code == 202  # zips still go in
    organizer = arena.client.get(f"/api/admin/competitions/{arena.slug}/teams", headers=bearer(ADMIN_TOKEN)).json()
    assert next(t for t in organizer["data"] if t["id"] == team_id)["model_failures"]["used"] == 1
    # ... and on the pages: the team's submit page, the organizer's teams page
    team_browser, organizer_browser = TestClient(arena.client.app), TestClient(arena.client.app)
    team_browser.post("/signin", data={"token": token, "csrf_token": csrf_of(team_browser.get("/signin").text)})
    submit_page = team_browser.get(f"/c/{arena.slug}/submit").text
    assert re.search(r'id="model-failures">.*<strong>1</strong> of 1: no more model uploads', submit_page)
    organizer_browser.post("/admin/signin", data={"token": ADMIN_TOKEN,
                                                  "csrf_token": csrf_of(organizer_browser.get("/admin/signin").text)})
    assert re.search(r'<td class="num">1 / 1</td>', organizer_browser.get("/admin/teams").text)


def test_the_submit_form_is_rate_limited_too(make_app):
    arena = make_app(upload_rate_limit_team="1/minute")
    _, token = arena.create_team("form")
    browser = TestClient(arena.client.app, follow_redirects=False)
    browser.post("/signin", data={"token": token, "csrf_token": csrf_of(browser.get("/signin").text)})

    def submit(seed: int):
        csrf = csrf_of(browser.get(f"/c/{arena.slug}/submit").text)
        return browser.post(f"/c/{arena.slug}/submit", data={"csrf_token": csrf},
                            files={"file": ("s.zip", submission_zip(arena.competition, seed=seed), "application/zip")})

    assert submit(1).status_code == 303
    refused = submit(2)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "Too many requests to upload from this team" in refused.text
