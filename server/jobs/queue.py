"""The database is the queue: submissions move queued -> scoring -> scored | failed (or cancelled).

Every status change goes through `transition` (server/db/events.py), which writes a job event with its reason.
Claims, leases and requeues are server/jobs/leases.py's, shared with reference builds: a claim gives the
submission a new lease id, which `record_progress`, `finish_scored`, `finish_failed` and `release` must present;
attempts are bounded and retried with exponential backoff; a worker dying mid-job uses no attempt, and a submission
that ended `max_worker_crashes` distinct workers fails as a poison pill.
"""

from __future__ import annotations

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
from server.jobs.leases import (
    SUBMISSIONS,
    claim,
    give_back,
    held_or_refused,
    lock,
    mark_silent_workers_stopped,
    requeue_silent,
    still_holds_lease,
)
from submissions.results import SubmissionResult

S = SubmissionStatus


# -- claiming and finishing ----------------------------------------------------------------------------------------


# A competition whose reference statistics are queued or being built holds its submissions back: they would
# otherwise each build the references inside their own job (server/jobs/reference_builds.py).
_references_building = (
    select(ReferenceBuild.id)
    .where(ReferenceBuild.competition_id == Submission.competition_id,
           ReferenceBuild.status.in_(ACTIVE_BUILD_STATUSES))
    .exists()
)


def claim_next_submission(*, session: Session, worker_id: str, now: datetime | None = None) -> Submission | None:
    """Move the oldest claimable queued submission to `scoring` for this worker under a new lease (its
    `lease_id`), or return None."""
    now = now or utcnow()
    begin_write(session)
    submission = claim(
        session, SUBMISSIONS, worker_id=worker_id, now=now,
        claimable=[(Submission.not_before.is_(None)) | (Submission.not_before <= now), ~_references_building],
        order_by=[Submission.created_at, Submission.id],
        describe=lambda s: f"claimed by worker {worker_id} (attempt {s.attempts})",
        attempts=Submission.attempts + 1, not_before=None, error=None, progress=None,
    )
    if submission is not None:
        _set_current(session, worker_id, submission.id)
    session.commit()
    return submission


def lock_submission(session: Session, submission_id: int) -> Submission | None:
    """Load a submission fresh, row-locked on PostgreSQL (only its own row, not the eagerly joined team)."""
    return lock(session, SUBMISSIONS, submission_id)


def still_holds(*, session: Session, submission_id: int, lease_id: str) -> bool:
    """Whether the lease still holds the job (a read: the heartbeat asks it to stop work it has lost)."""
    return still_holds_lease(session, SUBMISSIONS, submission_id, lease_id)


def _set_current(session: Session, worker_id: str, submission_id: int | None) -> None:
    session.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(current_submission_id=submission_id))


def record_progress(*, session: Session, submission_id: int, lease_id: str, progress: str) -> bool:
    """What the worker is doing on a submission it holds, for the status box; False if its lease is gone."""
    held = session.execute(
        update(Submission)
        .where(Submission.id == submission_id, Submission.lease_id == lease_id, Submission.status == S.scoring)
        .values(progress=progress[:200])
        .returning(Submission.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    session.commit()
    return held is not None


def finish_scored(
    *, session: Session, submission_id: int, lease_id: str, worker_id: str, result: SubmissionResult,
    now: datetime | None = None,
) -> bool:
    """Store the result and mark the submission scored; False (and the refusal recorded) if the lease is gone."""
    now = now or utcnow()
    begin_write(session)
    submission = held_or_refused(session, SUBMISSIONS, submission_id, lease_id=lease_id, worker_id=worker_id,
                                 call="result", now=now)
    if submission is None:
        session.commit()
        return False
    submission.lease_id = None
    for column, value in result.columns().items():
        setattr(submission, column, value)
    submission.finished_at = now
    seconds = (now - submission.started_at).total_seconds() if submission.started_at else 0.0
    # A penalized score is up to 10^15 x the FID: the history says what happened, the scores table the numbers.
    outcome = "penalized for memorization" if result.penalized else f"{result.score_public:.3f} (public)"
    transition(session, submission, S.scored, f"scored in {seconds:.1f} s: {outcome}", now=now, worker_id=worker_id)
    bump_board_version(session, submission.competition_id)
    _set_current(session, worker_id, None)
    session.commit()
    return True


def retry_delay(attempts: int, base_seconds: float) -> timedelta:
    return timedelta(seconds=base_seconds * 2 ** max(0, attempts - 1))


def requeue_or_fail(
    submission: Submission, *, session: Session, reason: str, max_attempts: int, backoff_seconds: float,
    now: datetime, worker_id: str | None = None,
) -> None:
    """After a failed attempt: queue again with backoff while attempts remain, else fail with the reason."""
    submission.worker_id = submission.lease_id = None
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
    *, session: Session, submission_id: int, lease_id: str, worker_id: str, error: str, max_attempts: int,
    backoff_seconds: float, now: datetime | None = None,
) -> bool:
    """A failed attempt: requeue with backoff or fail (`requeue_or_fail`); False (refusal recorded) if the lease
    is gone."""
    now = now or utcnow()
    begin_write(session)
    submission = held_or_refused(session, SUBMISSIONS, submission_id, lease_id=lease_id, worker_id=worker_id,
                                 call="failure report", now=now)
    if submission is not None:
        requeue_or_fail(submission, session=session, reason=f"scoring error: {error}", max_attempts=max_attempts,
                        backoff_seconds=backoff_seconds, now=now, worker_id=worker_id)
    _set_current(session, worker_id, None)
    session.commit()
    return submission is not None


def release(*, session: Session, submission_id: int, lease_id: str, worker_id: str, reason: str,
            now: datetime | None = None, delay: timedelta | None = None) -> bool:
    """Give a job back to the queue without using up an attempt (a worker shutting down), claimable again after
    `delay` when given; False (refusal recorded) if the lease is gone."""
    now = now or utcnow()
    begin_write(session)
    submission = held_or_refused(session, SUBMISSIONS, submission_id, lease_id=lease_id, worker_id=worker_id,
                                 call="release", now=now)
    if submission is not None:
        submission.not_before = now + delay if delay else None
        give_back(session, SUBMISSIONS, submission, reason=reason, worker_id=worker_id, now=now)
        _set_current(session, worker_id, None)  # the worker holds it no more (the console's "current job")
    session.commit()
    return submission is not None


def requeue_stale(
    *, session: Session, timeout_seconds: float, max_worker_crashes: int, now: datetime | None = None,
) -> list[int]:
    """Requeue submissions held by workers whose heartbeat is older than the timeout (or unknown), and mark those
    workers stopped. Returns the requeued (or, for poison pills, failed) submission ids."""
    now = now or utcnow()
    begin_write(session)
    requeued = requeue_silent(session, SUBMISSIONS, timeout_seconds=timeout_seconds,
                              max_worker_crashes=max_worker_crashes, now=now)
    mark_silent_workers_stopped(session, timeout_seconds=timeout_seconds, now=now)
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
