"""Queue semantics on both databases: atomic claims, silent workers, bounded retries, cancel, rescore, events."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from server.db import SubmissionStatus, Team
from server.db.crud import create_team, get_submission, register_competition
from server.errors import Conflict
from server.jobs.leases import crashed_workers, heartbeat, list_workers, register_worker
from server.jobs.queue import (
    cancel,
    claim_next_submission,
    finish_failed,
    finish_scored,
    record_progress,
    release,
    requeue_stale,
    rescore,
    rescore_competition,
)
from server.uploads.rules import create_submission, quota_status
from submissions.results import SubmissionResult
from tests.utils.server_factories import START, make_test_competition

SCORES = SubmissionResult(score_public=1.0, score_private=2.0, score_all=1.5, penalized=False, class_scores={},
                          timings={}, device="cpu", precision="exact", scorer_version="test", weights_sha256="0")


@pytest.fixture
def queue(database, data_dir):
    """(session, competition, team, submit(n) -> ids) on a fresh database."""
    competition = make_test_competition(data_dir, daily_limit=100)
    session = database.sessionmaker()
    row = register_competition(session=session, root=competition.root)
    team, _ = create_team(session=session, competition=row, name="t", now=START)

    def submit(count: int = 1, start: int = 0) -> list[int]:
        return [create_submission(session=session, competition=row, team=team, sha256=f"{i:064x}",
                                  size_bytes=1, now=START + timedelta(seconds=i))[0].id
                for i in range(start, start + count)]

    yield session, row, team, submit
    session.close()


def statuses(submission) -> list[tuple[str | None, str]]:
    return [(e.from_status, e.to_status) for e in submission.events]


def test_claims_are_oldest_first_and_never_shared(queue, database):
    _, _, _, submit = queue
    ids = submit(40)
    claimed: dict[str, list[int]] = {"a": [], "b": [], "c": [], "d": []}

    def drain(worker_id: str) -> None:
        with database.sessionmaker() as own:
            while (job := claim_next_submission(session=own, worker_id=worker_id, now=START)) is not None:
                claimed[worker_id].append(job.id)

    threads = [threading.Thread(target=drain, args=(w,)) for w in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    everything = sorted(i for jobs in claimed.values() for i in jobs)
    assert everything == ids  # each exactly once
    for jobs in claimed.values():
        assert jobs == sorted(jobs)  # a worker's claims follow upload order
    with database.sessionmaker() as fresh:  # `session` may still hold its own copy from before the claims
        assert get_submission(session=fresh, submission_id=ids[0]).attempts == 1


def test_silent_worker_jobs_are_requeued_and_the_events_say_why(queue):
    session, _, _, submit = queue
    [sid] = submit()
    register_worker(session=session, worker_id="dead", device="cpu", now=START)
    register_worker(session=session, worker_id="alive", device="cpu", now=START)
    dead_lease = claim_next_submission(session=session, worker_id="dead", now=START).lease_id
    later = START + timedelta(seconds=200)
    heartbeat(session=session, worker_id="alive", now=later)
    kwargs = {"timeout_seconds": 120, "max_worker_crashes": 3}
    assert requeue_stale(session=session, now=START + timedelta(seconds=60), **kwargs) == []  # not silent yet
    assert requeue_stale(session=session, now=later, **kwargs) == [sid]
    submission = get_submission(session=session, submission_id=sid)
    assert submission.status == SubmissionStatus.queued and submission.worker_id is None
    assert "worker dead went silent (no heartbeat for 200 s)" in submission.events[-1].reason
    assert submission.attempts == 0  # a crash is not the submission's fault
    workers = {w.id: w for w in list_workers(session=session)}
    assert workers["dead"].stopped_at == later and workers["alive"].stopped_at is None
    # The dead worker's late result is discarded; the next claim scores it once.
    assert not finish_scored(session=session, submission_id=sid, lease_id=dead_lease, worker_id="dead",
                             result=SCORES, now=later)
    refused = get_submission(session=session, submission_id=sid).events[-1]
    assert (refused.worker_id, refused.from_status, refused.to_status) == ("dead", "queued", "queued")
    assert f"result from worker dead refused: its lease {dead_lease[:8]} no longer holds" in refused.reason
    claimed = claim_next_submission(session=session, worker_id="alive", now=later)
    assert claimed.id == sid and claimed.lease_id != dead_lease
    # Taken over: the dead worker's lease cannot finish, fail or give back the live worker's job.
    assert not finish_failed(session=session, submission_id=sid, lease_id=dead_lease, worker_id="dead", error="late",
                             max_attempts=3, backoff_seconds=1, now=later)
    assert not release(session=session, submission_id=sid, lease_id=dead_lease, worker_id="dead", reason="late",
                       now=later)
    assert "now held by worker alive" in get_submission(session=session, submission_id=sid).events[-1].reason
    assert finish_scored(session=session, submission_id=sid, lease_id=claimed.lease_id, worker_id="alive",
                         result=SCORES, now=later)
    assert statuses(get_submission(session=session, submission_id=sid)) == [
        (None, "queued"), ("queued", "scoring"), ("scoring", "queued"), ("queued", "queued"), ("queued", "scoring"),
        ("scoring", "scoring"), ("scoring", "scoring"), ("scoring", "scored")]


def test_worker_crashes_never_use_attempts_and_only_a_poison_pill_fails(queue):
    """Three workers dying on a valid submission used to fail it; now only `max_worker_crashes` distinct dead
    workers do, and the failure says why."""
    session, _, team, submit = queue
    [sid] = submit()
    now = START
    for crash in range(1, 5):
        register_worker(session=session, worker_id=f"w{crash}", device="cpu", now=now)
        assert claim_next_submission(session=session, worker_id=f"w{crash}", now=now).id == sid
        now += timedelta(seconds=300)
        assert requeue_stale(session=session, timeout_seconds=120, max_worker_crashes=4, now=now) == [sid]
        submission = get_submission(session=session, submission_id=sid)
        assert submission.attempts == 0
        assert crashed_workers(submission) == [f"w{i}" for i in range(1, crash + 1)]
        if crash < 4:
            assert submission.status == SubmissionStatus.queued and submission.not_before is None
    assert submission.status == SubmissionStatus.failed
    assert "poison pill" in submission.error and "4 distinct workers" in submission.error
    assert "poison pill" in submission.events[-1].reason
    assert quota_status(session=session, team=team, daily_limit=5, now=now).used == 0


def test_failures_retry_with_backoff_then_fail_without_using_quota(queue):
    session, _, team, submit = queue
    [sid] = submit()
    now = START
    for attempt in (1, 2):
        claimed = claim_next_submission(session=session, worker_id="w", now=now)
        assert claimed.attempts == attempt
        finish_failed(session=session, submission_id=sid, lease_id=claimed.lease_id, worker_id="w",
                      error="CUDA out of memory", max_attempts=3, backoff_seconds=10, now=now)
        submission = get_submission(session=session, submission_id=sid)
        assert submission.status == SubmissionStatus.queued
        assert submission.not_before == now + timedelta(seconds=10 * 2 ** (attempt - 1))
        assert claim_next_submission(session=session, worker_id="w", now=now) is None  # backing off
        now = submission.not_before
    lease_id = claim_next_submission(session=session, worker_id="w", now=now).lease_id
    finish_failed(session=session, submission_id=sid, lease_id=lease_id, worker_id="w", error="CUDA out of memory",
                  max_attempts=3, backoff_seconds=10, now=now)
    submission = get_submission(session=session, submission_id=sid)
    assert submission.status == SubmissionStatus.failed
    assert "CUDA out of memory" in submission.error and "gave up after 3 attempts" in submission.events[-1].reason
    assert quota_status(session=session, team=team, daily_limit=5, now=START).used == 0


def test_cancel_while_scoring_discards_the_result_and_frees_the_quota(queue):
    session, _, team, submit = queue
    [sid] = submit()
    lease_id = claim_next_submission(session=session, worker_id="w", now=START).lease_id
    assert quota_status(session=session, team=team, daily_limit=5, now=START).used == 1
    cancel(session=session, submission_id=sid, reason="wrong file", now=START)
    assert not finish_scored(session=session, submission_id=sid, lease_id=lease_id, worker_id="w", result=SCORES,
                             now=START)
    submission = get_submission(session=session, submission_id=sid)
    assert submission.status == SubmissionStatus.cancelled and submission.score_public is None
    assert "wrong file" in submission.events[-2].reason and "refused" in submission.events[-1].reason
    assert quota_status(session=session, team=team, daily_limit=5, now=START).used == 0
    with pytest.raises(Conflict):
        cancel(session=session, submission_id=sid)


def test_release_gives_the_job_back_without_using_an_attempt(queue):
    session, _, _, submit = queue
    [sid] = submit()
    lease_id = claim_next_submission(session=session, worker_id="w", now=START).lease_id
    assert release(session=session, submission_id=sid, lease_id=lease_id, worker_id="w", reason="SIGTERM", now=START)
    submission = get_submission(session=session, submission_id=sid)
    assert (submission.status, submission.attempts) == (SubmissionStatus.queued, 0)


def test_rescore_requeues_scored_submissions_without_touching_quota(queue):
    session, row, team, submit = queue
    ids = submit(3)
    for sid in ids:
        lease_id = claim_next_submission(session=session, worker_id="w", now=START).lease_id
        finish_scored(session=session, submission_id=sid, lease_id=lease_id, worker_id="w", result=SCORES, now=START)
    used = quota_status(session=session, team=team, daily_limit=5, now=START).used
    rescore(session=session, submission_id=ids[0], reason="new weights", now=START)
    assert rescore_competition(session=session, competition_id=row.id, now=START) == ids[1:]
    for sid in ids:
        submission = get_submission(session=session, submission_id=sid)
        assert (submission.status, submission.attempts) == (SubmissionStatus.queued, 0)
    assert "new weights" in get_submission(session=session, submission_id=ids[0]).events[-1].reason
    assert quota_status(session=session, team=team, daily_limit=5, now=START).used == used == 3


def test_team_rows_keep_working_after_commits(queue):
    # Service functions commit; objects loaded earlier must stay usable (expire_on_commit=False).
    session, _, team, submit = queue
    submit(1)
    assert isinstance(team, Team) and team.name == "t"


def test_progress_is_written_only_by_the_worker_holding_the_job_and_cleared_at_the_next_claim(queue, database):
    session, _, _, submit = queue
    (submission_id,) = submit()
    assert not record_progress(session=session, submission_id=submission_id, lease_id="none", progress="early")
    lease_id = claim_next_submission(session=session, worker_id="w1", now=START).lease_id
    assert record_progress(session=session, submission_id=submission_id, lease_id=lease_id,
                           progress="sample set 2 of 5: scoring")
    assert not record_progress(session=session, submission_id=submission_id, lease_id="another", progress="stolen")
    with database.sessionmaker() as fresh:
        assert get_submission(session=fresh, submission_id=submission_id).progress == "sample set 2 of 5: scoring"
    release(session=session, submission_id=submission_id, lease_id=lease_id, worker_id="w1", reason="worker stopped")
    claim_next_submission(session=session, worker_id="w2", now=START + timedelta(hours=1))
    with database.sessionmaker() as fresh:
        assert get_submission(session=fresh, submission_id=submission_id).progress is None  # not the last attempt's
