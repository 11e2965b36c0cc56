"""Remote scoring workers (`arena worker --server URL --token TOKEN`): register, claim, download, heartbeat, post.

Every route takes a worker token (`arena admin workers create NAME`) and nothing else: a team's or the organizer's
token gets 403, an unknown one 401, and nothing is claimed. A worker reads only the jobs it holds, through their
lease (server/jobs/remote.py): every job route names the submission and the lease its claim gave; a reference
build's routes (/builds/BUILD/LEASE/..., server/jobs/remote_builds.py) name the build and its lease.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Depends, File, Form, Header, Request, UploadFile
from fastapi import Path as FastAPIPath
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from server.api.deps import TokenDep
from server.api.schemas import (
    BuildAccepted,
    BuildProgress,
    BuildPublic,
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
from server.jobs import remote, remote_builds
from server.jobs.remote import WorkerIdentity
from server.jobs.remote_builds import ClaimedBuild, WorkerScorer
from server.jobs.remote_results import MAX_GRID_BYTES, MAX_REPORT_BYTES, InvalidResult, PostedResult
from server.jobs.worker_tokens import authenticate_worker
from server.request_deps import NowDep, SessionDep, SettingsDep

router = APIRouter(prefix="/worker", tags=["workers"])
T = TypeVar("T")
LeaseId = Annotated[str, FastAPIPath(pattern=r"^[0-9a-f]{32}$", description="The lease of a claimed job.")]
JobId = Annotated[int, FastAPIPath(ge=1, le=2**31 - 1, description="The claimed submission's id.")]
BuildId = Annotated[int, FastAPIPath(ge=1, le=2**31 - 1, description="The claimed reference build's id.")]
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


@router.post("/claim", response_model=JobPublic | BuildPublic,
             responses={204: {"description": "Nothing to score now"}})
def claim(body: WorkerClaim, token: WorkerTokenDep, session: SessionDep, settings: SettingsDep, request: Request,
          now: NowDep) -> JobPublic | BuildPublic | Response:
    """The next job for this worker, with a new lease: a reference build for its engine and weights (queued, or
    needed by a waiting submission), or a submission whose references it has."""
    scorer = WorkerScorer(engine=body.engine, weights_sha256=body.weights_sha256, scorer_version=body.scorer_version)
    job = remote.claim_job(session=session, settings=settings, token=token, worker_id=body.worker_id,
                           scorer=scorer, now=now)
    if job is None:
        return Response(status_code=204)
    if isinstance(job, ClaimedBuild):
        return build_public(job, request)
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


def build_public(claimed: ClaimedBuild, request: Request) -> BuildPublic:
    build, competition = claimed.build, claimed.competition
    where = {"build_id": build.id, "lease_id": claimed.lease_id}
    return BuildPublic(
        lease_id=claimed.lease_id, build_id=build.id, competition=competition.slug,
        config=competition.config.model_dump(mode="json"),
        manifest=competition.manifest.model_dump(mode="json", by_alias=True, exclude_none=True),
        images_url=str(request.url_for("build_image", index=0, **where)).removesuffix("0"),
        progress_url=str(request.url_for("post_build_progress", **where)),
        references_url=str(request.url_for("post_references", **where)),
        progress=build.progress or {}, engine=build.engine or "", weights_sha256=build.weights_sha256 or "")


# -- reference builds (server/jobs/remote_builds.py) ------------------------------------------------------------------


@router.get("/builds/{build_id}/{lease_id}/images/{index}", response_class=FileResponse)
def build_image(build_id: BuildId, lease_id: LeaseId, index: Annotated[int, FastAPIPath(ge=0, le=2**31 - 1)],
                token: WorkerTokenDep, session: SessionDep) -> FileResponse:
    """The manifest's image at `index`, for the held build (its sha256 is in the manifest the claim sent)."""
    path = remote_builds.build_image(session=session, token=token, build_id=build_id, lease_id=lease_id, index=index)
    return FileResponse(path, media_type="application/octet-stream")


@router.post("/builds/{build_id}/{lease_id}/progress", status_code=204)
def post_build_progress(build_id: BuildId, lease_id: LeaseId, body: BuildProgress, token: WorkerTokenDep,
                        session: SessionDep) -> Response:
    """Images done per class (the console's progress bar)."""
    remote_builds.build_progress(session=session, token=token, build_id=build_id, lease_id=lease_id,
                                 progress=body.model_dump())
    return Response(status_code=204)


@router.post("/builds/{build_id}/{lease_id}/references", response_model=BuildAccepted,
             responses={409: {}, 413: {}, 422: {}})
async def post_references(build_id: BuildId, lease_id: LeaseId, request: Request, token: WorkerTokenDep,
                          session: SessionDep, settings: SettingsDep, now: NowDep,
                          sha256: Annotated[str, Header(alias="X-Content-Sha256", pattern=r"^[0-9a-f]{64}$")]
                          ) -> BuildAccepted:
    """The built reference file as the raw body, streamed to disk up to `max_reference_upload_bytes` (413 past
    it), checked against the build (422 with the reason: the build fails), then moved where a local build writes
    it; the build is done and the competition's submissions are scored."""
    def on_this_build(function: Callable[..., T]) -> Callable[..., T]:
        return partial(function, session=session, token=token, build_id=build_id, lease_id=lease_id)

    upload = await run_in_threadpool(on_this_build(remote_builds.upload_file))
    try:
        if not await receive_capped(request, upload, settings.max_reference_upload_bytes):
            raise await run_in_threadpool(on_this_build(remote_builds.refuse_oversized), settings=settings,
                                          upload=upload, now=now)
        build = await run_in_threadpool(on_this_build(remote_builds.accept_references), upload=upload,
                                        sha256=sha256, now=now)
    finally:
        upload.unlink(missing_ok=True)  # moved into place, or refused
    return BuildAccepted(build_id=build.id, status=build.status, outcome=build.outcome)


async def receive_capped(request: Request, target: Path, cap: int) -> bool:
    """Write the request body to `target`; False as soon as it passes `cap` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        return False
    received = 0
    with target.open("wb") as out:
        async for chunk in request.stream():
            received += len(chunk)
            if received > cap:
                return False
            out.write(chunk)
    return True


@router.post("/builds/{build_id}/{lease_id}/failure", status_code=204)
def post_build_failure(build_id: BuildId, lease_id: LeaseId, body: JobFailure, token: WorkerTokenDep,
                       session: SessionDep, now: NowDep) -> Response:
    """The worker could not build: the build fails with its reason."""
    remote_builds.fail_build(session=session, token=token, build_id=build_id, lease_id=lease_id, error=body.error,
                             now=now)
    return Response(status_code=204)


@router.post("/builds/{build_id}/{lease_id}/release", status_code=204)
def post_build_release(build_id: BuildId, lease_id: LeaseId, token: WorkerTokenDep, session: SessionDep,
                       now: NowDep) -> Response:
    """Give the held build back (the worker is shutting down): queued again at once."""
    remote_builds.give_back_build(session=session, token=token, build_id=build_id, lease_id=lease_id, now=now)
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
