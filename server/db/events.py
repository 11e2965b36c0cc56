"""The one writer of job events (submissions and reference builds alike): every status change, the first
`None -> queued` included, and the results a job refused (`refusal`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from server.db.models import JobEvent, ReferenceBuild, Submission

Job = Submission | ReferenceBuild


def transition(
    session: Session,
    job: Job,
    to: str,
    reason: str,
    *,
    now: datetime,
    worker_id: str | None = None,
    previous: str | None = None,
) -> None:
    """Change a job's status and record why (the caller commits).

    `previous`: the status before, when one atomic UPDATE has already changed it (the claim); otherwise the
    job's current status (None for a new job).
    """
    # Appended through the relationship so a job already loaded in this session shows it too.
    job.events.append(JobEvent(from_status=previous or job.status, to_status=to, reason=reason, worker_id=worker_id,
                               created_at=now))
    job.status = to
    job.updated_at = now


def refusal(job: Job, reason: str, *, now: datetime, worker_id: str | None) -> None:
    """Record a call the job refused (a result from a worker whose lease it no longer holds); the status stays."""
    job.events.append(JobEvent(from_status=job.status, to_status=job.status, reason=reason, worker_id=worker_id,
                               created_at=now))
