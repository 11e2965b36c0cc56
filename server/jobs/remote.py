"""Remote scoring workers: a GPU anywhere scores for the arena over HTTP, with nothing shared but the API.

The organizer gives a worker a token (`create_worker_token`; stored hashed like a team token). With it a worker
registers (`register_remote_worker`), claims the next job (`claim_job`: one lease per claim, the fencing token every
later post carries), downloads the job's zip and the competition's reference statistics (content-addressed by the
reference fingerprint, the file's sha256), heartbeats, and posts a result (`accept_result`), a failure or a release.

The server trusts nothing it is sent: a result must come on the job's newest lease, still held by its worker (else
409, recorded in the job's events); it is checked against the competition (classes, image counts, totals that add
up, finite numbers) and against what the job was given (scorer version, reference fingerprint and weights); grids
and evidence images are checked PNGs of bounded size. A bad result is refused with its reason and the job goes back
to the queue as a failed attempt. Revoking a token ends its leases at once.

The queue itself is server/queue.py's: every claim, progress, finish, failure and release goes through it, so a
remote job is the same job a local worker would score (events, attempts, crash recovery, board versions).
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
from dataclasses import MISSING, dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server import inputs
from server.competition import Competition, CompetitionUnavailable, load_competition, reference_cache_file
from server.config import Settings
from server.db import Submission, WorkerLease, WorkerRow, WorkerToken, begin_write, utcnow
from server.db.crud import hash_token
from server.db.events import note
from server.errors import ArenaError, Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from server.queue import (
    ScoreFields,
    claim_next_submission,
    finish_failed,
    finish_scored,
    heartbeat,
    record_progress,
    register_worker,
    release,
    requeue_stale,
    still_holds,
    stop_worker,
)
from server.storage import evidence_path, grid_path, model_path, upload_path
from submissions.atomic import write_atomically

WORKER_TOKEN_PREFIX = "arenaw_"  # never "arena_": a worker token is not a team token, and the reverse
SUBMISSION = "submission"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_GRID_BYTES = 2 * 1024 * 1024  # an 8x8 grid of 64x64 grayscale PNGs is ~100 KiB; 2 MiB leaves room for 128 px
MAX_EVIDENCE_BYTES = 256 * 1024
MAX_REPORT_BYTES = 4 * 1024 * 1024
GRID_SIDE = 8
WORKER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")


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
    session.add(row)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"A worker token named '{name}' exists already. Pick another name, or revoke that one.",
                       detail={"name": name}) from exc
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
    released = []
    for lease in open_leases(session=session, token_id=row.id):
        reason = f"worker token '{name}' revoked by the organizer; back in the queue"
        if release(session=session, submission_id=lease.job_id, worker_id=lease.worker_id, reason=reason, now=now):
            released.append(lease.job_id)
        end_lease(session=session, lease_id=lease.id, outcome="revoked", now=now)
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
    """Keep the worker alive; whether it still holds the job of `lease_id` (False: stop working on it)."""
    own_worker(session=session, token=token, worker_id=worker_id)
    heartbeat(session=session, worker_id=worker_id, now=now)
    if lease_id is None:
        return True
    lease = session.get(WorkerLease, lease_id)
    return lease is not None and lease.worker_id == worker_id and lease_is_current(session=session, lease=lease)


# -- leases --------------------------------------------------------------------------------------------------------


def open_leases(*, session: Session, token_id: int) -> list[WorkerLease]:
    return list(session.scalars(select(WorkerLease).where(WorkerLease.token_id == token_id,
                                                          WorkerLease.ended_at.is_(None))))


def end_lease(*, session: Session, lease_id: str, outcome: str, now: datetime | None = None) -> None:
    begin_write(session)
    session.execute(update(WorkerLease).where(WorkerLease.id == lease_id, WorkerLease.ended_at.is_(None))
                    .values(ended_at=now or utcnow(), outcome=outcome[:500]))
    session.commit()


def lease_is_current(*, session: Session, lease: WorkerLease) -> bool:
    """The job's newest lease, not ended, and its worker still holds the job (not requeued, cancelled or revoked)."""
    newest = session.scalar(select(WorkerLease.id).where(WorkerLease.kind == lease.kind,
                                                         WorkerLease.job_id == lease.job_id)
                            .order_by(WorkerLease.created_at.desc(), WorkerLease.id.desc()).limit(1))
    return (newest == lease.id and lease.ended_at is None
            and still_holds(session=session, submission_id=lease.job_id, worker_id=lease.worker_id))


