"""Remote scoring workers: a GPU anywhere scores for the arena over HTTP, with nothing shared but the API.

The organizer gives a worker a token (`create_worker_token`; stored hashed like a team token). With it a worker
registers (`register_remote_worker`), claims the next job (`claim_job`), downloads the job's file (a zip, or an ONNX
model with the seeds to sample it with) and the competition's reference statistics (content-addressed by the
reference fingerprint, the file's sha256), heartbeats, and posts a result (`accept_result`), a failure or a release.

A remote worker holds its job exactly as a local one does (server/jobs/leases.py): the claim gives the job a new
`lease_id`, and every later call names the job and presents that lease; the queue's own functions (queue.py) record
the outcome, so a remote job is the same job a local worker would score (events, attempts, crash recovery, board
versions). What only a remote worker needs: the lease's length as the server tells it (the worker heartbeat
timeout: a worker that has not heard from the server for that long drops its job, which has been requeued), and a
model's sampling seeds, computed here under the server's secret salt and sent with the claim (the salt never is).

The server trusts nothing it is sent: a call on a lease that no longer holds its job is 409 and recorded in the
job's events; a result is checked against the competition (classes, image counts, totals that add up, finite
numbers) and against what the job was given (reference fingerprint and weights, the worker's scorer version, a
model's seeds and number of sample sets); grids and evidence images are checked PNGs of bounded size. A bad result
is refused with its reason and the job goes back to the queue as a failed attempt. Revoking a token gives back the
jobs its workers hold, at once.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import math
import re
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server import inputs
from server.competition_dir import Competition, CompetitionUnavailable, load_competition, reference_cache_file
from server.config import Settings
from server.db import Submission, SubmissionKind, SubmissionStatus, WorkerRow, WorkerToken, begin_write, utcnow
from server.db.crud import add_unique, hash_token
from server.db.events import refusal
from server.errors import ArenaError, Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from server.jobs.leases import heartbeat, register_worker, stop_worker
from server.jobs.queue import (
    claim_next_submission,
    finish_failed,
    finish_scored,
    record_progress,
    release,
    requeue_stale,
    still_holds,
)
from server.jobs.sampling_seeds import submission_seed
from server.storage import evidence_path, grid_path, model_path, upload_path
from submissions.atomic import write_atomically
from submissions.results import SubmissionResult

WORKER_TOKEN_PREFIX = "arenaw_"  # never "arena_": a worker token is not a team token, and the reverse
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_GRID_BYTES = 2 * 1024 * 1024  # an 8x8 grid of 64x64 grayscale PNGs is ~100 KiB; 2 MiB leaves room for 128 px
MAX_EVIDENCE_BYTES = 256 * 1024
MAX_REPORT_BYTES = 4 * 1024 * 1024
GRID_SIDE = 8
WORKER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
# The server's settings a job is scored under, sent with the claim, so a remote worker decodes and samples as a local
# one would: the zip limits (Settings.zip_limits), a model's number of sample sets and its time and memory caps.
JOB_SETTINGS = ("max_zip_entries", "max_uncompressed_bytes", "max_compression_ratio", "max_image_pixels",
                "max_model_bytes", "model_memory_bytes", "model_dry_run_seconds", "model_sample_sets",
                "model_sampling_seconds")


class InvalidResult(ArenaError):
    """A posted result that does not fit its job; the message names the field and the rule."""

    status_code = 422
    code = "invalid_result"


# -- tokens (the organizer) ----------------------------------------------------------------------------------------


def create_worker_token(*, session: Session, name: str, now: datetime | None = None) -> tuple[WorkerToken, str]:
    """A new worker token named `name`; only its hash is stored, so show the token now."""
    name = worker_name(name)
    token = WORKER_TOKEN_PREFIX + secrets.token_urlsafe(32)
    begin_write(session)
    row = WorkerToken(name=name, token_hash=hash_token(token), created_at=now or utcnow())
    add_unique(session, row, Conflict(f"A worker token named '{name}' exists already. Pick another name, or revoke "
                                      "that one.", detail={"name": name}))
    return row, token


def worker_name(name: str) -> str:
    """A token's name starts its workers' ids and log lines: letters, digits, dot, dash, underscore."""
    if not WORKER_NAME.fullmatch(name):
        raise InvalidInput(f"Worker name {name!r}: use 1-40 letters, digits, '.', '-' or '_' (e.g. lab-gpu-1).")
    return name


def list_worker_tokens(*, session: Session) -> list[WorkerToken]:
    return list(session.scalars(select(WorkerToken).order_by(WorkerToken.id)))


def revoke_worker_token(*, session: Session, name: str, now: datetime | None = None) -> list[int]:
    """Revoke a token: its workers can do nothing more, and the jobs they hold go back to the queue now (no attempt
    used). Returns those submissions' ids."""
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


