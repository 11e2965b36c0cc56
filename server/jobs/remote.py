"""Remote scoring workers: a GPU anywhere scores for the arena over HTTP, with nothing shared but the API.

The organizer gives a worker a token (worker_tokens.py; stored hashed like a team token). With it a worker
registers (`register_remote_worker`), claims the next job (`claim_job`), downloads the job's file (a zip, or an ONNX
model with the seeds to sample it with) and the competition's reference statistics (content-addressed by the
reference fingerprint, the file's sha256), heartbeats, and posts a result (`accept_result`), a failure or a
release. A claim may instead give a reference build: the worker builds the competition's statistics and uploads
them (remote_builds.py), so an arena whose only GPU is remote needs no local worker at all.

A remote worker holds its job exactly as a local one does (server/jobs/leases.py): the claim gives the job a new
`lease_id`, and every later call names the job and presents that lease; the queue's own functions (queue.py) record
the outcome, so a remote job is the same job a local worker would score (events, attempts, crash recovery, board
versions). What only a remote worker needs: the lease's length as the server tells it (the worker heartbeat
timeout: a worker that has not heard from the server for that long drops its job, which has been requeued), and a
model's sampling seeds, computed here under the server's secret salt and sent with the claim (the salt never is).

The server trusts nothing it is sent: a call on a lease that no longer holds its job is 409 and recorded in the
job's events; a result is checked against the competition (classes, image counts, totals that add up, finite
numbers) and against what the job was given (reference fingerprint and weights, the worker's scorer version, a
model's seeds and number of sample sets); grids and evidence images are checked PNGs of bounded size (all in
remote_results.py). A bad result is refused with its reason and the job goes back to the queue as a failed attempt.
Revoking a token gives back the jobs its workers hold, at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server import inputs
from server.competition_dir import Competition, CompetitionUnavailable, load_competition
from server.config import Settings
from server.db import Submission, SubmissionKind, SubmissionStatus, WorkerRow, WorkerToken, begin_write, utcnow
from server.db.events import refusal
from server.errors import Conflict, NotFound
from server.jobs.leases import BUILDS, SUBMISSIONS, heartbeat, lease_holder, register_worker
from server.jobs.queue import (
    claim_next_submission,
    finish_failed,
    finish_scored,
    record_progress,
    release,
    requeue_stale,
    still_holds,
)
from server.jobs.remote_builds import (
    ClaimedBuild,
    ReferenceProblem,
    WorkerScorer,
    claim_build,
    queue_build_for,
    reference_problem,
)
from server.jobs.remote_results import (
    InvalidResult,
    JobGiven,
    PostedResult,
    ReferenceFile,
    check_result,
    reference_file,
    write_result_images,
)
from server.jobs.sampling_seeds import submission_seed
from server.jobs.worker_tokens import token_owns
from server.storage import model_path, upload_path

# The server's settings a job is scored under, sent with the claim, so a remote worker decodes and samples as a local
# one would: the zip limits (Settings.zip_limits), a model's number of sample sets and its time and memory caps.
JOB_SETTINGS = ("max_zip_entries", "max_uncompressed_bytes", "max_compression_ratio", "max_image_pixels",
                "max_model_bytes", "model_memory_bytes", "model_dry_run_seconds", "model_sample_sets",
                "model_sampling_seconds")


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
    held = [session.scalar(select(kind.table.id).where(kind.table.lease_id == lease_id,
                                                       kind.table.worker_id == worker_id,
                                                       kind.table.status == kind.running))
            for kind in (SUBMISSIONS, BUILDS)]
    session.commit()
    return held != [None, None]


# -- holding a job -------------------------------------------------------------------------------------------------


def held_job(*, session: Session, token: WorkerToken, submission_id: int, lease_id: str, action: str,
             now: datetime | None = None) -> Submission:
    """The job a call names, if `lease_id` still holds it for a worker of this token; otherwise 409, the refused
    `action` recorded in the job's events (leases.refusal), or 404 for a job no lease of this token ever held."""
    submission = session.get(Submission, submission_id, populate_existing=True)
    holder = lease_holder(submission, SUBMISSIONS, lease_id) if submission is not None else None
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



