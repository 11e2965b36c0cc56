"""Remote scoring workers (`arena worker --server URL --token TOKEN`): register, claim, download, heartbeat, post.

Every route takes a worker token (`arena admin workers create NAME`) and nothing else: a team's or the organizer's
token gets 403, an unknown one 401, and nothing is claimed. A worker reads only the jobs it holds, through their
lease (server/jobs/remote.py): every job route names the submission and the lease its claim gave.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi import Path as FastAPIPath
from fastapi.responses import FileResponse, Response

from server.api.deps import TokenDep
from server.api.schemas import (
    JobFailure,
    JobProgress,
    JobPublic,
    JobRelease,
    ResultAccepted,
    WorkerBeat,
    WorkerBeatAnswer,
    WorkerClaim,
    WorkerRegister,
    WorkerRegistered,
)
from server.db import WorkerToken
from server.errors import Unauthorized, UploadTooLarge
from server.jobs import remote
from server.jobs.remote import WorkerIdentity, WorkerScorer
from server.jobs.remote_results import MAX_GRID_BYTES, MAX_REPORT_BYTES, InvalidResult, PostedResult
from server.jobs.worker_tokens import authenticate_worker
from server.request_deps import NowDep, SessionDep, SettingsDep

router = APIRouter(prefix="/worker", tags=["workers"])
LeaseId = Annotated[str, FastAPIPath(pattern=r"^[0-9a-f]{32}$", description="The lease of a claimed job.")]
JobId = Annotated[int, FastAPIPath(ge=1, le=2**31 - 1, description="The claimed submission's id.")]
MAX_RESULT_FILES = 200  # a grid per class and a few evidence images per class


def get_worker_token(session: SessionDep, credentials: TokenDep) -> WorkerToken:
    if credentials is None:
        raise Unauthorized("Worker route: send a worker token as `Authorization: Bearer arenaw_...`.",
                           headers={"WWW-Authenticate": "Bearer"})
    return authenticate_worker(session=session, token=credentials.credentials)


WorkerTokenDep = Annotated[WorkerToken, Depends(get_worker_token)]


@router.post("/register", response_model=WorkerRegistered, status_code=201)
def register(body: WorkerRegister, token: WorkerTokenDep, session: SessionDep, settings: SettingsDep,
             request: Request, now: NowDep) -> WorkerRegistered:
    """Start a worker session: its id names it in every later call and on the organizer's console."""
    identity = WorkerIdentity(host=body.host, pid=body.pid, device=body.device, engine=body.engine)
    worker = remote.register_remote_worker(session=session, token=token, identity=identity, now=now,
                                           address=request.client.host if request.client else "unknown")
    return WorkerRegistered(worker_id=worker.id, heartbeat_seconds=settings.worker_heartbeat_seconds,
                            lease_seconds=settings.worker_timeout_seconds)


@router.post("/heartbeat", response_model=WorkerBeatAnswer)
def beat(body: WorkerBeat, token: WorkerTokenDep, session: SessionDep, settings: SettingsDep,
         now: NowDep) -> WorkerBeatAnswer:
    """Keep the worker (and its lease) alive; says whether the lease still holds its job."""
    holds = remote.remote_heartbeat(session=session, token=token, worker_id=body.worker_id, lease_id=body.lease_id,
                                    now=now)
    return WorkerBeatAnswer(holds=holds, lease_seconds=settings.worker_timeout_seconds)


@router.post("/claim", response_model=JobPublic, responses={204: {"description": "Nothing to score now"}})
def claim(body: WorkerClaim, token: WorkerTokenDep, session: SessionDep, settings: SettingsDep, request: Request,
          now: NowDep) -> JobPublic | Response:
    """The next job this worker can score (its engine's and weights' references exist), with a new lease."""
    scorer = WorkerScorer(engine=body.engine, weights_sha256=body.weights_sha256, scorer_version=body.scorer_version)
    job = remote.claim_job(session=session, settings=settings, token=token, worker_id=body.worker_id,
                           scorer=scorer, now=now)
    if job is None:
        return Response(status_code=204)
    where = {"submission_id": job.submission.id, "lease_id": job.lease_id}
    return JobPublic(
        lease_id=job.lease_id, submission_id=job.submission.id, submission_kind=job.submission.kind,
        competition=job.competition.slug, config=job.competition.config.model_dump(mode="json"),
        manifest=job.competition.manifest.model_dump(mode="json", by_alias=True, exclude_none=True),
        input_sha256=job.submission.sha256, input_size=job.input_size,
        input_url=str(request.url_for("job_file", what="input", **where)),
        reference_fingerprint=job.references.fingerprint, reference_size=job.references.size,
        reference_url=str(request.url_for("job_file", what="references", **where)), settings=job.settings,
        seed=job.seed)