# -- workers -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerIdentity:
    """What a remote worker says about itself when it registers (shown on the console, never trusted for scores)."""

    host: str
    pid: int
    device: str
    engine: str


def register_remote_worker(*, session: Session, token: WorkerToken, identity: WorkerIdentity, address: str,
                           now: datetime | None = None) -> WorkerRow:
    """A worker row for one remote worker process; its id goes with every later call."""
    worker_id = f"{token.name}-{uuid.uuid4().hex[:8]}"
    register_worker(session=session, worker_id=worker_id, device=identity.device[:32], now=now)
    begin_write(session)
    session.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(
        host=identity.host[:255], pid=identity.pid, engine=identity.engine[:32], address=address[:64],
        token_id=token.id))
    session.commit()
    return session.get_one(WorkerRow, worker_id, populate_existing=True)


def own_worker(*, session: Session, token: WorkerToken, worker_id: str) -> WorkerRow:
    worker = session.get(WorkerRow, worker_id)
    if worker is None or worker.token_id != token.id:
        raise NotFound(f"No worker '{worker_id}' registered with this token: register first (POST "
                       "/api/worker/register).")
    return worker


def remote_heartbeat(*, session: Session, token: WorkerToken, worker_id: str, lease_id: str | None,
                     now: datetime | None = None) -> bool:
    """Keep the worker alive; whether `lease_id` still holds a job of this worker (False: stop working on it)."""
    own_worker(session=session, token=token, worker_id=worker_id)
    heartbeat(session=session, worker_id=worker_id, now=now)
    if lease_id is None:
        return True
    held = session.scalar(select(Submission.id).where(Submission.lease_id == lease_id,
                                                      Submission.worker_id == worker_id,
                                                      Submission.status == SubmissionStatus.scoring))
    session.commit()
    return held is not None


# -- holding a job -------------------------------------------------------------------------------------------------


def held_job(*, session: Session, token: WorkerToken, submission_id: int, lease_id: str, action: str,
             now: datetime | None = None) -> Submission:
    """The job a call names, if `lease_id` still holds it for a worker of this token; otherwise 409, the refused
    `action` recorded in the job's events (leases.refusal), or 404 for a job no lease of this token ever held."""
    submission = session.get(Submission, submission_id, populate_existing=True)
    holder = lease_holder(submission, lease_id) if submission is not None else None
    if submission is None or holder is None or not token_owns(session, token, holder):
        session.commit()
        raise NotFound(f"Submission {submission_id} was never claimed under lease '{lease_id}' by this token.")
    if still_holds(session=session, submission_id=submission_id, lease_id=lease_id):
        return submission
    if submission.status == SubmissionStatus.scored and submission.worker_id == holder and action == "result":
        session.commit()  # the answer to a result post was lost and the worker sent it again
        raise Conflict("This lease's result was stored already; nothing more is needed.",
                       detail={"lease_id": lease_id, "stored": True})
    why = (f"{action} from worker {holder} refused: its lease {lease_id[:8]} no longer holds this submission (it "
           f"is {submission.status}: requeued after a silence, cancelled, or its token was revoked)")
    begin_write(session)
    refusal(submission, why, now=now or utcnow(), worker_id=holder)
    session.commit()
    raise Conflict(why[0].upper() + why[1:] + ".", detail={"lease_id": lease_id})


def lease_holder(submission: Submission, lease_id: str) -> str | None:
    """The worker a lease was given to, from the job's claim events (each names its lease), newest first; None
    when no claim of this job gave that lease."""
    mark = f", lease {lease_id[:8]}"
    claims = [e for e in submission.events if e.to_status == SubmissionStatus.scoring and e.reason.endswith(mark)]
    return claims[-1].worker_id if claims else None


