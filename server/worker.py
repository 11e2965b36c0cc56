"""The scoring worker: claim a queued submission, score it with the one loaded Scorer, store the result, repeat.

`arena worker` runs one (one per GPU; many against one PostgreSQL); `arena serve` starts one as its child process,
so no feature is computed in the web process. A heartbeat thread keeps the worker's row fresh while it scores; every
worker also requeues the jobs of workers that went silent. Shutdown: the first SIGTERM lets the current job finish
(up to a grace period), a second one, or the end of the grace period, gives the job back to the queue without using
up an attempt.

A job runs once at a time: the model sampling child dies with its worker (submissions/sampling.py); a worker
starting up kills what dead samplers left on its host and removes their work folders (submissions/orphans.py);
before sampling, a worker stops any other copy of the same job on its host; and a worker whose heartbeat finds
its job requeued away (it was silent too long) stops sampling it.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import threading
import traceback
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from server.competition import CompetitionUnavailable, config_problem, load_competition
from server.config import Settings
from server.db import Database, Submission, utcnow
from server.db.crud import MODEL_FAILED, list_competitions
from server.queue import (
    ScoreFields,
    claim_next_submission,
    finish_failed,
    finish_scored,
    has_pending_work,
    heartbeat,
    new_worker_id,
    record_progress,
    register_worker,
    release,
    requeue_stale,
    still_holds,
    stop_worker,
)
from server.reference_builds import claim_next_build, release_build, request_build, requeue_stale_builds
from server.reference_worker import run_build
from server.scoring.references import SPLITS
from server.storage import (
    grid_path,
    model_path,
    model_seed,
    sampled_zip_path,
    sampling_salt,
    upload_path,
    write_evidence_images,
    write_sample_grid,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.scoring import Scorer, ScoreReport
    from submissions import SubmissionSpec

log = logging.getLogger("arena.worker")


class ModelFailed(Exception):
    """A submitted model could not be sampled (hang, crash, memory, NaN, wrong shape): the team's fault, so the
    submission fails at once, without retries, and gives its quota back."""


class WorkerInterrupted(BaseException):
    """Raised in the worker's thread to abandon the current job (second SIGTERM or grace period over)."""


def make_scorer(settings: Settings) -> Scorer:
    from server.scoring import Scorer

    return Scorer(device=settings.device, precision=settings.precision, weights_path=settings.fid_weights,
                  allow_download=settings.fid_weights_download, engine=settings.fid_engine)


