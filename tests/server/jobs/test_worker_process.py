"""Real worker processes: one is SIGKILLed while scoring; another requeues its job and scores it once; SIGTERM
during its next job lets that job finish before it exits. The submissions' events tell the story."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.db.crud import get_submission
from server.db.models import WorkerRow
from tests.utils.serve import REPO
from tests.utils.server_factories import submission_zip


def start_worker(arena, torch_home: Path, **settings: str) -> subprocess.Popen:
    env = {
        **os.environ, "TORCH_HOME": str(torch_home), "ARENA_DATA_DIR": str(arena.settings.data_dir),
        "ARENA_DATABASE_URL": arena.settings.resolved_database_url, "ARENA_DEVICE": "cpu",
        "ARENA_WORKER_TIMEOUT_SECONDS": "4", "ARENA_WORKER_HEARTBEAT_SECONDS": "0.5",
        "ARENA_WORKER_POLL_SECONDS": "0.2", "ARENA_RETRY_BACKOFF_SECONDS": "0", "OMP_NUM_THREADS": "1",
        **{f"ARENA_{key.upper()}": value for key, value in settings.items()},
    }
    return subprocess.Popen([sys.executable, "-m", "server.cli", "worker"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(arena, submission_id: int, status: str, process: subprocess.Popen, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with arena.database.sessionmaker() as session:
            submission = get_submission(session=session, submission_id=submission_id)
            if submission.status == status:
                return submission
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"submission {submission_id} never reached {status}: {process.communicate()[0]}")


@pytest.mark.slow
def test_sigkilled_worker_job_is_requeued_and_scored_once(make_app, fid_torch_home, scoring_competition):
    arena = make_app(competition=scoring_competition)
    _, token = arena.create_team("a")
    sid = arena.upload(token, submission_zip(arena.competition, seed=5)).json()["id"]

    first = start_worker(arena, fid_torch_home)
    killed_worker = wait_for(arena, sid, "scoring", first).worker_id
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)

    second = start_worker(arena, fid_torch_home)
    scored = wait_for(arena, sid, "scored", second)
    # SIGTERM in the middle of the next job: the worker finishes it, then exits cleanly.
    next_id = arena.upload(token, submission_zip(arena.competition, seed=6)).json()["id"]
    wait_for(arena, next_id, "scoring", second)
    second.send_signal(signal.SIGTERM)
    output = second.communicate(timeout=120)[0]
    assert second.returncode == 0, output
    with arena.database.sessionmaker() as session:
        finished = get_submission(session=session, submission_id=next_id)
        assert [e.to_status for e in finished.events] == ["queued", "scoring", "scored"], output

    # The crash is recorded against the dead worker and does not use an attempt (it was not the submission's fault).
    assert scored.attempts == 1 and scored.worker_id != killed_worker
    steps = [(e.from_status, e.to_status, e.worker_id) for e in scored.events]
    assert steps == [
        (None, "queued", None),
        ("queued", "scoring", killed_worker),
        ("scoring", "queued", killed_worker),
        ("queued", "scoring", scored.worker_id),
        ("scoring", "scored", scored.worker_id),
    ]
    assert scored.events[2].reason.startswith(f"worker lost: worker {killed_worker} went silent")
    with arena.database.sessionmaker() as session:
        assert session.get(WorkerRow, scored.worker_id).stopped_at is not None
        # It never got to say goodbye: the worker that requeued its job marked it stopped.
        assert session.get(WorkerRow, killed_worker).stopped_at is not None
