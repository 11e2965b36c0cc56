"""How a worker holds a job: workers, claims, leases and requeues, one mechanism for every kind of job.

A job (a submission to score, a reference build) is a row that moves `queued -> running -> finished`; each change
is a job event (server/db/events.py). Workers register and heartbeat. A claim is one atomic statement that moves
the oldest claimable queued row to running for one worker and gives it a new **lease id**, stored on the row. Every
later call about that job presents the lease: progress, finish, release. Once the lease is gone (the job was
cancelled, or requeued because its worker went silent, and maybe claimed again under a new lease), the call is
refused: it returns False and a refused finish or release is recorded as an event, so a result from a holder whose
lease expired never overwrites the current holder's.

A worker that dies holding a job is not the job's fault: whichever worker notices the silence first (no heartbeat
for `worker_timeout_seconds`) puts the job back in the queue without using an attempt, with an event whose reason
starts with WORKER_LOST and whose worker_id is the dead worker. A job that has ended `max_worker_crashes` distinct
workers fails as a poison pill. This module does not commit: the job modules (queue.py, reference_builds.py) wrap
its steps in their write transactions.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.db import ReferenceBuild, ReferenceBuildStatus, Submission, SubmissionStatus, WorkerRow, begin_write, utcnow
from server.db.events import refusal, transition

WORKER_LOST = "worker lost"

Job = Submission | ReferenceBuild


@dataclass(frozen=True)
class JobKind:
    """What differs between kinds of job; everything else about holding one is the same."""

    name: str  # "submission", "reference build": how events and errors name the job
    table: type[Submission] | type[ReferenceBuild]
    queued: str
    running: str
    failed: str
    poison_advice: str  # what the organizer can do with a poison pill
    failure_column: str  # where the poison pill's explanation is stored


SUBMISSIONS = JobKind("submission", Submission, SubmissionStatus.queued, SubmissionStatus.scoring,
                      SubmissionStatus.failed, failure_column="error",
                      poison_advice="the organizer can look at the workers' logs and rescore it")
BUILDS = JobKind("reference build", ReferenceBuild, ReferenceBuildStatus.queued, ReferenceBuildStatus.building,
                 ReferenceBuildStatus.failed, failure_column="outcome",
                 poison_advice="see the workers' logs, then build again")


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


# -- claiming and holding ------------------------------------------------------------------------------------------


def claim(session: Session, kind: JobKind, *, worker_id: str, claimable: list[Any], order_by: list[Any],
          describe: Callable[[Any], str], now: datetime, **values: Any) -> Any:
    """Move the oldest claimable queued job of this kind to running for the worker, under a new lease; None when
    there is none. The caller has begun the write and commits.

    One UPDATE ... WHERE id = (SELECT ... LIMIT 1) RETURNING: SQLite runs it under BEGIN IMMEDIATE (one writer at a
    time), PostgreSQL with FOR UPDATE SKIP LOCKED so concurrent workers never wait on or take the same row.
    `describe(job)` words the claim's event; `values` are further columns the claim sets.
    """
    table = kind.table
    candidate = (select(table.id).where(table.status == kind.queued, *claimable).order_by(*order_by).limit(1)
                 .with_for_update(skip_locked=True).scalar_subquery())
    lease_id = uuid.uuid4().hex
    claimed_id = session.execute(
        update(table).where(table.id == candidate, table.status == kind.queued)
        .values(status=kind.running, worker_id=worker_id, lease_id=lease_id, started_at=now, updated_at=now, **values)
        .returning(table.id).execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if claimed_id is None:
        return None
    job = lock(session, kind, claimed_id)
    transition(session, job, kind.running, f"{describe(job)}, lease {lease_id[:8]}", now=now, worker_id=worker_id,
               previous=kind.queued)
    return job


def lock(session: Session, kind: JobKind, job_id: int) -> Any:
    """Load a job fresh, row-locked on PostgreSQL (only its own row, not eagerly joined ones)."""
    query = select(kind.table).where(kind.table.id == job_id).with_for_update(of=kind.table)
    return session.scalars(query.execution_options(populate_existing=True)).one_or_none()


def holds(job: Job | None, kind: JobKind, lease_id: str) -> bool:
    return job is not None and job.status == kind.running and job.lease_id == lease_id


def held_or_refused(session: Session, kind: JobKind, job_id: int, *, lease_id: str, worker_id: str, call: str,
                    now: datetime) -> Any:
    """The locked job if this lease still holds it; otherwise None, and the refused `call` ("result",
    "release") is recorded on the job, so its history shows the late worker and what happened to its work."""
    job = lock(session, kind, job_id)
    if holds(job, kind, lease_id):
        return job
    if job is not None:
        now_held = f", now held by worker {job.worker_id}" if job.status == kind.running else ""
        refusal(job, f"{call} from worker {worker_id} refused: its lease {lease_id[:8]} no longer holds this "
                f"{kind.name} (it is {job.status}{now_held})", now=now, worker_id=worker_id)
    return None


def still_holds_lease(session: Session, kind: JobKind, job_id: int, lease_id: str) -> bool:
    """A read (no lock): the heartbeat asks it to stop work whose lease is gone."""
    status, held = session.execute(select(kind.table.status, kind.table.lease_id)
                                   .where(kind.table.id == job_id)).one_or_none() or (None, None)
    return status == kind.running and held == lease_id


def lease_holder(job: Job, kind: JobKind, lease_id: str) -> str | None:
    """The worker a lease was given to, from the job's claim events (each names its lease), newest first; None
    when no claim of this job gave that lease (a remote worker may only name jobs its own token's workers held)."""
    mark = f", lease {lease_id[:8]}"
    claims = [e for e in job.events if e.to_status == kind.running and e.reason.endswith(mark)]
    return claims[-1].worker_id if claims else None


def lease_of(job: Job) -> str:
    """The lease of a job this worker has just claimed (every claim sets one)."""
    if job.lease_id is None:
        raise ValueError(f"job {job.id} is not held under a lease")
    return job.lease_id


def end_lease(job: Job, kind: JobKind) -> None:
    """The job is no longer held; the attempt its claim used is given back (nothing the job did used it)."""
    job.worker_id = None
    job.lease_id = None
    if isinstance(job, Submission):  # a claim uses one of a submission's attempts; a build has none
        job.attempts = max(0, job.attempts - 1)


# -- giving jobs back ----------------------------------------------------------------------------------------------


def give_back(session: Session, kind: JobKind, job: Job, *, reason: str, worker_id: str, now: datetime) -> None:
    """Back to the queue without using an attempt (a worker shutting down, or waiting for a fixed config)."""
    end_lease(job, kind)
    transition(session, job, kind.queued, reason, now=now, worker_id=worker_id)


def crashed_workers(job: Job) -> list[str]:
    """The distinct workers that died while holding this job, oldest first (from its event history)."""
    ids = [e.worker_id for e in job.events if e.reason.startswith(WORKER_LOST) and e.worker_id]
    return list(dict.fromkeys(ids))


def requeue_after_crash(session: Session, kind: JobKind, job: Job, *, reason: str, max_worker_crashes: int,
                        now: datetime) -> None:
    """A worker died holding the job: back to the queue at once without using an attempt, unless the job has now
    ended `max_worker_crashes` distinct workers (a poison pill), which fails it."""
    dead = job.worker_id
    crashes = len(set(crashed_workers(job)) | ({dead} - {None}))
    end_lease(job, kind)
    if crashes < max_worker_crashes:
        transition(session, job, kind.queued,
                   f"{WORKER_LOST}: {reason}; back in the queue (worker crash {crashes} of {max_worker_crashes} "
                   "allowed; crashes do not use attempts)", now=now, worker_id=dead)
        return
    pill = (f"poison pill: this {kind.name} ended {crashes} distinct workers without a result; {kind.poison_advice}")
    setattr(job, kind.failure_column, pill)
    job.finished_at = now
    quota = " (this does not use your quota)" if kind is SUBMISSIONS else ""
    transition(session, job, kind.failed, f"{WORKER_LOST}: {reason}; {pill}{quota}", now=now, worker_id=dead)


def requeue_silent(session: Session, kind: JobKind, *, timeout_seconds: float, max_worker_crashes: int,
                   now: datetime) -> list[int]:
    """Requeue (or fail, for poison pills) the running jobs of this kind whose worker has been silent for
    `timeout_seconds` or is unknown; returns their ids. The caller has begun the write and commits."""
    cutoff = now - timedelta(seconds=timeout_seconds)
    held = cast("Sequence[Job]", session.scalars(select(kind.table).where(kind.table.status == kind.running)
                                                 .with_for_update(skip_locked=True, of=kind.table)).all())
    requeued = []
    for job in held:
        worker = session.get(WorkerRow, job.worker_id) if job.worker_id else None
        if worker is not None and worker.last_heartbeat >= cutoff:
            continue
        silent_for = (now - worker.last_heartbeat).total_seconds() if worker else timeout_seconds
        requeue_after_crash(session, kind, job, max_worker_crashes=max_worker_crashes, now=now,
                            reason=f"worker {job.worker_id} went silent (no heartbeat for {silent_for:.0f} s)")
        requeued.append(job.id)
    return requeued


def mark_silent_workers_stopped(session: Session, *, timeout_seconds: float, now: datetime) -> None:
    cutoff = now - timedelta(seconds=timeout_seconds)
    session.execute(update(WorkerRow).where(WorkerRow.last_heartbeat < cutoff, WorkerRow.stopped_at.is_(None))
                    .values(stopped_at=now, current_submission_id=None))
