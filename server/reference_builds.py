"""Reference statistics built by a scoring worker, never by the web process, with progress the console shows.

A build is a row of `reference_builds`, queued by the console (right after a competition is prepared, or the
organizer's "Build reference statistics" button), by `arena admin references SLUG`, or by a worker that finds its
engine's cache missing or stale at start-up (new weights, another engine). Workers claim builds before submissions,
in one statement as they claim submissions; a competition's submissions wait while it has a queued or running build
(`queue.claim_next_submission`), so teams may upload meanwhile. The worker reports images done per class every
`reference_worker.PROGRESS_SECONDS` (and tqdm in its log); a build whose worker stops heartbeating is claimed
again, and one that ended `max_worker_crashes` workers fails. This module only reads and writes rows (the web tier
imports it); the build itself, with the scoring engine, is server/reference_worker.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.competition import Competition, load_competition
from server.db import CompetitionRow, ReferenceBuild, WorkerRow, begin_write, utcnow
from server.db.models import ACTIVE_BUILD_STATUSES
from server.db.models import ReferenceBuildStatus as B

# -- queueing and reading (the web process, the CLI, a worker at start-up) -----------------------------------------


def class_totals(competition: Competition) -> dict[str, dict[str, int]]:
    """{class: {"done": 0, "total": images}}: every train and test image goes through the network once."""
    return {cls: {"done": 0, "total": len(competition.files(cls, "train", "public", "private"))}
            for cls in competition.classes}


def active_build(*, session: Session, competition: CompetitionRow) -> ReferenceBuild | None:
    return session.scalar(select(ReferenceBuild).where(ReferenceBuild.competition_id == competition.id,
                                                       ReferenceBuild.status.in_(ACTIVE_BUILD_STATUSES)))


def percent_done(build: ReferenceBuild) -> int:
    """How far a build is, in whole percent of the images through the network (the pages show it)."""
    return int(100 * build.images_done / build.images_total) if build.images_total else 0


def builds_by_worker(*, session: Session) -> dict[str, ReferenceBuild]:
    """The build each worker is running now, by worker id (the organizer's worker table)."""
    running = session.scalars(select(ReferenceBuild).where(ReferenceBuild.status == B.building))
    return {build.worker_id: build for build in running if build.worker_id}


def request_build(*, session: Session, competition: CompetitionRow, reason: str,
                  now: datetime | None = None) -> ReferenceBuild:
    """Queue a build for a worker; a queued or running one is returned instead of a second.

    The database decides between callers racing here (web replicas, workers starting together): a partial unique
    index allows one active build per competition, so the loser's insert fails and it returns the winner's row.
    """
    now = now or utcnow()
    classes = class_totals(load_competition(competition))
    begin_write(session)
    build = active_build(session=session, competition=competition)
    if build is not None:
        session.commit()
        return build
    build = ReferenceBuild(competition_id=competition.id, status=B.queued, reason=reason, images_done=0,
                           images_total=sum(c["total"] for c in classes.values()), crashes=0,
                           progress={"classes": classes, "stage": "waiting for a worker"}, created_at=now,
                           updated_at=now)
    session.add(build)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        winner = active_build(session=session, competition=competition)
        session.commit()
        if winner is None:  # the winner finished in between: ask again
            return request_build(session=session, competition=competition, reason=reason, now=now)
        return winner
    return build


def request_first_build(*, session: Session, competition: CompetitionRow, reason: str,
                        now: datetime | None = None) -> ReferenceBuild:
    """The competition's latest build, queueing one only if it never had any (safe to call on every page view)."""
    return latest_build(session=session, competition=competition) or request_build(
        session=session, competition=competition, reason=reason, now=now)


def latest_build(*, session: Session, competition: CompetitionRow) -> ReferenceBuild | None:
    return next(iter(recent_builds(session=session, competition=competition, limit=1)), None)


def recent_builds(*, session: Session, competition: CompetitionRow, limit: int = 5) -> list[ReferenceBuild]:
    query = (select(ReferenceBuild).where(ReferenceBuild.competition_id == competition.id)
             .order_by(ReferenceBuild.id.desc()).limit(limit))
    return list(session.scalars(query))


# -- a worker's side -------------------------------------------------------------------------------------------


def claim_next_build(*, session: Session, worker_id: str, engine: str,
                     now: datetime | None = None) -> ReferenceBuild | None:
    """Atomically move the oldest queued build to `building` for this worker (as `claim_next_submission`)."""
    now = now or utcnow()
    begin_write(session)
    candidate = (select(ReferenceBuild.id).where(ReferenceBuild.status == B.queued)
                 .order_by(ReferenceBuild.created_at, ReferenceBuild.id).limit(1)
                 .with_for_update(skip_locked=True).scalar_subquery())
    claimed = session.execute(
        update(ReferenceBuild).where(ReferenceBuild.id == candidate, ReferenceBuild.status == B.queued)
        .values(status=B.building, worker_id=worker_id, engine=engine, started_at=now, updated_at=now)
        .returning(ReferenceBuild.id).execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    session.commit()
    return None if claimed is None else session.get(ReferenceBuild, claimed, populate_existing=True)


def _held(session: Session, build_id: int, worker_id: str) -> ReferenceBuild | None:
    build = session.scalars(select(ReferenceBuild).where(ReferenceBuild.id == build_id).with_for_update()
                            .execution_options(populate_existing=True)).one_or_none()
    return build if build is not None and build.status == B.building and build.worker_id == worker_id else None


def record_progress(*, session: Session, build_id: int, worker_id: str, progress: dict[str, Any],
                    now: datetime | None = None) -> bool:
    """Store the images done per class; False if this worker no longer holds the build (it was claimed again)."""
    begin_write(session)
    build = _held(session, build_id, worker_id)
    if build is not None:
        build.progress = progress
        build.images_done = sum(c["done"] for c in progress["classes"].values())
        build.updated_at = now or utcnow()
    session.commit()
    return build is not None


def finish_build(*, session: Session, build_id: int, worker_id: str, ok: bool, outcome: str,
                 progress: dict[str, Any] | None = None, now: datetime | None = None) -> bool:
    """Mark the build done or failed with its outcome (and the last progress); False if no longer held."""
    now = now or utcnow()
    begin_write(session)
    build = _held(session, build_id, worker_id)
    if build is not None:
        if progress is not None:
            build.progress = progress
            build.images_done = sum(c["done"] for c in progress["classes"].values())
        build.status = B.done if ok else B.failed
        build.outcome, build.finished_at, build.updated_at = outcome, now, now
    session.commit()
    return build is not None


def release_build(*, session: Session, build_id: int, worker_id: str, now: datetime | None = None) -> bool:
    """A worker shutting down gives the build back to the queue (not counted as a crash)."""
    begin_write(session)
    build = _held(session, build_id, worker_id)
    if build is not None:
        build.status, build.worker_id, build.updated_at = B.queued, None, now or utcnow()
        build.reason += f"; given back by worker {worker_id} (shutting down)"
    session.commit()
    return build is not None


def requeue_stale_builds(*, session: Session, timeout_seconds: float, max_worker_crashes: int,
                         now: datetime | None = None) -> list[int]:
    """Builds held by a worker silent for timeout_seconds (or unknown) go back to the queue, or fail after
    `max_worker_crashes` workers died holding one (a poison pill, e.g. a dataset that exhausts memory)."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=timeout_seconds)
    begin_write(session)
    held = session.scalars(select(ReferenceBuild).where(ReferenceBuild.status == B.building)
                           .with_for_update(skip_locked=True)).all()
    requeued = []
    for build in held:
        worker = session.get(WorkerRow, build.worker_id) if build.worker_id else None
        if worker is not None and worker.last_heartbeat >= cutoff:
            continue
        build.crashes += 1
        lost = f"worker {build.worker_id} went silent while building"
        if build.crashes >= max_worker_crashes:
            build.status, build.finished_at = B.failed, now
            build.outcome = f"{lost}; {build.crashes} workers died on this build: see their logs, then retry"
        else:
            build.status, build.reason = B.queued, f"{build.reason}; {lost}, queued again"
        build.worker_id, build.updated_at = None, now
        requeued.append(build.id)
    session.commit()
    return requeued