def token_owns(session: Session, token: WorkerToken, worker_id: str) -> bool:
    worker = session.get(WorkerRow, worker_id)
    return worker is not None and worker.token_id == token.id


# -- claiming ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceFile:
    path: Path
    fingerprint: str  # sha256 of the file: the worker's cache key and its check of the download
    size: int
    metadata: dict[str, Any]


_fingerprints: dict[tuple[str, int, int], tuple[str, dict[str, Any]]] = {}
_fingerprints_lock = threading.Lock()


def reference_file(competition: Competition, engine: str) -> ReferenceFile | None:
    """The competition's reference statistics for `engine` with their fingerprint (hashed once per file version:
    ~400 MB), or None when none were built for that engine."""
    path = competition.references_dir / reference_cache_file(engine)
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _fingerprints_lock:
        if key not in _fingerprints:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
            with np.load(path, allow_pickle=False) as archive:
                metadata = json.loads(str(archive["metadata"]))
            _fingerprints[key] = (digest.hexdigest(), metadata)
        fingerprint, metadata = _fingerprints[key]
    return ReferenceFile(path=path, fingerprint=fingerprint, size=stat.st_size, metadata=metadata)


@dataclass(frozen=True)
class ClaimedJob:
    """A claim as the worker is told it: the job and its lease, what to download, the server's settings it is
    scored under (JOB_SETTINGS), and for a model the seed of its first sample set."""

    submission: Submission
    lease_id: str
    competition: Competition
    references: ReferenceFile
    input_size: int
    settings: dict[str, int | float]
    seed: int | None


@dataclass(frozen=True)
class WorkerScorer:
    """What a claiming worker scores with: only jobs whose references were built by the same engine and weights."""

    engine: str
    weights_sha256: str
    scorer_version: str


def claim_job(*, session: Session, settings: Settings, token: WorkerToken, worker_id: str, scorer: WorkerScorer,
              now: datetime | None = None) -> ClaimedJob | None:
    """Claim the next submission for a remote worker under a new lease; None when nothing can be scored now.

    The server also requeues the jobs of silent workers here: with remote workers only, nobody else would."""
    now = now or utcnow()
    own_worker(session=session, token=token, worker_id=worker_id)
    heartbeat(session=session, worker_id=worker_id, now=now)
    begin_write(session)
    session.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(scorer_version=scorer.scorer_version))
    session.commit()
    requeue_stale(session=session, timeout_seconds=settings.worker_timeout_seconds,
                  max_worker_crashes=settings.max_worker_crashes, now=now)
    submission = claim_next_submission(session=session, worker_id=worker_id, now=now)
    if submission is None:
        return None
    lease_id = submission.lease_id
    assert lease_id is not None  # every claim gives one
    waiting = why_not_remote(submission, scorer=scorer)
    if isinstance(waiting, str):
        release(session=session, submission_id=submission.id, lease_id=lease_id, worker_id=worker_id,
                reason=waiting, now=now,
                delay=timedelta(seconds=max(settings.retry_backoff_seconds, settings.worker_poll_seconds)))
        return None
    competition, references = waiting
    return ClaimedJob(
        submission=submission, lease_id=lease_id, competition=competition, references=references,
        input_size=input_path(settings, submission).stat().st_size,
        settings={name: getattr(settings, name) for name in JOB_SETTINGS},
        seed=submission_seed(settings, submission.sha256) if submission.kind == SubmissionKind.model else None)


def input_path(settings: Settings, submission: Submission) -> Path:
    """The stored file a job scores: the uploaded zip, or the uploaded model."""
    store = model_path if submission.kind == SubmissionKind.model else upload_path
    return store(settings.data_dir, submission.sha256)


def why_not_remote(submission: Submission, *, scorer: WorkerScorer) -> str | tuple[Competition, ReferenceFile]:
    """The competition and references a remote worker scores this submission with, or why it waits in the queue
    (no attempt used) for another worker or a reference build."""
    try:
        competition = load_competition(submission.team.competition)
    except CompetitionUnavailable:
        return "waiting: the competition's configuration cannot be read"
    references = reference_file(competition, scorer.engine)
    if references is None:
        return (f"waiting: '{competition.slug}' has no reference statistics for the {scorer.engine} engine yet "
                f"(a local worker builds them: `arena admin references {competition.slug}`)")
    if references.metadata.get("weights_sha256") != scorer.weights_sha256:
        return (f"waiting: the {scorer.engine} reference statistics of '{competition.slug}' were built with other "
                "FID weights than this remote worker's")
    return competition, references


