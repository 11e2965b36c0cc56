"""Worker tokens and the organizer's view of workers: a remote worker's credential (made, listed and revoked by
the organizer from the console's Workers tab or `arena admin workers`; stored hashed like a team token), and per
worker the jobs it scored and their mean time, with the queue's wait."""

from __future__ import annotations

import hmac
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db import (
    ReferenceBuild,
    ReferenceBuildStatus,
    Submission,
    SubmissionStatus,
    WorkerRow,
    WorkerToken,
    begin_write,
    utcnow,
)
from server.db.crud import add_unique, hash_token
from server.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from server.jobs.leases import stop_worker
from server.jobs.queue import release
from server.jobs.reference_builds import release_build

WORKER_TOKEN_PREFIX = "arenaw_"  # never "arena_": a worker token is not a team token, and the reverse
WORKER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")


def create_worker_token(*, session: Session, name: str, now: datetime | None = None) -> tuple[WorkerToken, str]:
    """A new worker token named `name`; only its hash is stored, so show the token now."""
    name = worker_name(name)
    token = WORKER_TOKEN_PREFIX + secrets.token_urlsafe(32)
    begin_write(session)
    row = WorkerToken(name=name, token_hash=hash_token(token), created_at=now or utcnow())
    add_unique(session, row, Conflict(f"A worker token named '{name}' exists already. Pick another name, or revoke "
                                      "that one.", detail={"name": name}))
    return row, token


def token_owns(session: Session, token: WorkerToken, worker_id: str) -> bool:
    """Whether the worker registered with this token (a token's workers name only their own jobs)."""
    worker = session.get(WorkerRow, worker_id)
    return worker is not None and worker.token_id == token.id


def worker_name(name: str) -> str:
    """A token's name starts its workers' ids and log lines: letters, digits, dot, dash, underscore."""
    if not WORKER_NAME.fullmatch(name):
        raise InvalidInput(f"Worker name {name!r}: use 1-40 letters, digits, '.', '-' or '_' (e.g. lab-gpu-1).")
    return name


def list_worker_tokens(*, session: Session) -> list[WorkerToken]:
    return list(session.scalars(select(WorkerToken).order_by(WorkerToken.id)))


def revoke_worker_token(*, session: Session, name: str, now: datetime | None = None) -> list[int]:
    """Revoke a token: its workers can do nothing more, and the jobs they hold (submissions, reference builds) go
    back to the queue now (no attempt used). Returns the submissions' ids."""
    now = now or utcnow()
    row = session.scalar(select(WorkerToken).where(WorkerToken.name == name))
    if row is None:
        raise NotFound(f"No worker token named '{name}' (see `arena admin workers list`).")
    begin_write(session)
    row.revoked_at = row.revoked_at or now
    session.commit()
    held = session.execute(select(Submission.id, Submission.lease_id, WorkerRow.id)
                           .join(WorkerRow, WorkerRow.id == Submission.worker_id)
                           .where(WorkerRow.token_id == row.id, Submission.status == SubmissionStatus.scoring)).all()
    reason = f"worker token '{name}' revoked by the organizer; back in the queue"
    released = [job_id for job_id, lease_id, worker_id in held
                if lease_id and release(session=session, submission_id=job_id, lease_id=lease_id, worker_id=worker_id,
                                        reason=reason, now=now)]
    builds = session.execute(select(ReferenceBuild.id, ReferenceBuild.lease_id, WorkerRow.id)
                             .join(WorkerRow, WorkerRow.id == ReferenceBuild.worker_id)
                             .where(WorkerRow.token_id == row.id,
                                    ReferenceBuild.status == ReferenceBuildStatus.building)).all()
    for build_id, lease_id, worker_id in builds:
        if lease_id:
            release_build(session=session, build_id=build_id, lease_id=lease_id, worker_id=worker_id, now=now)
    for worker_id in session.scalars(select(WorkerRow.id).where(WorkerRow.token_id == row.id,
                                                                WorkerRow.stopped_at.is_(None))).all():
        stop_worker(session=session, worker_id=worker_id, now=now)
    return released


def authenticate_worker(*, session: Session, token: str) -> WorkerToken:
    """The worker token's row; 401 for an unknown token, 403 for a revoked one or a team's token."""
    if not token.startswith(WORKER_TOKEN_PREFIX):
        raise Forbidden("Worker route: send a worker token (`arena admin workers create NAME` prints one); team and "
                        "organizer tokens cannot claim jobs.")
    row = session.scalar(select(WorkerToken).where(WorkerToken.token_hash == hash_token(token)))
    session.commit()
    if row is None or not hmac.compare_digest(row.token_hash, hash_token(token)):
        raise Unauthorized("This worker token is not valid (mistyped?). Ask the organizer for one: `arena admin "
                           "workers create NAME`.", headers={"WWW-Authenticate": "Bearer"})
    if row.revoked_at is not None:
        raise Forbidden(f"The worker token '{row.name}' was revoked by the organizer; ask for a new one.")
    return row



@dataclass(frozen=True)
class WorkerRecord:
    """One worker on the console: jobs it scored and their mean time from claim to result."""

    done: int
    mean_seconds: float | None


def worker_records(*, session: Session) -> dict[str, WorkerRecord]:
    """Per worker id, over the submissions it scored (a scored submission keeps its worker's id)."""
    rows = session.execute(select(Submission.worker_id, Submission.started_at, Submission.finished_at)
                           .where(Submission.status == "scored", Submission.worker_id.is_not(None))).all()
    seconds: dict[str, list[float]] = {}
    for worker_id, started, finished in rows:
        seconds.setdefault(str(worker_id), []).append((finished - started).total_seconds() if started and finished
                                                 else math.nan)
    return {worker_id: WorkerRecord(done=len(times), mean_seconds=_mean_finite(times))
            for worker_id, times in seconds.items()}


def _mean_finite(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def queue_wait_seconds(*, session: Session, now: datetime) -> float | None:
    """How long the oldest queued submission has waited (None: nothing queued)."""
    oldest = session.scalar(select(Submission.created_at).where(Submission.status == "queued")
                            .order_by(Submission.created_at).limit(1))
    return (now - oldest).total_seconds() if oldest is not None else None
