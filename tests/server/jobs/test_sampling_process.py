"""A model's sampling process never outlives its worker, and a job never samples twice at once.

Real `arena worker` processes sample a model that never finishes (minutes of matrix products); one is SIGKILLed or
frozen (SIGSTOP) mid-sampling. The sampling child must be gone within seconds of a SIGKILL, the next worker removes
the dead one's work folder at start, and the requeued job runs once: never two sampling processes of it at a time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest

from server.db import Team
from server.db.crud import get_submission
from server.jobs.queue import cancel
from server.jobs.worker import Worker
from server.storage import model_path
from server.uploads.rules import create_submission
from submissions.orphans import sampling_processes
from submissions.sampling import WORKDIR_PREFIX
from tests.server.jobs.test_worker_process import start_worker
from tests.utils import onnx_models
from tests.utils.server_factories import with_kinds

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


def queue_model(arena, path: Path) -> int:
    """Queue a model as a team's submission, stored as the upload would store it (a model this slow would fail the
    upload's dry run: the test is about the worker, which must cope with one anyway, e.g. after a rule change)."""
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    target = model_path(arena.settings.data_dir, sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, target)
    team_id, _ = arena.create_team("never-ends")
    with arena.database.sessionmaker() as session:
        team = session.get(Team, team_id)
        submission, _ = create_submission(session=session, competition=team.competition, team=team, sha256=sha256,
                                          size_bytes=target.stat().st_size, kind="model")
        return submission.id


def copies_of(submission_id: int) -> list[int]:
    return [p.pid for p in sampling_processes() if p.tag.startswith(f"submission {submission_id} of ")]


def wait_for_copy(submission_id: int, worker, timeout: float = 240.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if copies := copies_of(submission_id):
            return copies[0]
        assert worker.poll() is None, worker.communicate()[0]
        time.sleep(0.1)
    raise AssertionError(f"submission {submission_id} never started sampling")


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed child stays one until its parent, or init, reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not running(pid):
            return True
        time.sleep(0.05)
    return False


def finish_once(arena, sid, second, most_copies: list[int]):
    """Wait for the requeued job to fail on its (short) time limit, counting its sampling copies all along."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        most_copies.append(len(copies_of(sid)))
        with arena.database.sessionmaker() as session:
            submission = get_submission(session=session, submission_id=sid)
            if submission.status == "failed":
                return submission
        assert second.poll() is None, second.communicate()[0]
        time.sleep(0.05)
    raise AssertionError(second.communicate()[0])


def test_a_sigkilled_worker_takes_its_sampling_process_with_it(make_app, fid_torch_home, scoring_competition,
                                                                tmp_path):
    arena = make_app(competition=with_kinds(scoring_competition, "model", tmp_path))
    sid = queue_model(arena, onnx_models.slow(tmp_path / "slow.onnx", rounds=5000))
    first = start_worker(arena, fid_torch_home, model_sampling_seconds="600")
    child = wait_for_copy(sid, first)
    folders = list(Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}{first.pid}-*"))
    assert folders, "the work folder names its owner"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert gone_within(child, 5.0), "the model kept sampling after its worker died"
    assert all(f.exists() for f in folders)  # a SIGKILL leaves the folder: the next worker's start removes it

    second = start_worker(arena, fid_torch_home, model_sampling_seconds="3")
    try:
        most_copies: list[int] = []
        failed = finish_once(arena, sid, second, most_copies)
    finally:
        second.send_signal(signal.SIGKILL)
        second.wait(timeout=30)
    assert not any(f.exists() for f in folders)
    assert max(most_copies) == 1  # it did sample again, once at a time
    steps = [(e.to_status, e.worker_id) for e in failed.events]
    assert [status for status, _ in steps] == ["queued", "scoring", "queued", "scoring", "failed"]
    assert "model sampling failed (timeout)" in failed.error


def test_a_requeued_job_stops_the_copy_its_frozen_worker_left_running(make_app, fid_torch_home, scoring_competition,
                                                                       tmp_path):
    """A worker frozen (SIGSTOP) mid-sampling is alive, so its child is too; once its job is requeued the next
    worker must not sample beside that copy."""
    arena = make_app(competition=with_kinds(scoring_competition, "model", tmp_path))
    sid = queue_model(arena, onnx_models.slow(tmp_path / "slow.onnx", rounds=5000))
    frozen = start_worker(arena, fid_torch_home, model_sampling_seconds="600")
    old_copy = wait_for_copy(sid, frozen)
    frozen.send_signal(signal.SIGSTOP)
    second = start_worker(arena, fid_torch_home, model_sampling_seconds="3")
    try:
        most_copies: list[int] = []
        failed = finish_once(arena, sid, second, most_copies)
        assert gone_within(old_copy, 1.0)
    finally:
        for worker in (second, frozen):
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
    assert max(most_copies) == 1
    assert [e.to_status for e in failed.events] == ["queued", "scoring", "queued", "scoring", "failed"]


def test_a_worker_stops_sampling_a_job_taken_from_it(make_app, scorer, scoring_competition, tmp_path):
    """Cancelled (or requeued after a silence) while its model samples: the heartbeat notices and ends the sampling
    at once instead of letting it run to the time limit."""
    arena = make_app(competition=with_kinds(scoring_competition, "model", tmp_path), model_sampling_seconds=600)
    sid = queue_model(arena, onnx_models.slow(tmp_path / "slow.onnx", rounds=5000))
    worker = Worker(database=arena.database, settings=arena.settings, scorer=scorer, worker_id="w")
    running_worker = threading.Thread(target=worker.run, kwargs={"max_jobs": 1})
    running_worker.start()
    try:
        deadline = time.monotonic() + 120
        while not copies_of(sid) and time.monotonic() < deadline:
            time.sleep(0.05)
        (child,) = copies_of(sid)
        with arena.database.sessionmaker() as session:
            cancel(session=session, submission_id=sid, reason="test")
        assert gone_within(child, 10.0), "the sampling went on for a job the worker no longer holds"
        running_worker.join(timeout=30)
        assert not running_worker.is_alive()
    finally:
        worker.stop.set()
        for pid in copies_of(sid):
            os.kill(pid, signal.SIGKILL)
    with arena.database.sessionmaker() as session:
        assert get_submission(session=session, submission_id=sid).status == "cancelled"
