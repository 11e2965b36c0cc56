"""The proof as users would run it: `arena serve --no-worker` and two `arena worker --server URL` processes that share
nothing with the server but its URL. The workers run in their own network namespace (a veth pair; the server
listens on the host's end), with their own FID weights copy and empty cache directories, no database and no data
directory of the server's: the only path from worker to server is HTTP. They drain uploads of several teams, and
the board holds the scores a local Scorer gives the same zips, to 1e-6; for a competition with no references at
all, they build them first (server/jobs/remote_builds.py)."""

from __future__ import annotations

import io
import os
import random
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.utils.serve import REPO, free_port, stop_server, wait_healthy
from tests.utils.server_factories import ADMIN_TOKEN, bearer, submission_zip

TEAMS = 3
UPLOADS_PER_TEAM = 2


def ip(*args: str, namespace: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    subprocess.run([*prefix, "ip", *args], check=True, capture_output=True)


@pytest.fixture
def namespace() -> Iterator[tuple[str, str, str]]:
    """(namespace, the host's address, the namespace's address): a fresh namespace joined to the host by a veth
    pair on a /30 of its own; removed (with its link) whatever the test does."""
    tag = uuid.uuid4().hex[:6]
    name, host_end, inner_end = f"arena-{tag}", f"arh{tag}", f"arn{tag}"
    net = f"10.{random.randint(64, 127)}.{random.randint(0, 255)}"
    host_ip, inner_ip = f"{net}.1", f"{net}.2"
    try:
        ip("netns", "add", name)
        ip("link", "add", host_end, "type", "veth", "peer", "name", inner_end)
        ip("link", "set", inner_end, "netns", name)
        ip("addr", "add", f"{host_ip}/30", "dev", host_end)
        ip("link", "set", host_end, "up")
        ip("addr", "add", f"{inner_ip}/30", "dev", inner_end, namespace=name)
        ip("link", "set", inner_end, "up", namespace=name)
        ip("link", "set", "lo", "up", namespace=name)
        yield name, host_ip, inner_ip
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)  # gone with the namespace, normally


def server_env(data_dir: Path, torch_home: Path) -> dict[str, str]:
    return {**clean_env(), "TORCH_HOME": str(torch_home), "ARENA_DATA_DIR": str(data_dir), "ARENA_DEVICE": "cpu",
            "ARENA_ADMIN_TOKEN": ADMIN_TOKEN, "ARENA_SECRET_KEY": "remote-worker-test-secret-0123456789",
            "ARENA_WORKER_HEARTBEAT_SECONDS": "1", "OMP_NUM_THREADS": "1"}


def clean_env() -> dict[str, str]:
    """This process's environment without any ARENA_* setting (nothing of the server's reaches a worker)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ARENA_") and k != "TORCH_HOME"}


def start_remote_worker(namespace: str, url: str, token: str, home: Path, log: Path) -> subprocess.Popen:
    """`arena worker --server URL` inside the namespace, in an empty working directory of its own."""
    cache, cwd = home / "cache", home / "cwd"
    cwd.mkdir(parents=True)
    env = {**clean_env(), "TORCH_HOME": str(home.parent / "torch"), "ARENA_DEVICE": "cpu",
           "ARENA_WORKER_POLL_SECONDS": "0.2", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    with log.open("w") as out:
        return subprocess.Popen(["ip", "netns", "exec", namespace, sys.executable, "-m", "server.cli", "worker",
                                 "--server", url, "--token", token, "--cache-dir", str(cache)],
                                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def create_worker_token(env: dict[str, str], name: str) -> str:
    output = subprocess.run([sys.executable, "-m", "server.cli", "admin", "workers", "create", name], cwd=REPO,
                            env=env, check=True, capture_output=True, text=True).stdout
    return re.search(r"\(shown once\): (arenaw_\S+)", output).group(1)


@contextmanager
def served_with_remote_workers(namespace: tuple[str, str, str], data_dir: Path, fid_torch_home: Path,
                               tmp_path: Path) -> Iterator[tuple[str, list[Path]]]:
    """`arena serve --no-worker` on the host's end and two `arena worker --server URL` in the namespace, each with
    its own token and empty cache; (the server's URL, the logs). Stopped whatever the test does."""
    name, host_ip, _ = namespace
    env = server_env(data_dir, fid_torch_home)
    workers_home = tmp_path / "lab-machine"
    shutil.copytree(fid_torch_home, workers_home / "torch")  # the lab machine's own copy of the FID network
    port = free_port()
    url = f"http://{host_ip}:{port}"
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--no-worker", "--host", host_ip,
                                   "--port", str(port)], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    workers: list[subprocess.Popen] = []
    try:
        wait_healthy(url, server, log)
        tokens = [create_worker_token(env, f"lab-gpu-{i}") for i in (1, 2)]
        workers = [start_remote_worker(name, url, token, workers_home / f"worker-{i}", tmp_path / f"worker-{i}.log")
                   for i, token in enumerate(tokens)]
        yield url, [log, *(tmp_path / f"worker-{i}.log" for i in range(2))]
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        stop_server(server)


