"""The one writer of submission status events: every status change, the first `None -> queued` included."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from server.db.models import Submission, SubmissionEvent, SubmissionStatus


def transition(
    session: Session,
    submission: Submission,
    to: SubmissionStatus,
    reason: str,
    *,
    now: datetime,
    worker_id: str | None = None,
    previous: SubmissionStatus | None = None,
) -> None:
    """Change a submission's status and record why (the caller commits).

    `previous`: the status before, when one atomic UPDATE has already changed it (the claim); otherwise the
    submission's current status (None for a new submission).
    """
    # Appended through the relationship so a submission already loaded in this session shows it too.
    submission.events.append(
        SubmissionEvent(from_status=previous or submission.status, to_status=to, reason=reason, worker_id=worker_id,
                        created_at=now)
    )
    submission.status = to
    submission.updated_at = now


def note(session: Session, submission: Submission, reason: str, *, now: datetime, worker_id: str | None = None) -> None:
    """Record something that happened to a submission without changing its status (a refused remote result), so
    its history says why (the caller commits)."""
    submission.events.append(
        SubmissionEvent(from_status=submission.status, to_status=submission.status, reason=reason,
                        worker_id=worker_id, created_at=now)
    )