def held_lease(*, session: Session, token: WorkerToken, lease_id: str, action: str,
               now: datetime | None = None) -> WorkerLease:
    """The lease of a post, if it still holds its job; otherwise 409, written into the job's history."""
    lease = session.get(WorkerLease, lease_id)
    if lease is None or lease.token_id != token.id:
        raise NotFound(f"No lease '{lease_id}' for this worker token.")
    if lease_is_current(session=session, lease=lease):
        return lease
    if lease.outcome == "scored":  # the answer to a result post was lost and the worker sent it again
        raise Conflict("This lease's result was stored already; nothing more is needed.",
                       detail={"lease_id": lease.id, "stored": True})
    now = now or utcnow()
    why = (f"refused the {action} of worker {lease.worker_id}: its lease {lease.id[:8]} no longer holds the job "
           "(it went silent and the job was requeued, the job was cancelled, or its token was revoked)")
    begin_write(session)
    submission = session.get(Submission, lease.job_id)
    if submission is not None:
        note(session, submission, why, now=now, worker_id=lease.worker_id)
    session.commit()
    end_lease(session=session, lease_id=lease.id, outcome=why, now=now)
    raise Conflict(why[0].upper() + why[1:] + ".", detail={"lease_id": lease.id})


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
    lease: WorkerLease
    submission: Submission
    competition: Competition
    references: ReferenceFile
    input_sha256: str
    input_size: int


@dataclass(frozen=True)
class WorkerScorer:
    """What a claiming worker scores with: only jobs whose references were built by the same engine and weights."""

    engine: str
    weights_sha256: str
    scorer_version: str


def claim_job(*, session: Session, settings: Settings, token: WorkerToken, worker_id: str, scorer: WorkerScorer,
              now: datetime | None = None) -> ClaimedJob | None:
    """Claim the next submission for a remote worker, with a new lease; None when nothing can be scored now.

    The server also requeues the jobs of silent workers here: with remote workers only, nobody else would."""
    now = now or utcnow()
    own_worker(session=session, token=token, worker_id=worker_id)
    heartbeat(session=session, worker_id=worker_id, now=now)
    requeue_stale(session=session, timeout_seconds=settings.worker_timeout_seconds,
                  max_worker_crashes=settings.max_worker_crashes, now=now)
    submission = claim_next_submission(session=session, worker_id=worker_id, now=now)
    if submission is None:
        return None
    waiting = why_not_remote(submission, settings=settings, scorer=scorer)
    if isinstance(waiting, str):
        release(session=session, submission_id=submission.id, worker_id=worker_id, reason=waiting, now=now,
                delay=timedelta(seconds=max(settings.retry_backoff_seconds, settings.worker_poll_seconds)))
        return None
    competition, references = waiting
    lease = WorkerLease(id=secrets.token_hex(16), kind=SUBMISSION, job_id=submission.id, worker_id=worker_id,
                        token_id=token.id, reference_fingerprint=references.fingerprint,
                        scorer_version=scorer.scorer_version, created_at=now)
    begin_write(session)
    session.add(lease)
    session.commit()
    path = upload_path(settings.data_dir, submission.sha256)
    return ClaimedJob(lease=lease, submission=submission, competition=competition, references=references,
                      input_sha256=submission.sha256, input_size=path.stat().st_size)


def why_not_remote(submission: Submission, *, settings: Settings,
                   scorer: WorkerScorer) -> str | tuple[Competition, ReferenceFile]:
    """The competition and references a remote worker scores this submission with, or why it waits in the queue
    (no attempt used) for another worker or a reference build."""
    try:
        competition = load_competition(submission.team.competition)
    except CompetitionUnavailable:
        return "waiting: the competition's configuration cannot be read"
    if model_path(settings.data_dir, submission.sha256).exists() and not upload_path(
            settings.data_dir, submission.sha256).exists():
        return "waiting for a local worker: remote workers do not sample model submissions yet"
    references = reference_file(competition, scorer.engine)
    if references is None:
        return (f"waiting: '{competition.slug}' has no reference statistics for the {scorer.engine} engine yet "
                f"(a local worker builds them: `arena admin references {competition.slug}`)")
    if references.metadata.get("weights_sha256") != scorer.weights_sha256:
        return (f"waiting: the {scorer.engine} reference statistics of '{competition.slug}' were built with other "
                "FID weights than this remote worker's")
    return competition, references