@router.get("/jobs/{submission_id}/{lease_id}/{what}", response_class=FileResponse)
def job_file(submission_id: JobId, lease_id: LeaseId, what: Literal["input", "references"], token: WorkerTokenDep,
             session: SessionDep, settings: SettingsDep) -> FileResponse:
    """The held job's file ("input": its zip or model) or the reference statistics it is scored against
    ("references": their sha256 is the job's reference_fingerprint). Range requests resume a broken download."""
    path = remote.job_file(session=session, settings=settings, token=token, submission_id=submission_id,
                           lease_id=lease_id, what=what)
    return FileResponse(path, media_type="application/octet-stream")


@router.post("/jobs/{submission_id}/{lease_id}/result", response_model=ResultAccepted,
             responses={413: {}, 422: {}, 409: {}})
def post_result(submission_id: JobId, lease_id: LeaseId, token: WorkerTokenDep, session: SessionDep,
                settings: SettingsDep, now: NowDep,
                report: UploadFile = File(..., description="The result (submissions.results.SubmissionResult) "
                                          "as JSON."),
                reference_fingerprint: str = Form(..., max_length=64),
                images: list[UploadFile] = File(default=[], description="grids/CLASS.png and "
                                                "evidence/CLASS/INDEX.png, named by their file names.")
                ) -> ResultAccepted:
    """The held job's result: validated against the job; a bad one is refused with the reason and requeued."""
    if len(images) > MAX_RESULT_FILES:
        raise UploadTooLarge(f"{len(images)} images; a result holds at most {MAX_RESULT_FILES}.")
    result = PostedResult(report=read_capped(report, MAX_REPORT_BYTES),
                          reference_fingerprint=reference_fingerprint, **named_images(images))
    submission = remote.accept_result(session=session, settings=settings, token=token, submission_id=submission_id,
                                      lease_id=lease_id, result=result, now=now)
    return ResultAccepted(submission_id=submission.id, status=submission.status,
                          score_public=submission.score_public)


@router.post("/jobs/{submission_id}/{lease_id}/failure", status_code=204)
def post_failure(submission_id: JobId, lease_id: LeaseId, body: JobFailure, token: WorkerTokenDep,
                 session: SessionDep, settings: SettingsDep, now: NowDep) -> Response:
    """The worker could not score the held job: a failed attempt, retried with backoff while attempts remain (a
    model that could not be sampled fails at once)."""
    remote.fail_job(session=session, settings=settings, token=token, submission_id=submission_id, lease_id=lease_id,
                    error=body.error, model_failed=body.model_failed, now=now)
    return Response(status_code=204)


@router.post("/jobs/{submission_id}/{lease_id}/release", status_code=204)
def post_release(submission_id: JobId, lease_id: LeaseId, body: JobRelease, token: WorkerTokenDep,
                 session: SessionDep, now: NowDep) -> Response:
    """Give the held job back (the worker is shutting down): queued again at once, no attempt used."""
    remote.release_job(session=session, token=token, submission_id=submission_id, lease_id=lease_id,
                       reason=body.reason, now=now)
    return Response(status_code=204)


@router.post("/jobs/{submission_id}/{lease_id}/progress", status_code=204)
def post_progress(submission_id: JobId, lease_id: LeaseId, body: JobProgress, token: WorkerTokenDep,
                  session: SessionDep) -> Response:
    """What the worker is doing on the held job (the team's status box shows it)."""
    remote.job_progress(session=session, token=token, submission_id=submission_id, lease_id=lease_id,
                        progress=body.progress)
    return Response(status_code=204)


def read_capped(upload: UploadFile, cap: int) -> bytes:
    data = upload.file.read(cap + 1)
    if len(data) > cap:
        raise UploadTooLarge(f"{upload.filename or 'a part'} is over the cap of {cap:,} bytes.")
    return data


def named_images(images: list[UploadFile]) -> dict[str, dict]:
    """grids/CLASS.png -> grids[CLASS]; evidence/CLASS/INDEX.png -> evidence[(CLASS, INDEX)]; anything else is 422."""
    grids: dict[str, bytes] = {}
    evidence: dict[tuple[str, int], bytes] = {}
    for upload in images:
        parts = (upload.filename or "").split("/")
        data = read_capped(upload, MAX_GRID_BYTES)
        if len(parts) == 2 and parts[0] == "grids" and parts[1].endswith(".png"):
            grids[parts[1].removesuffix(".png")] = data
        elif len(parts) == 3 and parts[0] == "evidence" and parts[2].removesuffix(".png").isdigit():
            evidence[(parts[1], int(parts[2].removesuffix(".png")))] = data
        else:
            raise InvalidResult(f"images: {upload.filename!r} is neither grids/CLASS.png nor "
                                "evidence/CLASS/INDEX.png")
    return {"grids": grids, "evidence": evidence}