@dataclass
class Worker:
    database: Database
    settings: Settings
    scorer: Any = None  # a server.scoring.Scorer, created on first use so its model loads once per worker
    worker_id: str = field(default_factory=new_worker_id)
    stop: threading.Event = field(default_factory=threading.Event)
    current: int | None = None
    current_build: int | None = None  # a reference build in progress (server/reference_builds.py)
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
        stop_beating = threading.Event()
        beating = threading.Thread(target=self._heartbeat_loop, args=(stop_beating,), daemon=True,
                                   name=f"heartbeat-{self.worker_id}")
        beating.start()
        done = 0
        try:
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
            stop_beating.set()
            beating.join(timeout=5)
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
        """Claim and run one queued reference build (server/reference_builds.py); False when none is queued."""
        with self.database.session() as session:
            build = claim_next_build(session=session, worker_id=self.worker_id, engine=self.scorer.extractor.engine)
        if build is None:
            return False
        self.current_build = build.id
        try:
            run_build(build, database=self.database, extractor=self.scorer.extractor, worker_id=self.worker_id)
        except WorkerInterrupted:
            with self.database.session() as session:
                release_build(session=session, build_id=build.id, worker_id=self.worker_id)
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
                    if current is not None and not still_holds(session=session, submission_id=current,
                                                               worker_id=self.worker_id) and self.current == current:
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
        self.current = submission.id
        try:
            self._score(submission)
        except CompetitionUnavailable:
            # Not the submission's fault: it waits in the queue (no attempt used) until the organizer fixes the config.
            log.error("submission %s: %s", submission.id, config_problem(submission.team.competition))
            with self.database.session() as session:
                release(session=session, submission_id=submission.id, worker_id=self.worker_id,
                        reason="waiting: the competition's configuration cannot be read",
                        delay=timedelta(seconds=self.settings.retry_backoff_seconds))
        except ModelFailed as exc:
            log.warning("submission %s: %s", submission.id, exc)
            with self.database.session() as session:
                finish_failed(session=session, submission_id=submission.id, worker_id=self.worker_id,
                              error=str(exc), max_attempts=0, backoff_seconds=0)
        except WorkerInterrupted:
            with self.database.session() as session:
                release(session=session, submission_id=submission.id, worker_id=self.worker_id,
                        reason=f"worker {self.worker_id} stopped before finishing; back in the queue")
            self.stop.set()
        except Exception as exc:
            log.error("submission %s failed: %s", submission.id, traceback.format_exc())
            with self.database.session() as session:
                finish_failed(session=session, submission_id=submission.id, worker_id=self.worker_id,
                              error=f"{type(exc).__name__}: {exc}", max_attempts=self.settings.max_attempts,
                              backoff_seconds=self.settings.retry_backoff_seconds)
        finally:
            self.current = None
        return True

    def _score(self, submission: Submission) -> None:
        from submissions import SubmissionSpec, validate_zip

        competition = load_competition(submission.team.competition)
        spec = SubmissionSpec.from_competition(competition.config, **self.settings.zip_limits)
        is_model = self._is_model(submission.sha256)

        def stage(text: str) -> None:  # a model takes minutes over its sample sets: say which one it is on
            if is_model:
                with self.database.session() as session:
                    record_progress(session=session, submission_id=submission.id, worker_id=self.worker_id,
                                    progress=text)

        stage(f"sample set 1 of {self.settings.model_sample_sets}: sampling the model")
        decoded = validate_zip(self._images_zip(submission.sha256, spec), spec)
        stage(f"sample set 1 of {self.settings.model_sample_sets}: scoring")
        report = self.scorer.score(competition, decoded.images)
        for cls, images in decoded.images.items():
            write_sample_grid(grid_path(self.settings.data_dir, submission.id, cls), images)
            closest = report.classes[cls].nearest_train + report.classes[cls].nearest_any
            write_evidence_images(self.settings.data_dir, submission.id, cls, images, [n.image for n in closest])
        scores = score_fields(report.model_dump(mode="json"))
        if is_model:
            sets = score_sample_sets(model_path(self.settings.data_dir, submission.sha256), spec, self.settings,
                                     self.scorer, competition, seed=submission_seed(self.settings, submission.sha256),
                                     first=report, stage=stage, tag=self.job_tag(), cancelled=self.lost_current)
            scores = with_sample_set_interval(scores, sets)
        with self.database.session() as session:
            kept = finish_scored(session=session, submission_id=submission.id, worker_id=self.worker_id,
                                 scores=scores, now=utcnow())
        if not kept:
            log.warning("submission %s was cancelled or requeued while scoring; result discarded", submission.id)

    def _is_model(self, sha256: str) -> bool:
        data_dir = self.settings.data_dir
        return not upload_path(data_dir, sha256).exists() and model_path(data_dir, sha256).exists()

    def _images_zip(self, sha256: str, spec: SubmissionSpec) -> Path:
        """The zip to score: the upload itself, or the images sampled from an uploaded model (sampled once and
        kept, so grids, rescoring and the memorization check see the same images)."""
        if not self._is_model(sha256):
            return upload_path(self.settings.data_dir, sha256)
        sampled = sampled_zip_path(self.settings.data_dir, sha256)
        if not sampled.exists():
            from submissions import pack

            images = sample_images(model_path(self.settings.data_dir, sha256), spec, self.settings,
                                   device=str(self.scorer.device), seed=submission_seed(self.settings, sha256),
                                   tag=self.job_tag(), cancelled=self.lost_current)
            pack(images, sampled, spec)  # atomic: a crash mid-write never leaves a half zip under the final name
        return sampled

    def job_tag(self) -> str:
        """The current job's name on this host's process list: its id within this database (a hash of the URL, so
        no password shows), so another worker of the same arena can find a copy of it (`orphans.stop_copies`)."""
        database = hashlib.sha256(self.settings.resolved_database_url.encode()).hexdigest()[:12]
        return f"submission {self.current} of database {database}" if self.current is not None else ""

    def abandon_current(self, reason: str) -> None:
        """From another thread: give the current job back (the worker's own late result is then discarded)."""
        if self.current is not None:
            with self.database.session() as session:
                release(session=session, submission_id=self.current, worker_id=self.worker_id, reason=reason)
        if self.current_build is not None:
            with self.database.session() as session:
                release_build(session=session, build_id=self.current_build, worker_id=self.worker_id)


def submission_seed(settings: Settings, sha256: str) -> int:
    """The seed of a model submission's first sample set (set k uses seed + k): from the file hash under the
    server's secret salt, so a rescore draws the same images and no team can know them in advance."""
    return model_seed(sampling_salt(settings.data_dir, settings.model_sampling_salt), sha256)