def job_file(*, session: Session, settings: Settings, token: WorkerToken, lease_id: str, what: str) -> Path:
    """The claimed job's zip ("input") or its reference statistics ("references"), only on a current lease."""
    lease = held_lease(session=session, token=token, lease_id=lease_id, action=f"download of the {what}")
    submission = session.get_one(Submission, lease.job_id)
    if what == "input":
        return upload_path(settings.data_dir, submission.sha256)
    references = reference_file(load_competition(submission.team.competition), _engine_of(session, lease))
    if references is None or references.fingerprint != lease.reference_fingerprint:
        raise Conflict("The competition's reference statistics changed since this job was claimed: give the job "
                       "back (POST .../release) and claim again.")
    return references.path


def _engine_of(session: Session, lease: WorkerLease) -> str:
    return session.get_one(WorkerRow, lease.worker_id).engine or "torch"


# -- results -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostedResult:
    """A remote worker's result as it arrived: the score columns (JSON bytes), one grid per class, evidence
    images by (class, image index)."""

    report: bytes
    reference_fingerprint: str
    grids: dict[str, bytes]
    evidence: dict[tuple[str, int], bytes]


def accept_result(*, session: Session, settings: Settings, token: WorkerToken, lease_id: str, result: PostedResult,
                  now: datetime | None = None) -> Submission:
    """Validate a result against its job, write its images, store the scores. A result that does not fit is
    refused (InvalidResult, 422) and the job goes back to the queue as a failed attempt."""
    now = now or utcnow()
    lease = held_lease(session=session, token=token, lease_id=lease_id, action="result", now=now)
    submission = session.get_one(Submission, lease.job_id)
    competition = load_competition(submission.team.competition)
    references = reference_file(competition, _engine_of(session, lease))
    try:
        scores = check_result(result, lease=lease, competition=competition, references=references)
    except InvalidResult as exc:
        finish_failed(session=session, submission_id=lease.job_id, worker_id=lease.worker_id,
                      error=f"remote worker {lease.worker_id} sent an invalid result: {exc.message}",
                      max_attempts=settings.max_attempts, backoff_seconds=settings.retry_backoff_seconds, now=now)
        end_lease(session=session, lease_id=lease.id, outcome=f"invalid result: {exc.message}", now=now)
        raise
    write_result_images(settings.data_dir, submission.id, result)
    kept = finish_scored(session=session, submission_id=lease.job_id, worker_id=lease.worker_id, scores=scores,
                         now=now)
    end_lease(session=session, lease_id=lease.id, outcome="scored" if kept else "lost before it was stored", now=now)
    if not kept:
        raise Conflict("The job was requeued or cancelled while its result was stored; the result is not kept.")
    return session.get_one(Submission, lease.job_id, populate_existing=True)


def fail_job(*, session: Session, settings: Settings, token: WorkerToken, lease_id: str, error: str,
             now: datetime | None = None) -> None:
    """The worker could not score the job (its own error): a failed attempt, retried with backoff while any remain."""
    lease = held_lease(session=session, token=token, lease_id=lease_id, action="failure report", now=now)
    error = inputs.plain_text(error[:1000], field="error", max_chars=1000)
    finish_failed(session=session, submission_id=lease.job_id, worker_id=lease.worker_id,
                  error=f"remote worker {lease.worker_id}: {error}",
                  max_attempts=settings.max_attempts, backoff_seconds=settings.retry_backoff_seconds, now=now)
    end_lease(session=session, lease_id=lease.id, outcome="failed", now=now)


def release_job(*, session: Session, token: WorkerToken, lease_id: str, reason: str,
                now: datetime | None = None) -> None:
    """The worker gives the job back (shutting down): queued again at once, no attempt used."""
    lease = held_lease(session=session, token=token, lease_id=lease_id, action="release", now=now)
    reason = inputs.plain_text(reason[:300], field="reason", max_chars=300)
    release(session=session, submission_id=lease.job_id, worker_id=lease.worker_id, now=now,
            reason=f"remote worker {lease.worker_id} gave the job back: {reason}")
    end_lease(session=session, lease_id=lease.id, outcome="released", now=now)


def job_progress(*, session: Session, token: WorkerToken, lease_id: str, progress: str) -> None:
    lease = held_lease(session=session, token=token, lease_id=lease_id, action="progress report")
    record_progress(session=session, submission_id=lease.job_id, worker_id=lease.worker_id,
                    progress=inputs.printable_line(progress[:200], field='progress', max_chars=200))


SCORE_FIELDS = frozenset(ScoreFields.__dataclass_fields__)
REQUIRED_FIELDS = frozenset(name for name, f in ScoreFields.__dataclass_fields__.items() if f.default is MISSING)