def remote_workers(data_dir: Path) -> list:
    from server.db import Database, WorkerRow

    database = Database(f"sqlite:///{data_dir / 'arena.db'}")
    with database.sessionmaker() as session:
        remote = [w for w in session.query(WorkerRow) if w.token_id is not None]
    database.dispose()
    return remote


@pytest.mark.slow
def test_two_remote_workers_in_their_own_namespace_drain_the_queue(namespace, scoring_competition, scorer,
                                                                   fid_torch_home, tmp_path):
    data_dir = tmp_path / "server"
    (data_dir / "competitions").mkdir(parents=True)
    (data_dir / "competitions" / scoring_competition.slug).symlink_to(scoring_competition.root.resolve())
    with served_with_remote_workers(namespace, data_dir, fid_torch_home, tmp_path) as (url, logs):
        uploads = upload_from_teams(url, scoring_competition)
        scored = wait_scored(url, scoring_competition.slug, len(uploads), logs=logs)
    assert_scored_as_locally(scored, uploads, scoring_competition, scorer)
    remote = remote_workers(data_dir)
    assert len(remote) == 2 and {w.address for w in remote} == {namespace[2]}
    holders = {row["worker_id"] for row in scored.values()}
    assert holders <= {w.id for w in remote}, holders
    for i in range(2):
        assert (tmp_path / "lab-machine" / f"worker-{i}" / "cache").exists()


@pytest.mark.slow
def test_remote_workers_build_the_references_of_a_competition_that_has_none(namespace, scoring_competition, scorer,
                                                                            fid_torch_home, tmp_path):
    """The organizer's setup the issue is for: web on a small VM (`--no-worker`), every GPU remote, a competition
    whose references were never built. A remote worker builds them (the images and the reference file cross HTTP),
    then the uploads are scored by the remote workers to the scores of locally built references."""
    data_dir = tmp_path / "server"
    root = data_dir / "competitions" / scoring_competition.slug
    shutil.copytree(scoring_competition.root, root, ignore=shutil.ignore_patterns("references"))
    with served_with_remote_workers(namespace, data_dir, fid_torch_home, tmp_path) as (url, logs):
        uploads = upload_from_teams(url, scoring_competition)
        scored = wait_scored(url, scoring_competition.slug, len(uploads), logs=logs, timeout=600)
    assert_scored_as_locally(scored, uploads, scoring_competition, scorer)
    from server.db import Database, ReferenceBuild

    database = Database(f"sqlite:///{data_dir / 'arena.db'}")
    with database.sessionmaker() as session:
        built = [(b.status, b.outcome) for b in session.query(ReferenceBuild)]
    database.dispose()
    assert len(built) == 1 and built[0][0] == "done" and built[0][1].startswith("built by remote worker lab-gpu-")
    assert list((root / "references").glob("fid-references*.npz")) and not list((root / "references").glob(".*"))
    assert {row["worker_id"] for row in scored.values()} <= {w.id for w in remote_workers(data_dir)}


def assert_scored_as_locally(scored: dict[int, dict], uploads: dict[int, int], competition, scorer) -> None:
    for submission_id, seed in uploads.items():
        local = scorer.score(competition, decoded(competition, seed))
        row = scored[submission_id]
        assert row["score_public"] == pytest.approx(local.score_public, abs=1e-6, rel=0)
        assert row["score_private"] == pytest.approx(local.score_private, abs=1e-6, rel=0)


def upload_from_teams(url: str, competition) -> dict[int, int]:
    """TEAMS teams upload UPLOADS_PER_TEAM zips each over HTTP; {submission id: zip seed}."""
    uploads = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for team in range(TEAMS):
            created = client.post(f"/api/admin/competitions/{competition.slug}/teams", headers=bearer(ADMIN_TOKEN),
                                  json={"name": f"team-{team}", "members": ["Ada"]})
            assert created.status_code == 201, created.text
            for k in range(UPLOADS_PER_TEAM):
                seed = 20 + team * UPLOADS_PER_TEAM + k
                response = client.post(f"/api/competitions/{competition.slug}/submissions",
                                       headers=bearer(created.json()["token"]),
                                       files={"file": ("s.zip", submission_zip(competition, seed=seed),
                                                       "application/zip")})
                assert response.status_code == 202, response.text
                uploads[response.json()["id"]] = seed
    return uploads


def wait_scored(url: str, slug: str, count: int, *, logs: list[Path], timeout: float = 240) -> dict[int, dict]:
    """The organizer's view of every submission once all are scored; the logs in the error otherwise."""
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/api/admin/submissions", headers=bearer(ADMIN_TOKEN),
                             params={"competition": slug, "limit": 1000}, timeout=30)
        rows = response.json()["data"]
        if len(rows) == count and all(r["status"] in ("scored", "failed") for r in rows):
            assert all(r["status"] == "scored" for r in rows), rows
            return {r["id"]: r for r in rows}
        time.sleep(0.5)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs)
    raise AssertionError(f"not scored within {timeout:.0f} s: {[r['status'] for r in rows]}\n{tails}")


def decoded(competition, seed: int):
    from submissions import SubmissionSpec, validate_zip

    spec = SubmissionSpec.from_competition(competition.config)
    return validate_zip(io.BytesIO(submission_zip(competition, seed=seed)), spec).images
