"""The scoring worker: claim a queued submission, score it with the one loaded Scorer, store the result, repeat.

`arena worker` runs one (one per GPU; many against one PostgreSQL); `arena serve` starts one as its child process,
so no feature is computed in the web process. A heartbeat thread keeps the worker's row fresh while it scores; every
worker also requeues the jobs of workers that went silent. Shutdown: the first SIGTERM lets the current job finish
(up to a grace period), a second one, or the end of the grace period, gives the job back to the queue without using
up an attempt.

The work of one job needs no database (`entries.score_entry`); this module claims it, holds its lease
(server/jobs/leases.py) and records the outcome. Signals: server/jobs/signals.py.

A job runs once at a time: the model sampling child dies with its worker (submissions/sampling.py); a worker
starting up kills what dead samplers left on its host and removes their work folders (submissions/orphans.py);
before sampling, a worker stops any other copy of the same job on its host; and a worker whose heartbeat finds
its job requeued away (it was silent too long) stops sampling it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from server.competition_dir import CompetitionUnavailable, config_problem, load_competition
from server.config import Settings
from server.db import Database, Submission, SubmissionKind, utcnow
from server.db.crud import list_competitions
from server.jobs.entries import EntryJob, score_entry, write_entry_images
from server.jobs.leases import heartbeat, lease_of, new_worker_id, register_worker, stop_worker
from server.jobs.model_entries import ModelFailed
from server.jobs.queue import (
    claim_next_submission,
    finish_failed,
    finish_scored,
    has_pending_work,
    record_progress,
    release,
    requeue_stale,
    still_holds,
)
from server.jobs.reference_builds import claim_next_build, release_build, request_build, requeue_stale_builds
from server.jobs.reference_worker import run_build
from server.jobs.sampling_seeds import submission_seed
from server.jobs.signals import WorkerInterrupted
from server.storage import model_path, upload_path

if TYPE_CHECKING:
    from server.scoring import Scorer

log = logging.getLogger("arena.worker")


@contextmanager
def beating(loop: Callable[[threading.Event], None], *, name: str) -> Iterator[None]:
    """Run a worker's heartbeat loop in a daemon thread while the block runs; the loop returns once its event is
    set (every worker, local or remote, beats this way)."""
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(stop,), daemon=True, name=name)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def make_scorer(settings: Settings) -> Scorer:
    from server.scoring import FeatureExtractor, Scorer

    return Scorer(FeatureExtractor(device=settings.device, precision=settings.precision,
                                   weights_path=settings.fid_weights, allow_download=settings.fid_weights_download,
                                   engine=settings.fid_engine))


@dataclass(frozen=True)
class Held:
    """A job this worker holds: its id and the lease its claim gave (every call about it presents the lease)."""

    job_id: int
    lease_id: str


@dataclass
class Worker:
    database: Database
    settings: Settings
    scorer: Any = None  # a server.scoring.Scorer, created on first use so its model loads once per worker
    worker_id: str = field(default_factory=new_worker_id)
    stop: threading.Event = field(default_factory=threading.Event)
    current: Held | None = None  # the submission being scored
    current_build: Held | None = None  # a reference build in progress (server/jobs/reference_builds.py)
    lost_current: threading.Event = field(default_factory=threading.Event)  # set by the heartbeat: job taken away

    def __post_init__(self) -> None:
        if self.scorer is None:
            self.scorer = make_scorer(self.settings)

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def run(self, *, exit_when_idle: bool = False, max_jobs: int | None = None, prepare: bool = False) -> int:
        """Process jobs until stopped (or idle / max_jobs for tests and benchmarks). Returns the jobs processed.

        prepare=True first loads every competition's current references and queues a build for each missing or
        stale one (`prepare_references`). Reference builds are claimed before submissions (they wait for them).
        """
        from submissions.orphans import reap_orphans

        reap_orphans()
        with self.database.session() as session:
            register_worker(session=session, worker_id=self.worker_id, device=self.settings.device)
        done = 0
        try:
            with beating(self._heartbeat_loop, name=f"heartbeat-{self.worker_id}"):
                if prepare:
                    self.prepare_references()
                while not self.stop.is_set() and (max_jobs is None or done < max_jobs):
                    self.requeue_silent_workers()
                    if self.run_reference_build():
                        continue
                    if self.run_once():
                        done += 1
                    elif exit_when_idle and not self._work_pending():
                        break
                    else:
                        self.stop.wait(self.settings.worker_poll_seconds)
        finally:
            with self.database.session() as session:
                stop_worker(session=session, worker_id=self.worker_id)
        return done

    def prepare_references(self) -> None:
        """Load every registered competition's current reference cache now, not on its first submission; queue a
        build for each one this worker's engine and weights find missing or stale (claimed next, with progress)."""
        from server.scoring.references import cache_problem

        with self.database.session() as session:
            rows = list_competitions(session=session)
        for row in rows:
            unreadable = config_problem(row)
            if unreadable is not None:  # one broken competition.json must not stop scoring for the others
                log.error("skipping competition '%s': %s", row.slug, unreadable)
                continue
            competition = load_competition(row)
            problem = cache_problem(competition, self.scorer.extractor)
            if problem is None:
                log.info("loading the scoring references of '%s'", row.slug)
                self.scorer.prepare(competition)
                continue
            with self.database.session() as session:
                request_build(session=session, competition=row, reason=f"worker {self.worker_id}: {problem}")

    def run_reference_build(self) -> bool:
        """Claim and run one queued reference build (server/jobs/reference_builds.py); False when none is queued."""
        with self.database.session() as session:
            extractor = self.scorer.extractor
            build = claim_next_build(session=session, worker_id=self.worker_id, engine=extractor.engine,
                                     weights_sha256=extractor.weights_sha256)
        if build is None:
            return False
        held = self.current_build = Held(build.id, lease_of(build))
        try:
            run_build(build, database=self.database, extractor=self.scorer.extractor, worker_id=self.worker_id)
        except WorkerInterrupted:
            with self.database.session() as session:
                release_build(session=session, build_id=held.job_id, lease_id=held.lease_id, worker_id=self.worker_id)
            self.stop.set()
        finally:
            self.current_build = None
        return True

    def _heartbeat_loop(self, stop_beating: threading.Event) -> None:
        while not stop_beating.wait(self.settings.worker_heartbeat_seconds):
            try:
                with self.database.session() as session:
                    heartbeat(session=session, worker_id=self.worker_id)
                    lost, current = self.lost_current, self.current  # this order: run_once sets them the other way
                    if current is not None and not still_holds(session=session, submission_id=current.job_id,
                                                               lease_id=current.lease_id) and self.current == current:
                        lost.set()  # cancelled, or requeued while this worker was silent: stop its sampling
            except Exception:  # a missed beat is retried next period; the job must not die of it
                log.exception("heartbeat failed")

    def _work_pending(self) -> bool:
        """Jobs waiting out a retry delay, or held by a worker that may die, still need this one (--exit-when-idle)."""
        with self.database.session() as session:
            return has_pending_work(session=session)

    def requeue_silent_workers(self) -> list[int]:
        with self.database.session() as session:
            ids = requeue_stale(session=session, timeout_seconds=self.settings.worker_timeout_seconds,
                                max_worker_crashes=self.settings.max_worker_crashes)
            builds = requeue_stale_builds(session=session, timeout_seconds=self.settings.worker_timeout_seconds,
                                          max_worker_crashes=self.settings.max_worker_crashes)
        if ids:
            log.warning("requeued submissions of silent workers: %s", ids)
        if builds:
            log.warning("requeued reference builds of silent workers: %s", builds)
        return ids

    # -- one job -------------------------------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Claim and process one submission; False when nothing is claimable."""
        with self.database.session() as session:
            submission = claim_next_submission(session=session, worker_id=self.worker_id)
        if submission is None:
            return False
        self.lost_current = threading.Event()  # one per job: a late heartbeat about the last one cannot stop this one
        held = self.current = Held(submission.id, lease_of(submission))
        lease: dict[str, Any] = {"submission_id": held.job_id, "lease_id": held.lease_id, "worker_id": self.worker_id}
        try:
            self._score(submission, held)
        except CompetitionUnavailable:
            # Not the submission's fault: it waits in the queue (no attempt used) until the organizer fixes the config.
            log.error("submission %s: %s", submission.id, config_problem(submission.team.competition))
            with self.database.session() as session:
                release(session=session, **lease, reason="waiting: the competition's configuration cannot be read",
                        delay=timedelta(seconds=self.settings.retry_backoff_seconds))
        except ModelFailed as exc:
            log.warning("submission %s: %s", submission.id, exc)
            with self.database.session() as session:
                finish_failed(session=session, **lease, error=str(exc), max_attempts=0, backoff_seconds=0)
        except WorkerInterrupted:
            with self.database.session() as session:
                release(session=session, **lease,
                        reason=f"worker {self.worker_id} stopped before finishing; back in the queue")
            self.stop.set()
        except Exception as exc:
            log.error("submission %s failed: %s", submission.id, traceback.format_exc())
            with self.database.session() as session:
                finish_failed(session=session, **lease, error=f"{type(exc).__name__}: {exc}",
                              max_attempts=self.settings.max_attempts,
                              backoff_seconds=self.settings.retry_backoff_seconds)
        finally:
            self.current = None
        return True

    def _score(self, submission: Submission, held: Held) -> None:
        """Score the claimed submission (`entries.score_entry`, no database), then record the outcome."""
        def stage(text: str) -> None:  # a model takes minutes over its sample sets: say which one it is on
            with self.database.session() as session:
                record_progress(session=session, submission_id=held.job_id, lease_id=held.lease_id, progress=text)

        entry = score_entry(self.entry_job(submission), scorer=self.scorer, settings=self.settings, stage=stage,
                            tag=self.job_tag(), cancelled=self.lost_current)
        write_entry_images(self.settings.data_dir, submission.id, entry)
        with self.database.session() as session:
            kept = finish_scored(session=session, submission_id=held.job_id, lease_id=held.lease_id,
                                 worker_id=self.worker_id, result=entry.result, now=utcnow())
        if not kept:
            log.warning("submission %s was cancelled or requeued while scoring; result discarded", submission.id)

    def entry_job(self, submission: Submission) -> EntryJob:
        """What scoring the claimed submission needs, read from its row and the data dir."""
        is_model = submission.kind == SubmissionKind.model
        store = model_path if is_model else upload_path
        return EntryJob(kind=submission.kind, path=store(self.settings.data_dir, submission.sha256),
                        sha256=submission.sha256, competition=load_competition(submission.team.competition),
                        seed=submission_seed(self.settings, submission.sha256) if is_model else None)

    def job_tag(self) -> str:
        """The current job's name on this host's process list: its id within this database (a hash of the URL, so
        no password shows), so another worker of the same arena can find a copy of it (`orphans.stop_copies`)."""
        database = hashlib.sha256(self.settings.resolved_database_url.encode()).hexdigest()[:12]
        current = self.current
        return f"submission {current.job_id} of database {database}" if current is not None else ""

    def abandon_current(self, reason: str) -> None:
        """From another thread: give the current job back (the worker's own late result is then refused)."""
        current, build = self.current, self.current_build
        if current is not None:
            with self.database.session() as session:
                release(session=session, submission_id=current.job_id, lease_id=current.lease_id,
                        worker_id=self.worker_id, reason=reason)
        if build is not None:
            with self.database.session() as session:
                release_build(session=session, build_id=build.job_id, lease_id=build.lease_id,
                              worker_id=self.worker_id)