def check_result(result: PostedResult, *, lease: WorkerLease, competition: Competition,
                 references: ReferenceFile | None) -> ScoreFields:
    """The score columns of a result that fits its job, or InvalidResult naming what does not."""
    fields = parse_report(result.report)
    unknown, missing = set(fields) - SCORE_FIELDS, REQUIRED_FIELDS - set(fields)
    if unknown or missing:
        raise InvalidResult(f"report: fields {sorted(unknown)} are unknown and {sorted(missing)} missing; send the "
                            "score columns of server.queue.ScoreFields", detail={"unknown": sorted(unknown),
                                                                                 "missing": sorted(missing)})
    if fields.get("sample_sets") is not None:
        raise InvalidResult("report.sample_sets: remote workers score image submissions only")
    check_finite(fields, "report")
    check_columns(fields)
    if result.reference_fingerprint != lease.reference_fingerprint:
        raise InvalidResult(f"reference_fingerprint: {result.reference_fingerprint!r} is not the one this job was "
                            f"given ({lease.reference_fingerprint}); score with the job's references")
    if references is None or references.fingerprint != lease.reference_fingerprint:
        raise InvalidResult("the competition's reference statistics changed while the job was scored; it is "
                            "scored again")
    for field, expected in (("scorer_version", lease.scorer_version),
                            ("weights_sha256", references.metadata.get("weights_sha256"))):
        if fields[field] != expected:
            raise InvalidResult(f"report.{field}: {fields[field]!r}, but the job was given {expected!r}")
    check_classes(fields, competition)
    check_images(result, fields, competition)
    return ScoreFields(**fields)


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


def _number(fields: dict[str, Any], key: str, where: str) -> float:
    value = fields.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidResult(f"{where}.{key}: {value!r} is not a non-negative number")
    return float(value)


TEXT_COLUMNS = {"device": 32, "precision": 16, "scorer_version": 64, "weights_sha256": 64}  # the columns' widths


def check_columns(fields: dict[str, Any]) -> None:
    """Each column's type and width, so a stored result never breaks a page or a database write."""
    for name, width in TEXT_COLUMNS.items():
        if not isinstance(fields[name], str) or len(fields[name]) > width:
            raise InvalidResult(f"report.{name}: must be text of at most {width} characters")
    if not isinstance(fields["timings"], dict):
        raise InvalidResult("report.timings: must be an object of seconds")
    for split in ("public", "private", "all"):
        se = fields.get(f"score_{split}_se")
        if se is not None:
            _number(fields, f"score_{split}_se", "report")


def check_classes(fields: dict[str, Any], competition: Competition) -> None:
    """The competition's classes, each with its image count; the totals are the sums of the classes."""
    classes = fields["class_scores"]
    if not isinstance(classes, dict) or sorted(classes) != sorted(competition.classes):
        found = sorted(classes) if isinstance(classes, dict) else classes
        raise InvalidResult(f"report.class_scores: classes {found}, but the competition has "
                            f"{sorted(competition.classes)}")
    expected = competition.config.images_per_class
    for cls, values in classes.items():
        where = f"report.class_scores.{cls}"
        if not isinstance(values, dict) or values.get("n_images") != expected:
            count = values.get("n_images") if isinstance(values, dict) else values
            raise InvalidResult(f"{where}.n_images: {count!r}, but the competition takes {expected} per class")
        if not isinstance(values.get("penalized"), bool):
            raise InvalidResult(f"{where}.penalized: must be true or false")
    if fields["penalized"] is not any(values["penalized"] for values in classes.values()):
        raise InvalidResult("report.penalized: must say whether any class is penalized")
    for split in ("public", "private", "all"):
        total = sum(_number(values, f"fid_{split}", f"report.class_scores.{cls}") for cls, values in classes.items())
        stated = _number(fields, f"score_{split}", "report")
        if not math.isclose(stated, total, rel_tol=1e-9, abs_tol=1e-9):
            raise InvalidResult(f"report.score_{split}: {stated}, but the classes' fid_{split} add up to {total}")


def check_images(result: PostedResult, fields: dict[str, Any], competition: Competition) -> None:
    """One grid per class of at most 8x8 images, and evidence images only for the images the report names."""
    size = competition.config.image_size
    if sorted(result.grids) != sorted(competition.classes):
        raise InvalidResult(f"grids: {sorted(result.grids)}, but one grid per class {sorted(competition.classes)} "
                            "is needed")
    for cls, data in result.grids.items():
        check_png(data, f"grids/{cls}.png", max_bytes=MAX_GRID_BYTES, max_side=GRID_SIDE * size)
    for (cls, index), data in result.evidence.items():
        values = fields["class_scores"].get(cls)
        named = {n.get("image") for key in ("nearest_train", "nearest_any") for n in (values or {}).get(key) or []
                 if isinstance(n, dict)}
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
