"""The worker's side of a reference build (server/jobs/reference_builds.py holds the rows): check this worker's cache,
build it if missing or stale with progress per class written every few seconds, record the outcome. Only workers
import this module; the web tier never reaches the scoring engine (a contract in pyproject.toml checks it)."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from server.competition_dir import load_competition
from server.db import CompetitionRow, Database, ReferenceBuild
from server.jobs.leases import lease_of
from server.jobs.reference_builds import completed_progress, finish_build, record_progress

if TYPE_CHECKING:
    from server.scoring.features import FeatureExtractor

log = logging.getLogger("arena.references")
PROGRESS_SECONDS = 2.0  # how often a running build writes its progress (the console refreshes every 2 s)


class ProgressReporter:
    """Counts images per class as the network finishes batches and hands them to `write` at most every `every`
    seconds: a local worker stores them (`stored_progress`), a remote one posts them (server/jobs/remote_worker.py)."""

    def __init__(self, progress: dict[str, Any] | None, write: Callable[[dict[str, Any]], None],
                 every: float) -> None:
        self.write, self.every = write, every
        self.progress: dict[str, Any] = {"classes": {cls: {**c, "done": 0}
                                                     for cls, c in (progress or {}).get("classes", {}).items()},
                                         "stage": "starting"}
        self.written_at = time.monotonic()

    def __call__(self, cls: str, part: str, images: int) -> None:
        counts = self.progress["classes"].setdefault(cls, {"done": 0, "total": 0})
        counts["done"] += images
        self.progress = {**self.progress, "stage": f"{cls} {part}"}
        if time.monotonic() - self.written_at >= self.every:
            self.written_at = time.monotonic()
            self.write(self.progress)

    def completed(self) -> dict[str, Any]:
        """Every class done (also when a current cache was only checked, which passes no image through)."""
        return completed_progress(self.progress)


def stored_progress(database: Database, build: ReferenceBuild) -> Callable[[dict[str, Any]], None]:
    """Write a held build's progress to its row, under its lease."""
    build_id, lease_id = build.id, lease_of(build)

    def write(progress: dict[str, Any]) -> None:
        with database.session() as session:
            record_progress(session=session, build_id=build_id, lease_id=lease_id, progress=progress)

    return write


def run_build(build: ReferenceBuild, *, database: Database, extractor: FeatureExtractor, worker_id: str,
              progress_seconds: float = PROGRESS_SECONDS) -> bool:
    """Build (or find current) the claimed build's references with this worker's extractor; record the outcome.
    Returns whether it succeeded. Exceptions from the build fail it with their message; BaseException (a worker
    interrupted) propagates, for the worker to give the build back."""
    from server.scoring.references import cache_problem, load_or_build_references

    started = time.monotonic()
    lease_id = lease_of(build)
    reporter = ProgressReporter(build.progress, stored_progress(database, build), progress_seconds)
    with database.session() as session:
        row = session.get_one(CompetitionRow, build.competition_id)
        slug = row.slug
    try:
        competition = load_competition(row)  # a broken competition.json fails this build, not the worker
        problem = cache_problem(competition, extractor)
        if problem is not None:
            log.info("building the reference statistics of '%s' (%s)", competition.slug, problem)
            load_or_build_references(competition, extractor, progress=True, on_progress=reporter)
    except Exception as exc:
        log.error("reference build %s of '%s' failed: %s", build.id, slug, traceback.format_exc())
        with database.session() as session:
            finish_build(session=session, build_id=build.id, lease_id=lease_id, worker_id=worker_id, ok=False,
                         outcome=f"{type(exc).__name__}: {exc}", progress=reporter.progress)
        return False
    seconds = time.monotonic() - started
    outcome = (f"built in {seconds:.1f} s ({problem})" if problem else
               f"already current: the {extractor.engine} cache matches these images and weights (checked in "
               f"{seconds:.1f} s)")
    with database.session() as session:
        finish_build(session=session, build_id=build.id, lease_id=lease_id, worker_id=worker_id, ok=True,
                     outcome=outcome,
                     progress=reporter.completed())
    log.info("reference build %s of '%s': %s", build.id, competition.slug, outcome)
    return True
