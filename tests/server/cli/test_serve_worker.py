"""`arena serve` runs its scoring worker as a child process (server/cli/serve.py `WorkerProcess`): the worker is
another process that scores what the server receives, each signal to the server reaches it as one SIGTERM
(`ForwardSignals`), it ends with the server even when the server is SIGKILLed, and dying on its own is logged."""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.cli.serve import WorkerProcess
from server.db.crud import get_submission
from server.db.models import WorkerRow
from server.jobs.signals import ForwardSignals
from submissions.client import ArenaClient
from tests.utils.serve import REPO, start_server
from tests.utils.server_factories import submission_zip

# Stands in for `arena worker` where only the process matters: it writes a line per SIGTERM to the file argv[1].
COUNT_SIGTERMS = """
import signal, sys, time
from pathlib import Path
log = Path(sys.argv[1])
signal.signal(signal.SIGTERM, lambda *_: log.write_text(log.read_text() + "SIGTERM\\n"))
log.write_text("ready\\n")
while log.read_text().count("SIGTERM") < 2:
    time.sleep(0.05)
"""


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent that never reaps it does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(0.1)


def test_each_signal_to_the_server_reaches_its_worker_as_one_sigterm(tmp_path):
    """Two signals to the server (uvicorn raises each again once it has stopped) are the worker's two: finish the
    job, then requeue it now. The server itself survives them and gets its handlers back."""
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    log = tmp_path / "signals.log"
    worker = WorkerProcess([sys.executable, "-c", COUNT_SIGTERMS, str(log)])
    wait_until(lambda: log.is_file() and log.read_text() == "ready\n", 20, "the stand-in worker did not start")
    with ForwardSignals(worker.forward_sigterm) as signals:
        os.kill(os.getpid(), signal.SIGINT)
        wait_until(lambda: log.read_text() == "ready\nSIGTERM\n", 10, "the first signal was not forwarded")
        os.kill(os.getpid(), signal.SIGTERM)
        worker.stop(signalled=True)
    assert log.read_text() == "ready\nSIGTERM\nSIGTERM\n"
    assert signals.received == 2 and worker.process.returncode == 0
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_the_worker_gets_sigterm_when_the_server_is_killed(tmp_path):
    """SIGKILL leaves the server no chance to stop its worker: the kernel sends the worker SIGTERM instead."""
    server = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom server.cli.serve import WorkerProcess\n"
         "print(WorkerProcess([sys.executable, '-c', 'import time; time.sleep(120)']).pid, flush=True)\n"
         "time.sleep(120)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        worker_pid = int(server.stdout.readline())
        assert alive(worker_pid) and parent_of(worker_pid) == server.pid
        server.kill()
        server.wait()
        wait_until(lambda: not alive(worker_pid), 10, "the orphaned worker did not exit")
    finally:
        server.kill()
        server.wait()


def test_a_worker_that_dies_on_its_own_is_logged_and_the_server_goes_on(caplog):
    caplog.set_level(logging.ERROR, logger="arena.serve")
    worker = WorkerProcess([sys.executable, "-c", "raise SystemExit(3)"])
    wait_until(lambda: "exited with code 3 while the server runs" in caplog.text, 20, "no error was logged")
    assert f"process {worker.pid}" in caplog.text and "uploads wait in the queue" in caplog.text
    worker.stop(signalled=False)  # nothing left to signal: the server's shutdown still ends quietly


@pytest.mark.slow
def test_arena_serve_scores_in_its_worker_process_and_stops_it_on_sigterm(make_app, fid_torch_home,
                                                                         scoring_competition, tmp_path):
    """A real `arena serve`: its worker is a child process (pid in the workers table), an upload over HTTP is scored
    by it, and SIGTERM ends both cleanly (exit 0, the worker marked stopped by itself)."""
    arena = make_app(competition=scoring_competition)
    admin_token, log = secrets.token_urlsafe(24), tmp_path / "serve.log"
    env = {**os.environ, "TORCH_HOME": str(fid_torch_home), "ARENA_DATA_DIR": str(arena.settings.data_dir),
           "ARENA_DATABASE_URL": arena.settings.resolved_database_url, "ARENA_DEVICE": "cpu",
           "ARENA_ADMIN_TOKEN": admin_token, "ARENA_WORKER_POLL_SECONDS": "0.2", "OMP_NUM_THREADS": "1"}
    process, url = start_server(env, log)
    try:
        wait_until(lambda: workers(arena), 180, "arena serve did not register its worker")
        [worker] = workers(arena)
        assert worker.pid != process.pid and parent_of(worker.pid) == process.pid
        submission_id = upload_over_http(url, admin_token, arena.slug, submission_zip(arena.competition, seed=3))
        wait_until(lambda: status(arena, submission_id) in ("scored", "failed"), 240, "the upload was not scored")
        with arena.database.sessionmaker() as session:
            submission = get_submission(session=session, submission_id=submission_id)
            assert submission.status == "scored" and submission.worker_id == worker.id
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text()
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
    assert re.search(rf"Scoring worker: process {worker.pid}\b", output), output
    assert f"the scoring worker (process {worker.pid}) exited with code 0" in output, output
    assert not alive(worker.pid)
    with arena.database.sessionmaker() as session:
        assert session.get(WorkerRow, worker.id).stopped_at is not None


def workers(arena) -> list[WorkerRow]:
    with arena.database.sessionmaker() as session:
        return list(session.query(WorkerRow))


def upload_over_http(url: str, admin_token: str, slug: str, zip_bytes: bytes) -> int:
    token = ArenaClient(url, admin_token).admin_create_team(slug, "served", ["Ada"], is_baseline=False)["token"]
    return ArenaClient(url, token).upload_bytes(zip_bytes, "s.zip", slug)["id"]


def status(arena, submission_id: int) -> str:
    with arena.database.sessionmaker() as session:
        return get_submission(session=session, submission_id=submission_id).status
