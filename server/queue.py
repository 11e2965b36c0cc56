"""The database is the queue: submissions move queued -> scoring -> scored | failed (or cancelled).

Every status change goes through `transition` (server/db/events.py, shared with the upload's first event), which
writes a SubmissionEvent with its reason. Claims are one atomic statement; workers register and heartbeat; a job
whose worker went silent is requeued by whichever worker notices first; attempts are bounded and retried with
exponential backoff.

A worker dying mid-job is not the submission's fault: it is requeued without using an attempt, and the crash is
recorded as an event (reason starting with WORKER_LOST, worker_id = the dead worker). Only a submission that has
been held by `max_worker_crashes` distinct dead workers is failed, as a poison pill, with that reason.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from server.db import (
    ReferenceBuild,
    Submission,
    SubmissionStatus,
    WorkerRow,
    begin_write,
    bump_board_version,
    transition,
    utcnow,
)
from server.db.models import ACTIVE_BUILD_STATUSES, ACTIVE_STATUSES
from server.errors import Conflict, NotFound
from submissions.results import SubmissionResult

S = SubmissionStatus
WORKER_LOST = "worker lost"


# -- workers -------------------------------------------------------------------------------------------------------


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def register_worker(*, session: Session, worker_id: str, device: str, now: datetime | None = None) -> WorkerRow:
    now = now or utcnow()
    begin_write(session)
    worker = WorkerRow(
        id=worker_id, host=socket.gethostname(), pid=os.getpid(), device=device, started_at=now, last_heartbeat=now
    )
    session.merge(worker)
    session.commit()
    return worker


def heartbeat(*, session: Session, worker_id: str, now: datetime | None = None) -> None:
    begin_write(session)
    # A worker marked stopped after a long silence that beats again is alive after all.
    session.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(last_heartbeat=now or utcnow(),
                                                                            stopped_at=None))
    session.commit()


def stop_worker(*, session: Session, worker_id: str, now: datetime | None = None) -> None:
    begin_write(session)
    stopped = {"stopped_at": now or utcnow(), "current_submission_id": None}
    session.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(**stopped))
    session.commit()


def list_workers(*, session: Session) -> list[WorkerRow]:
    return list(session.scalars(select(WorkerRow).order_by(WorkerRow.started_at.desc())))


# -- claiming and finishing ----------------------------------------------------------------------------------------


# A competition whose reference statistics are queued or being built holds its submissions back: they would
# otherwise each build the references inside their own job (server/reference_builds.py).
_references_building = (
    select(ReferenceBuild.id)
    .where(ReferenceBuild.competition_id == Submission.competition_id,
           ReferenceBuild.status.in_(ACTIVE_BUILD_STATUSES))
    .exists()
)


def claim_next_submission(*, session: Session, worker_id: str, now: datetime | None = None) -> Submission | None:
    """Atomically move the oldest claimable queued submission to `scoring` for this worker, or return None.

    One UPDATE ... WHERE id = (SELECT ... LIMIT 1) RETURNING: SQLite runs it under BEGIN IMMEDIATE (one writer at a
    time), PostgreSQL with FOR UPDATE SKIP LOCKED so concurrent workers never wait on or take the same row.
    """
    now = now or utcnow()
    begin_write(session)
    candidate = (
        select(Submission.id)
        .where(Submission.status == S.queued)
        .where((Submission.not_before.is_(None)) | (Submission.not_before <= now))
        .where(~_references_building)
        .order_by(Submission.created_at, Submission.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    claimed_id = session.execute(
        update(Submission)
        .where(Submission.id == candidate, Submission.status == S.queued)
        .values(
            status=S.scoring, worker_id=worker_id, attempts=Submission.attempts + 1, started_at=now, updated_at=now,
            not_before=None, error=None, progress=None,
        )
        .returning(Submission.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if claimed_id is None:
        session.commit()
        return None
    submission = lock_submission(session, claimed_id)
    assert submission is not None
    transition(session, submission, S.scoring, f"claimed by worker {worker_id} (attempt {submission.attempts})",
               now=now, worker_id=worker_id, previous=S.queued)
    session.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(current_submission_id=claimed_id))
    session.commit()
    return submission


def lock_submission(session: Session, submission_id: int) -> Submission | None:
    """Load a submission fresh, row-locked on PostgreSQL (only its own row, not the eagerly joined team)."""
    query = select(Submission).where(Submission.id == submission_id).with_for_update(of=Submission)
    return session.scalars(query.execution_options(populate_existing=True)).one_or_none()


def _held_by(session: Session, submission_id: int, worker_id: str) -> Submission | None:
    """The submission if this worker still holds it (it may have been cancelled or requeued meanwhile)."""
    submission = lock_submission(session, submission_id)
    if submission is None or submission.status != S.scoring or submission.worker_id != worker_id:
        return None
    return submission


def still_holds(*, session: Session, submission_id: int, worker_id: str) -> bool:
    """Whether the worker still holds the job (a read: the heartbeat asks it to stop work it has lost)."""
    status, holder = session.execute(select(Submission.status, Submission.worker_id)
                                     .where(Submission.id == submission_id)).one_or_none() or (None, None)
    return status == S.scoring and holder == worker_id


def record_progress(*, session: Session, submission_id: int, worker_id: str, progress: str) -> bool:
    """What the worker is doing on a submission it holds, for the status box; False if it no longer holds it."""
    held = session.execute(
        update(Submission)
        .where(Submission.id == submission_id, Submission.worker_id == worker_id, Submission.status == S.scoring)
        .values(progress=progress[:200])
        .returning(Submission.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    session.commit()
    return held is not None


def finish_scored(
    *, session: Session, submission_id: int, worker_id: str, result: SubmissionResult, now: datetime | None = None
) -> bool:
    """Store the result and mark the submission scored; False if this worker no longer holds it."""
    now = now or utcnow()
    begin_write(session)
    submission = _held_by(session, submission_id, worker_id)
    if submission is None:
        session.commit()
        return False
    for column, value in result.columns().items():
        setattr(submission, column, value)
    submission.finished_at = now
    seconds = (now - submission.started_at).total_seconds() if submission.started_at else 0.0
    # A penalized score is up to 10^15 x the FID: the history says what happened, the scores table the numbers.
    outcome = "penalized for memorization" if result.penalized else f"{result.score_public:.3f} (public)"
    transition(session, submission, S.scored, f"scored in {seconds:.1f} s: {outcome}", now=now, worker_id=worker_id)
    bump_board_version(session, submission.competition_id)
    session.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(current_submission_id=None))
    session.commit()
    return True


def retry_delay(attempts: int, base_seconds: float) -> timedelta:
    return timedelta(seconds=base_seconds * 2 ** max(0, attempts - 1))


def requeue_or_fail(
    submission: Submission, *, session: Session, reason: str, max_attempts: int, backoff_seconds: float,
    now: datetime, worker_id: str | None = None,
) -> None:
    """After a failed attempt: queue again with backoff while attempts remain, else fail with the reason."""
    submission.worker_id = None
    if submission.attempts < max_attempts:
        delay = retry_delay(submission.attempts, backoff_seconds)
        submission.not_before = now + delay
        transition(session, submission, S.queued,
                   f"{reason}; retrying in {delay.total_seconds():.0f} s (attempt {submission.attempts} of "
                   f"{max_attempts} used)", now=now, worker_id=worker_id)
    else:
        submission.error = reason
        submission.finished_at = now
        transition(session, submission, S.failed,
                   f"{reason}; gave up after {submission.attempts} attempts (this does not use your quota)",
                   now=now, worker_id=worker_id)


def finish_failed(
    *, session: Session, submission_id: int, worker_id: str, error: str, max_attempts: int,
    backoff_seconds: float, now: datetime | None = None,
) -> bool:
    now = now or utcnow()
    begin_write(session)
    submission = _held_by(session, submission_id, worker_id)
    if submission is not None:
        requeue_or_fail(submission, session=session, reason=f"scoring error: {error}", max_attempts=max_attempts,
                        backoff_seconds=backoff_seconds, now=now, worker_id=worker_id)
    session.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(current_submission_id=None))
    session.commit()
    return submission is not None


def release(*, session: Session, submission_id: int, worker_id: str, reason: str, now: datetime | None = None,
            delay: timedelta | None = None) -> bool:
    """Give a job back to the queue without using up an attempt (a worker shutting down), claimable again after
    `delay` when given."""
    now = now or utcnow()
    begin_write(session)
    submission = _held_by(session, submission_id, worker_id)
    if submission is not None:
        submission.attempts = max(0, submission.attempts - 1)
        submission.worker_id = None
        submission.not_before = now + delay if delay else None
        transition(session, submission, S.queued, reason, now=now, worker_id=worker_id)
    session.commit()
    return submission is not None


def crashed_workers(submission: Submission) -> list[str]:
    """The distinct workers that died while holding this submission, oldest first (from its event history)."""
    ids = [e.worker_id for e in submission.events if e.reason.startswith(WORKER_LOST) and e.worker_id]
    return list(dict.fromkeys(ids))


def requeue_after_crash(submission: Submission, *, session: Session, reason: str, max_worker_crashes: int,
                        now: datetime) -> None:
    """A worker died holding the job: back to the queue at once without using an attempt, unless the job has now
    crashed `max_worker_crashes` distinct workers (a poison pill), which fails it."""
    dead = submission.worker_id
    submission.worker_id = None
    submission.attempts = max(0, submission.attempts - 1)
    crashes = len(set(crashed_workers(submission)) | ({dead} - {None}))
    if crashes < max_worker_crashes:
        transition(session, submission, S.queued,
                   f"{WORKER_LOST}: {reason}; back in the queue (worker crash {crashes} of {max_worker_crashes} "
                   "allowed; crashes do not use attempts)", now=now, worker_id=dead)
        return
    submission.error = (f"poison pill: scoring this submission ended {crashes} distinct workers without a result; "
                        "the organizer can look at the workers' logs and rescore it")
    submission.finished_at = now
    transition(session, submission, S.failed, f"{WORKER_LOST}: {reason}; {submission.error} (this does not use your "
               "quota)", now=now, worker_id=dead)


def requeue_stale(
    *, session: Session, timeout_seconds: float, max_worker_crashes: int, now: datetime | None = None,
) -> list[int]:
    """Requeue jobs held by workers whose heartbeat is older than the timeout, and mark those workers stopped.

    Returns the requeued (or, for poison pills, failed) submission ids.
    """
    now = now or utcnow()
    cutoff = now - timedelta(seconds=timeout_seconds)
    begin_write(session)
    silent = {w.id: w for w in session.scalars(select(WorkerRow).where(WorkerRow.last_heartbeat < cutoff))}
    held = session.scalars(
        select(Submission).where(Submission.status == S.scoring).with_for_update(skip_locked=True, of=Submission)
    ).all()
    requeued = []
    for submission in held:
        worker = silent.get(submission.worker_id or "")
        unknown = submission.worker_id is not None and session.get(WorkerRow, submission.worker_id) is None
        if worker is None and not unknown:
            continue
        silent_for = (now - worker.last_heartbeat).total_seconds() if worker else timeout_seconds
        requeue_after_crash(submission, session=session, max_worker_crashes=max_worker_crashes, now=now,
                            reason=f"worker {submission.worker_id} went silent (no heartbeat for {silent_for:.0f} s)")
        requeued.append(submission.id)
    session.execute(update(WorkerRow).where(WorkerRow.id.in_(silent), WorkerRow.stopped_at.is_(None))
                    .values(stopped_at=now, current_submission_id=None))
    session.commit()
    return requeued


def has_pending_work(*, session: Session) -> bool:
    """Whether any submission still waits (a retry delay included) or is being scored, or references are built."""
    waiting = select(Submission.id).where(Submission.status.in_(ACTIVE_STATUSES)).limit(1)
    building = select(ReferenceBuild.id).where(ReferenceBuild.status.in_(ACTIVE_BUILD_STATUSES)).limit(1)
    return session.scalar(waiting) is not None or session.scalar(building) is not None


# -- organizer actions ---------------------------------------------------------------------------------------------


def _get(session: Session, submission_id: int) -> Submission:
    submission = lock_submission(session, submission_id)
    if submission is None:
        raise NotFound(f"Submission {submission_id} does not exist.")
    return submission


def rescore(*, session: Session, submission_id: int, reason: str = "", now: datetime | None = None) -> Submission:
    """Queue a scored or failed submission again (after a scorer or reference change); quotas are untouched."""
    now = now or utcnow()
    begin_write(session)
    submission = _get(session, submission_id)
    if submission.status in ACTIVE_STATUSES:
        session.commit()
        return submission
    submission.attempts = 0
    submission.not_before = None
    submission.error = None
    transition(session, submission, S.queued, f"rescore requested by the organizer{': ' + reason if reason else ''}",
               now=now)
    bump_board_version(session, submission.competition_id)
    session.commit()
    return submission


def rescore_competition(
    *, session: Session, competition_id: int, reason: str = "", now: datetime | None = None
) -> list[int]:
    """Queue every scored or failed submission of a competition again."""
    ids = list(session.scalars(
        select(Submission.id)
        .where(Submission.competition_id == competition_id, Submission.status.in_([S.scored, S.failed]))
        .order_by(Submission.id)
    ))
    for submission_id in ids:
        rescore(session=session, submission_id=submission_id, reason=reason, now=now)
    return ids


def cancel(*, session: Session, submission_id: int, reason: str = "", now: datetime | None = None) -> Submission:
    """Stop a queued or scoring submission; a worker still scoring it will find it gone and discard its result."""
    now = now or utcnow()
    begin_write(session)
    submission = _get(session, submission_id)
    if submission.status not in ACTIVE_STATUSES:
        session.commit()
        raise Conflict(
            f"Submission {submission_id} is {submission.status}; only queued or scoring submissions can be cancelled.",
            detail={"status": submission.status},
        )
    submission.finished_at = now
    transition(session, submission, S.cancelled,
               f"cancelled by the organizer{': ' + reason if reason else ''} (this does not use the team's quota)",
               now=now)
    session.commit()
    return submission


# -- queue state for the pages -------------------------------------------------------------------------------------


def queue_position(*, session: Session, submission: Submission) -> int:
    """1 for the next submission a worker will claim; counts queued submissions claimed before this one."""
    ahead = session.scalar(
        select(func.count(Submission.id)).where(
            Submission.status == S.queued,
            (Submission.created_at < submission.created_at)
            | ((Submission.created_at == submission.created_at) & (Submission.id < submission.id)),
        )
    )
    return int(ahead or 0) + 1