def job_file(*, session: Session, settings: Settings, token: WorkerToken, submission_id: int, lease_id: str,
             what: str) -> Path:
    """The held job's file ("input": its zip or model) or its reference statistics ("references")."""
    submission = held_job(session=session, token=token, submission_id=submission_id, lease_id=lease_id,
                          action=f"download of the {what}")
    if what == "input":
        return input_path(settings, submission)
    references = current_references(session, submission)
    if references is None:
        raise Conflict("The competition's reference statistics are gone since this job was claimed: give the job "
                       "back (POST .../release) and claim again.")
    return references.path


def current_references(session: Session, submission: Submission) -> ReferenceFile | None:
    """The reference file of the holding worker's engine as it is now (the worker checks the download's hash
    against the claim's fingerprint, the result names the fingerprint it was scored with)."""
    worker = session.get(WorkerRow, submission.worker_id) if submission.worker_id else None
    return reference_file(load_competition(submission.team.competition), (worker and worker.engine) or "torch")


# -- results -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostedResult:
    """A remote worker's result as it arrived: the SubmissionResult (JSON bytes), one grid per class, evidence
    images by (class, image index)."""

    report: bytes
    reference_fingerprint: str
    grids: dict[str, bytes]
    evidence: dict[tuple[str, int], bytes]


def accept_result(*, session: Session, settings: Settings, token: WorkerToken, submission_id: int, lease_id: str,
                  result: PostedResult, now: datetime | None = None) -> Submission:
    """Validate a result against its job, write its images, store it. A result that does not fit is refused
    (InvalidResult, 422) and the job goes back to the queue as a failed attempt."""
    now = now or utcnow()
    submission = held_job(session=session, token=token, submission_id=submission_id, lease_id=lease_id,
                          action="result", now=now)
    worker = session.get_one(WorkerRow, submission.worker_id)
    job = JobGiven(competition=load_competition(submission.team.competition),
                   references=current_references(session, submission), scorer_version=worker.scorer_version or "",
                   seed=submission_seed(settings, submission.sha256) if submission.kind == SubmissionKind.model
                   else None, sample_sets=settings.model_sample_sets)
    try:
        stored = check_result(result, job)
    except InvalidResult as exc:
        finish_failed(session=session, submission_id=submission_id, lease_id=lease_id, worker_id=worker.id,
                      error=f"remote worker {worker.id} sent an invalid result: {exc.message}",
                      max_attempts=settings.max_attempts, backoff_seconds=settings.retry_backoff_seconds, now=now)
        raise
    write_result_images(settings.data_dir, submission_id, result)
    if not finish_scored(session=session, submission_id=submission_id, lease_id=lease_id, worker_id=worker.id,
                         result=stored, now=now):
        raise Conflict("The job was requeued or cancelled while its result was stored; the result is not kept.")
    return session.get_one(Submission, submission_id, populate_existing=True)


def fail_job(*, session: Session, settings: Settings, token: WorkerToken, submission_id: int, lease_id: str,
             error: str, model_failed: bool = False, now: datetime | None = None) -> None:
    """The worker could not score the job: a failed attempt, retried with backoff while any remain; a model that
    could not be sampled (the team's fault, as on a local worker: model_entries.ModelFailed) fails at once."""
    submission = held_job(session=session, token=token, submission_id=submission_id, lease_id=lease_id,
                          action="failure report", now=now)
    error = inputs.plain_text(error[:1000], field="error", max_chars=1000)
    final = model_failed and submission.kind == SubmissionKind.model
    finish_failed(session=session, submission_id=submission_id, lease_id=lease_id,
                  worker_id=submission.worker_id or "", error=error if final else f"remote worker: {error}",
                  max_attempts=0 if final else settings.max_attempts, backoff_seconds=settings.retry_backoff_seconds,
                  now=now)