# -- claiming ------------------------------------------------------------------------------------------------------


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


def claim_job(*, session: Session, settings: Settings, token: WorkerToken, worker_id: str, scorer: WorkerScorer,
              now: datetime | None = None) -> ClaimedJob | ClaimedBuild | None:
    """Claim the next job for a remote worker under a new lease: a queued reference build first (as a local worker
    does), else the next submission. A submission that waits for references this worker can build queues that build
    and the worker gets it (remote_builds.py). None when nothing can be done now.

    The server also requeues the jobs of silent workers here: with remote workers only, nobody else would."""
    now = now or utcnow()
    own_worker(session=session, token=token, worker_id=worker_id)
    heartbeat(session=session, worker_id=worker_id, now=now)
    begin_write(session)
    session.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(scorer_version=scorer.scorer_version))
    session.commit()
    build = claim_build(session=session, settings=settings, worker_id=worker_id, scorer=scorer, now=now)
    if build is not None:
        return build
    requeue_stale(session=session, timeout_seconds=settings.worker_timeout_seconds,
                  max_worker_crashes=settings.max_worker_crashes, now=now)
    submission = claim_next_submission(session=session, worker_id=worker_id, now=now)
    if submission is None:
        return None
    lease_id = submission.lease_id
    assert lease_id is not None  # every claim gives one
    waiting = why_not_remote(submission, scorer=scorer)
    if isinstance(waiting, tuple):
        competition, references = waiting
        return ClaimedJob(
            submission=submission, lease_id=lease_id, competition=competition, references=references,
            input_size=input_path(settings, submission).stat().st_size,
            settings={name: getattr(settings, name) for name in JOB_SETTINGS},
            seed=submission_seed(settings, submission.sha256) if submission.kind == SubmissionKind.model else None)
    return wait_or_build(session=session, settings=settings, submission=submission, waiting=waiting,
                         worker_id=worker_id, scorer=scorer, now=now)


def wait_or_build(*, session: Session, settings: Settings, submission: Submission,
                  waiting: str | ReferenceProblem, worker_id: str, scorer: WorkerScorer,
                  now: datetime) -> ClaimedBuild | None:
    """Give back a claimed submission this worker cannot score (no attempt used, why in its history); when its
    references are what is missing and this worker can build them, queue that build and claim a build instead."""
    if isinstance(waiting, str):
        blocked: str | None = waiting
        why = waiting
    else:
        blocked = queue_build_for(session=session, competition=submission.team.competition, problem=waiting,
                                  worker_id=worker_id, now=now)
        why = waiting.why
    reason = f"waiting: {blocked}" if blocked else f"waiting for a reference build: {why}"
    retry_after = timedelta(seconds=max(settings.retry_backoff_seconds, settings.worker_poll_seconds))
    release(session=session, submission_id=submission.id, lease_id=submission.lease_id or "", worker_id=worker_id,
            reason=reason, now=now, delay=retry_after if blocked else None)  # a build holds its submissions back
    return None if blocked else claim_build(session=session, settings=settings, worker_id=worker_id, scorer=scorer,
                                            now=now)


def input_path(settings: Settings, submission: Submission) -> Path:
    """The stored file a job scores: the uploaded zip, or the uploaded model."""
    store = model_path if submission.kind == SubmissionKind.model else upload_path
    return store(settings.data_dir, submission.sha256)


def why_not_remote(submission: Submission, *,
                   scorer: WorkerScorer) -> str | ReferenceProblem | tuple[Competition, ReferenceFile]:
    """The competition and references a remote worker scores this submission with, or why it waits in the queue
    (no attempt used): its references are missing or do not fit this worker (a ReferenceProblem), or the
    competition cannot be read."""
    try:
        competition = load_competition(submission.team.competition)
    except CompetitionUnavailable:
        return "the competition's configuration cannot be read"
    problem = reference_problem(competition, scorer)
    if problem is not None:
        return problem
    references = reference_file(competition, scorer.engine)
    assert references is not None  # reference_problem found them
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


