"""Reference statistics built by a scoring worker, never by the web process, with progress the console shows.

A build is a row of `reference_builds`, queued by the console (right after a competition is prepared, or the
organizer's "Build reference statistics" button), by `arena admin references SLUG`, by a worker that finds its
engine's cache missing or stale at start-up (new weights, another engine), or by a remote worker's claim that finds
a submission waiting for references it can build (server/jobs/remote_builds.py; remote workers build and upload
them). Each claim records the worker's engine and weights on the row. Workers claim builds before submissions,
under a lease exactly as they claim submissions (server/jobs/leases.py: the lease id fences progress, finish and
release; a build whose worker stops heartbeating is queued again, one that ended `max_worker_crashes` workers
fails); its status changes are job events. A competition's submissions wait while it has a queued or running
build (`queue.claim_next_submission`), so teams may upload meanwhile. The worker reports images done per class
every `reference_worker.PROGRESS_SECONDS` (and tqdm in its log). This module only reads and writes rows (the web
tier imports it); the build itself, with the scoring engine, is server/jobs/reference_worker.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.competition_dir import Competition, load_competition
from server.db import CompetitionRow, ReferenceBuild, begin_write, transition, utcnow
from server.db.models import ACTIVE_BUILD_STATUSES
from server.db.models import ReferenceBuildStatus as B
from server.jobs.leases import (
    BUILDS,
    claim,
    give_back,
    held_or_refused,
    holds,
    lock,
    requeue_silent,
)

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
    build = ReferenceBuild(competition_id=competition.id, reason=reason, images_done=0,
                           images_total=sum(c["total"] for c in classes.values()),
                           progress={"classes": classes, "stage": "waiting for a worker"}, created_at=now)
    transition(session, build, B.queued, reason, now=now)
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


def claim_next_build(*, session: Session, worker_id: str, engine: str, weights_sha256: str | None = None,
                     now: datetime | None = None) -> ReferenceBuild | None:
    """Move the oldest queued build to `building` for this worker under a new lease (its `lease_id`), as
    `claim_next_submission` does; the build is for the worker's engine and weights (a remote worker's upload is
    checked against them)."""
    now = now or utcnow()
    begin_write(session)
    build = claim(session, BUILDS, worker_id=worker_id, now=now, claimable=[],
                  order_by=[ReferenceBuild.created_at, ReferenceBuild.id],
                  describe=lambda _: f"claimed by worker {worker_id} ({engine})", engine=engine,
                  weights_sha256=weights_sha256)
    session.commit()
    return build


def _held(session: Session, build_id: int, lease_id: str) -> ReferenceBuild | None:
    build = lock(session, BUILDS, build_id)
    return build if holds(build, BUILDS, lease_id) else None


def _store_progress(build: ReferenceBuild, progress: dict[str, Any]) -> None:
    build.progress = progress
    build.images_done = sum(c["done"] for c in progress["classes"].values())


def completed_progress(progress: dict[str, Any] | None) -> dict[str, Any]:
    """A build's progress with every class done (also a build that found current statistics and so passed no image
    through the network)."""
    classes = {cls: {**c, "done": c["total"]} for cls, c in (progress or {}).get("classes", {}).items()}
    return {"classes": classes, "stage": "done"}


def record_progress(*, session: Session, build_id: int, lease_id: str, progress: dict[str, Any],
                    now: datetime | None = None) -> bool:
    """Store the images done per class; False if the lease is gone (the build was queued or claimed again)."""
    begin_write(session)
    build = _held(session, build_id, lease_id)
    if build is not None:
        _store_progress(build, progress)
        build.updated_at = now or utcnow()
    session.commit()
    return build is not None


def finish_build(*, session: Session, build_id: int, lease_id: str, worker_id: str, ok: bool, outcome: str,
                 progress: dict[str, Any] | None = None, now: datetime | None = None) -> bool:
    """Mark the build done or failed with its outcome (and the last progress); False (and the refusal recorded)
    if the lease is gone."""
    now = now or utcnow()
    begin_write(session)
    build = held_or_refused(session, BUILDS, build_id, lease_id=lease_id, worker_id=worker_id, call="result",
                            now=now)
    if build is not None:
        if progress is not None:
            _store_progress(build, progress)
        build.outcome, build.finished_at, build.lease_id = outcome, now, None
        transition(session, build, B.done if ok else B.failed, outcome, now=now, worker_id=worker_id)
    session.commit()
    return build is not None


def release_build(*, session: Session, build_id: int, lease_id: str, worker_id: str,
                  now: datetime | None = None) -> bool:
    """A worker shutting down gives the build back to the queue (not counted as a crash); False (refusal
    recorded) if the lease is gone."""
    now = now or utcnow()
    begin_write(session)
    build = held_or_refused(session, BUILDS, build_id, lease_id=lease_id, worker_id=worker_id, call="release",
                            now=now)
    if build is not None:
        give_back(session, BUILDS, build, reason=f"given back by worker {worker_id} (shutting down)",
                  worker_id=worker_id, now=now)
    session.commit()
    return build is not None


def requeue_stale_builds(*, session: Session, timeout_seconds: float, max_worker_crashes: int,
                         now: datetime | None = None) -> list[int]:
    """Builds held by a worker silent for timeout_seconds (or unknown) go back to the queue, or fail after
    `max_worker_crashes` workers died holding one (a poison pill, e.g. a dataset that exhausts memory)."""
    now = now or utcnow()
    begin_write(session)
    requeued = requeue_silent(session, BUILDS, timeout_seconds=timeout_seconds,
                              max_worker_crashes=max_worker_crashes, now=now)
    session.commit()
    return requeued