def release_job(*, session: Session, token: WorkerToken, submission_id: int, lease_id: str, reason: str,
                now: datetime | None = None) -> None:
    """The worker gives the job back (shutting down): queued again at once, no attempt used."""
    submission = held_job(session=session, token=token, submission_id=submission_id, lease_id=lease_id,
                          action="release", now=now)
    reason = inputs.plain_text(reason[:300], field="reason", max_chars=300)
    release(session=session, submission_id=submission_id, lease_id=lease_id, worker_id=submission.worker_id or "",
            now=now, reason=f"remote worker {submission.worker_id} gave the job back: {reason}")


def job_progress(*, session: Session, token: WorkerToken, submission_id: int, lease_id: str, progress: str) -> None:
    held_job(session=session, token=token, submission_id=submission_id, lease_id=lease_id,
             action="progress report")
    record_progress(session=session, submission_id=submission_id, lease_id=lease_id,
                    progress=inputs.printable_line(progress[:200], field='progress', max_chars=200))


@dataclass(frozen=True)
class JobGiven:
    """What the job was given, that its result must match."""

    competition: Competition
    references: ReferenceFile | None  # as they are now
    scorer_version: str  # the worker's, as it claimed
    seed: int | None  # a model's first seed
    sample_sets: int  # a model's number of sample sets


RESULT_FIELDS = frozenset(SubmissionResult.model_fields)


def check_result(result: PostedResult, job: JobGiven) -> SubmissionResult:
    """The SubmissionResult of a result that fits its job, or InvalidResult naming what does not."""
    fields = parse_report(result.report)
    unknown = sorted(set(fields) - RESULT_FIELDS)
    if unknown:
        raise InvalidResult(f"report: fields {unknown} are unknown; send a submissions.results.SubmissionResult",
                            detail={"unknown": unknown})
    check_finite(fields, "report")
    try:
        stored = SubmissionResult.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise InvalidResult(f"report.{where}: {first['msg']} ({exc.error_count()} problem(s) in all)") from exc
    check_columns(stored)
    if job.references is None or result.reference_fingerprint != job.references.fingerprint:
        raise InvalidResult(f"reference_fingerprint: {result.reference_fingerprint!r} is not the competition's "
                            "current reference statistics; score with the job's references (it is scored again)")
    for field, expected in (("scorer_version", job.scorer_version),
                            ("weights_sha256", job.references.metadata.get("weights_sha256"))):
        if getattr(stored, field) != expected:
            raise InvalidResult(f"report.{field}: {getattr(stored, field)!r}, but the job was given {expected!r}")
    check_sample_sets(stored, job)
    check_classes(stored, job.competition)
    check_images(result, stored, job.competition)
    return stored


def check_sample_sets(stored: SubmissionResult, job: JobGiven) -> None:
    """A model's result was sampled with the seeds the claim sent, over the server's number of sets; an image
    submission's has none."""
    if job.seed is None:
        if stored.sample_sets is not None:
            raise InvalidResult("report.sample_sets: this job is an image submission, not a model")
        return
    expected = [job.seed + k for k in range(job.sample_sets)]
    seeds = stored.sample_sets.seeds if stored.sample_sets is not None else None
    if seeds != expected:
        raise InvalidResult(f"report.sample_sets.seeds: {seeds}, but the job's model is sampled with the seeds the "
                            f"claim sent ({expected})")


def parse_report(report: bytes) -> dict[str, Any]:
    """The report's JSON object; NaN and Infinity (which Python's json would accept) are refused."""
    if len(report) > MAX_REPORT_BYTES:
        raise InvalidResult(f"report: {len(report):,} bytes, over the cap of {MAX_REPORT_BYTES:,}")

    def refuse(constant: str) -> None:
        raise InvalidResult(f"report: {constant} is not a finite number")

    try:
        fields = json.loads(report, parse_constant=refuse)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidResult(f"report: not JSON ({exc})") from exc
    if not isinstance(fields, dict):
        raise InvalidResult("report: must be a JSON object of score columns")
    return fields