def sample_images(model: Path, spec: SubmissionSpec, settings: Settings, *, device: str, seed: int, tag: str = "",
                  cancelled: threading.Event | None = None) -> dict[str, np.ndarray]:
    """images_per_class images per class from an ONNX model, in a capped child process on `device` (CUDA when
    onnxruntime offers it, else the CPU, saying why); ModelFailed otherwise. A job `tag` first stops any other copy
    of that job on this host; `cancelled` stops this one."""
    import onnxruntime

    from submissions.model import validate_model
    from submissions.orphans import stop_copies
    from submissions.report import SubmissionInvalid
    from submissions.sampling import SamplingFailed, SamplingJob, choose_providers, sample_model

    providers, fallback = choose_providers(device, onnxruntime.get_available_providers(),
                                           gpu_memory_bytes=settings.model_gpu_memory_bytes)
    if fallback:
        log.warning("model sampling: %s", fallback)
    try:
        info = validate_model(model, spec, dry_run=False)  # the class order and latent size; rules may have changed
        job = SamplingJob(model=str(model), labels=[info.label_of(c) for c in spec.classes],
                          per_class=spec.images_per_class, latent_size=info.latent_size, image_size=spec.image_size,
                          seed=seed, threads=settings.model_sampling_threads, providers=providers, tag=tag)
        stop_copies(tag)
        images = sample_model(job, memory_bytes=settings.model_memory_bytes,
                              time_limit_s=settings.model_sampling_seconds, cancelled=cancelled)
    except SamplingFailed as exc:
        raise ModelFailed(f"{MODEL_FAILED} ({exc.kind}): {exc}") from exc
    except SubmissionInvalid as exc:
        raise ModelFailed(f"{MODEL_FAILED} (invalid): the model no longer passes validation: {exc}") from exc
    return dict(zip(spec.classes, images, strict=True))


def score_sample_sets(model: Path, spec: SubmissionSpec, settings: Settings, scorer: Scorer, competition: Any, *,
                      seed: int, first: ScoreReport, stage: Callable[[str], None] = lambda _: None, tag: str = "",
                      cancelled: threading.Event | None = None) -> dict[str, Any]:
    """Score model_sample_sets - 1 more image sets (seeds seed + 1, ...) after the first: the spread of the model's
    score measured over fresh samples, not estimated by a bootstrap of one set. The extra images are dropped.
    `stage` hears which set and step it is on (the status box shows it)."""
    reports = [first]
    total = settings.model_sample_sets
    for offset in range(1, total):
        stage(f"sample set {offset + 1} of {total}: sampling the model")
        images = sample_images(model, spec, settings, device=str(scorer.device), seed=seed + offset, tag=tag,
                               cancelled=cancelled)
        stage(f"sample set {offset + 1} of {total}: scoring")
        reports.append(scorer.score(competition, images))
    return sample_set_summary(reports, seeds=[seed + k for k in range(len(reports))])


def sample_set_summary(reports: list[ScoreReport], *, seeds: list[int]) -> dict[str, Any]:
    """Each split's scores over the sets with mean and standard deviation, and each class's standard deviation
    (`class_std`, moved into the class scores by `with_sample_set_interval`)."""
    summary: dict[str, Any] = {"method": "fresh sample sets", "seeds": seeds}
    for split in SPLITS:
        summary |= spread(split, [getattr(r, f"score_{split}") for r in reports])
    summary["class_std"] = {
        cls: {split: standard_deviation([getattr(r.classes[cls], f"fid_{split}") for r in reports]) for split in SPLITS}
        for cls in reports[0].classes}
    return summary


def with_sample_set_interval(scores: ScoreFields, summary: dict[str, Any]) -> ScoreFields:
    """A model submission's columns: the score stays the first set's (the kept images: grids, per-class table,
    memorization evidence and rescoring all describe that set), its standard errors become the standard deviation
    of the score over the sample sets: how far one set's score moves when the model is sampled again, the very
    quantity the bootstrap estimates for an image submission, so the boards' tie rule compares like with like.
    With one set there is no spread to measure and the bootstrap stays.

    Every model submission is also a calibration sample: `estimated_se` keeps what the half-sampling estimator
    (server/scoring/uncertainty.py) said for set 1, per split and class, beside the sets' measured spread."""
    sets = {key: value for key, value in summary.items() if key != "class_std"}
    sets["estimated_se"] = {
        **{split: getattr(scores, f"score_{split}_se") for split in SPLITS if split != "all"},
        "classes": {cls: {split: values.get(f"se_{split}") for split in SPLITS if split != "all"}
                    for cls, values in scores.class_scores.items()}}
    if len(sets["seeds"]) < 2:
        return replace(scores, sample_sets=sets)
    classes = {cls: {**values, **{f"se_{split}": summary["class_std"][cls][split] for split in SPLITS}}
               for cls, values in scores.class_scores.items()}
    return replace(scores, class_scores=classes, sample_sets={**sets, "interval": "sample sets"},
                   **{f"score_{split}_se": sets[f"{split}_std"] for split in SPLITS})