def check_finite(value: Any, where: str) -> None:
    """Every number in the report is a finite JSON number (NaN and infinities never reach the boards)."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_finite(item, f"{where}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidResult(f"{where}: {value} is not a finite number")



TEXT_COLUMNS = {"device": 32, "precision": 16, "scorer_version": 64, "weights_sha256": 64}  # the columns' widths


def check_columns(stored: SubmissionResult) -> None:
    """Each text column within its width, so a stored result never breaks a database write."""
    for name, width in TEXT_COLUMNS.items():
        if len(getattr(stored, name)) > width:
            raise InvalidResult(f"report.{name}: must be text of at most {width} characters")


def check_classes(stored: SubmissionResult, competition: Competition) -> None:
    """The competition's classes, each with its image count; the totals are the sums of the classes."""
    classes = stored.class_scores
    if sorted(classes) != sorted(competition.classes):
        raise InvalidResult(f"report.class_scores: classes {sorted(classes)}, but the competition has "
                            f"{sorted(competition.classes)}")
    expected = competition.config.images_per_class
    for cls, values in classes.items():
        if values.n_images != expected:
            raise InvalidResult(f"report.class_scores.{cls}.n_images: {values.n_images!r}, but the competition "
                                f"takes {expected} per class")
    if stored.penalized is not any(values.penalized for values in classes.values()):
        raise InvalidResult("report.penalized: must say whether any class is penalized")
    for split in ("public", "private", "all"):
        total = sum(values.fid(split) for values in classes.values())
        stated = stored.score(split)
        if min(stated, *(values.fid(split) for values in classes.values())) < 0:
            raise InvalidResult(f"report.score_{split}: FIDs are never negative")
        if not math.isclose(stated, total, rel_tol=1e-9, abs_tol=1e-9):
            raise InvalidResult(f"report.score_{split}: {stated}, but the classes' fid_{split} add up to {total}")


def check_images(result: PostedResult, stored: SubmissionResult, competition: Competition) -> None:
    """One grid per class of at most 8x8 images, and evidence images only for the images the report names."""
    size = competition.config.image_size
    if sorted(result.grids) != sorted(competition.classes):
        raise InvalidResult(f"grids: {sorted(result.grids)}, but one grid per class {sorted(competition.classes)} "
                            "is needed")
    for cls, data in result.grids.items():
        check_png(data, f"grids/{cls}.png", max_bytes=MAX_GRID_BYTES, max_side=GRID_SIDE * size)
    for (cls, index), data in result.evidence.items():
        values = stored.class_scores.get(cls)
        named = {n.image for n in values.nearest_train + values.nearest_any} if values is not None else set()
        if index not in named:
            raise InvalidResult(f"evidence/{cls}/{index:05d}.png: the report names no such evidence image")
        check_png(data, f"evidence/{cls}/{index:05d}.png", max_bytes=MAX_EVIDENCE_BYTES, max_side=size,
                  exact_side=size)


def check_png(data: bytes, name: str, *, max_bytes: int, max_side: int, exact_side: int | None = None) -> None:
    """A grayscale PNG within its bounds, decoded fully (a truncated file fails here, not on a page)."""
    if len(data) > max_bytes:
        raise InvalidResult(f"{name}: {len(data):,} bytes, over the cap of {max_bytes:,}")
    if not data.startswith(PNG_SIGNATURE):
        raise InvalidResult(f"{name}: not a PNG file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size  # from the header, before any pixel is decoded
            if width > max_side or height > max_side or (exact_side and (width, height) != (exact_side, exact_side)):
                raise InvalidResult(f"{name}: {width}x{height} pixels, outside the bounds ({max_side} px a side)")
            if image.mode != "L":
                raise InvalidResult(f"{name}: mode {image.mode}, but grids are 8-bit grayscale (L)")
            image.load()
    except InvalidResult:
        raise
    except Exception as exc:
        raise InvalidResult(f"{name}: cannot be decoded as a PNG ({exc})") from exc


def write_result_images(data_dir: Path, submission_id: int, result: PostedResult) -> None:
    """The checked grids and evidence images where a local worker writes them, each replaced atomically."""
    targets = {grid_path(data_dir, submission_id, cls): data for cls, data in result.grids.items()}
    targets |= {evidence_path(data_dir, submission_id, cls, index): data
                for (cls, index), data in result.evidence.items()}
    for path, data in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, partial(Path.write_bytes, data=data))


# -- the organizer's view ------------------------------------------------------------------------------------------


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