def standard_deviation(values: list[float]) -> float:
    """The sample standard deviation (n - 1); 0 for one value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def spread(name: str, scores: list[float]) -> dict[str, Any]:
    """{name: scores, name_mean, name_std} over the sample sets."""
    return {name: [float(v) for v in scores], f"{name}_mean": float(np.mean(scores)),
            f"{name}_std": standard_deviation(scores)}


def score_fields(report: dict[str, Any]) -> ScoreFields:
    """The database columns of a scorer's report (`ScoreReport.model_dump(mode="json")`)."""
    classes = report["classes"]
    return ScoreFields(
        score_public=float(report["score_public"]), score_private=float(report["score_private"]),
        score_all=float(report["score_all"]), penalized=any(c["penalized"] for c in classes.values()),
        class_scores=classes, timings=report.get("timings", {}), device=str(report.get("device", "")),
        precision=str(report.get("precision", "")), scorer_version=str(report.get("scorer_version", "")),
        weights_sha256=str(report.get("weights_sha256", "")),
        **{f"score_{split}_se": report.get(f"se_{split}") for split in ("public", "private", "all")},
    )


class Stoppable(Protocol):
    """What ShutdownSignals needs of a worker: a local `Worker` or a remote one (server/remote_worker.py)."""

    settings: Settings
    worker_id: str
    stop: threading.Event

    def abandon_current(self, reason: str) -> None: ...


class ShutdownSignals:
    """The one SIGTERM/SIGINT rule of every worker process (`arena worker`, alone or started by `arena serve`).

    The first signal (or `stop()`) stops taking jobs and lets the current one finish within
    `worker_shutdown_grace_seconds`; a second signal, or the end of the grace period, raises WorkerInterrupted in
    the main thread and the job goes back to the queue without using an attempt: `run_once` releases it, and
    leaving this context gives back the job of a worker running in another thread (the tests run one so). Nothing is
    lost either way. Use it as a context manager in the main thread (signal handlers can only live there).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, worker: Stoppable) -> None:
        self.worker = worker
        self.stopping = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> ShutdownSignals:
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in self.SIGNALS}
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> bool:
        signal.setitimer(signal.ITIMER_REAL, 0)  # a pending grace-period alarm must not fire during exit
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if kind is None or not issubclass(kind, WorkerInterrupted):
            return False
        # a no-op when run_once, in this thread, has released the job already
        self.worker.abandon_current(f"worker {self.worker.worker_id} stopped before finishing; back in the queue")
        return True

    def stop(self, why: str) -> None:
        """Stop taking jobs and start the current job's grace period (the first call only)."""
        if self.stopping:
            return
        self.stopping = True
        self.worker.stop.set()
        grace = self.worker.settings.worker_shutdown_grace_seconds
        if grace <= 0:
            raise WorkerInterrupted()
        log.warning("%s: finishing the current job (up to %.0f s), then exiting; send it again to requeue now",
                    why, grace)
        self._previous.setdefault(signal.SIGALRM, signal.signal(signal.SIGALRM, self._on_grace_over))
        signal.setitimer(signal.ITIMER_REAL, grace)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.stopping:
            raise WorkerInterrupted()
        self.stop(signal.Signals(signum).name)

    @staticmethod
    def _on_grace_over(*_: Any) -> None:
        raise WorkerInterrupted()


class ForwardSignals:
    """`arena serve`'s side of the rule: it runs its worker as a child process and passes it every SIGTERM/SIGINT
    it receives as one SIGTERM (`forward`), so the worker's own ShutdownSignals decide: the first finishes the job
    within the grace period, a second requeues it now. uvicorn takes the signals while it serves and raises them
    again once it has shut down, which is when they reach this handler. Without a worker (`--no-worker`) the
    signals only end the server quietly."""

    def __init__(self, forward: Callable[[], None] | None) -> None:
        self.forward = forward
        self.received = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> ForwardSignals:
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in ShutdownSignals.SIGNALS}
        return self

    def __exit__(self, *_: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, _signum: int, _frame: Any) -> None:
        self.received += 1
        if self.forward is not None:
            self.forward()
