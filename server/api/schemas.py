"""API schemas (separate from the ORM tables): *Create for input, *Public for output, *sPublic for lists."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, create_model

from server import inputs
from server.competition_dir import Competition, CompetitionConfig
from server.config import Settings
from server.db import CompetitionRow, JobEvent, Submission, Team
from server.organizer.settings import EDITABLE, SCORE_FIELDS
from server.uploads.rules import Quota
from submissions.results import ResultView, interval_95


class ErrorBody(BaseModel):
    code: str
    message: str
    detail: Any = None


class ErrorPublic(BaseModel):
    """Every API error: `{"error": {"code", "message", "detail"}}` (documented per route for clients)."""

    error: ErrorBody

class CompetitionPublic(BaseModel):
    slug: str
    title: str
    description: str
    classes: list[str]
    images_per_class: int
    image_size: int
    mode: str
    metric: str
    public_fraction: float
    memorization_eps: str | float
    daily_limit: int
    final_selection_limit: int
    self_registration: bool
    deadline: datetime | None
    private_revealed: bool
    baseline_rules: str
    team_rules: str
    submission_kinds: str
    # The server's limits, so clients (`arena submit`) check a zip locally exactly as the server will.
    max_upload_bytes: int
    max_entries: int
    max_uncompressed_bytes: int
    max_compression_ratio: int
    max_image_pixels: int
    max_model_bytes: int
    model_memory_bytes: int
    model_time_limit_s: float

    @classmethod
    def build(cls, row: CompetitionRow, competition: Competition, settings: Settings) -> CompetitionPublic:
        config = competition.config.model_dump(exclude={"slug", "title", "join_code"})  # the join code stays secret
        return cls(**config, slug=row.slug, title=row.title,
                   private_revealed=row.private_revealed_at is not None, max_upload_bytes=settings.max_upload_bytes,
                   **settings.zip_limits)


def _settings_update() -> type[BaseModel]:
    """Every setting an organizer may change, each optional, with CompetitionConfig's own type and range (the one
    table of settings): the API documents them, and server/organizer/settings.py validates the resulting config as
    a whole."""
    fields: dict[str, Any] = {}
    for name, effect in {**EDITABLE, **SCORE_FIELDS}.items():
        info = CompetitionConfig.model_fields[name]
        ranged: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        fields[name] = (ranged | None, Field(None, description=effect))
    return create_model("SettingsUpdate", __config__=ConfigDict(extra="forbid", allow_inf_nan=False), **fields)


if TYPE_CHECKING:  # a model built at import time is no type mypy can read; to it, it is a model like any
    SettingsUpdate = BaseModel
else:
    SettingsUpdate = _settings_update()


class CompetitionsPublic(BaseModel):
    data: list[CompetitionPublic]
    count: int


PRINTABLE_LINE = "one line of at most {} printable characters (no control or invisible format characters)"
TeamName = Annotated[str, Field(min_length=1, max_length=inputs.MAX_NAME_CHARS,
                                description=PRINTABLE_LINE.format(inputs.MAX_NAME_CHARS)),
                     AfterValidator(inputs.team_name)]
MemberName = Annotated[str, Field(max_length=inputs.MAX_MEMBER_CHARS,
                                  description=PRINTABLE_LINE.format(inputs.MAX_MEMBER_CHARS)),
                       AfterValidator(inputs.member_name)]
ReasonText = Annotated[str, Field(max_length=inputs.MAX_REASON_CHARS), AfterValidator(inputs.reason_text)]


class TeamCreate(BaseModel):
    name: TeamName
    members: list[MemberName] = Field(default_factory=list, max_length=inputs.MAX_MEMBERS)
    join_code: str | None = Field(None, max_length=200, description="Where the competition has one (from the "
                                                                      "organizer); organizers need none.")


class TeamAdminCreate(TeamCreate):
    is_baseline: StrictBool = Field(False, description="A reference entry: shown on the board, marked, never "
                                                       "ranked.")


class QuotaPublic(BaseModel):
    limit: int
    used: int
    remaining: int
    resets_at: datetime

    @classmethod
    def build(cls, quota: Quota) -> QuotaPublic:
        return cls(limit=quota.limit, used=quota.used, remaining=quota.remaining, resets_at=quota.resets_at)


class TeamPublic(BaseModel):
    id: int
    name: str
    members: list[str]
    competition: str
    is_baseline: bool
    disqualified: bool
    disqualified_reason: str | None
    created_at: datetime

    @classmethod
    def build(cls, team: Team) -> TeamPublic:
        return cls(id=team.id, name=team.name, members=team.members, competition=team.competition.slug,
                   is_baseline=team.is_baseline, disqualified=team.disqualified_at is not None,
                   disqualified_reason=team.disqualified_reason, created_at=team.created_at)


class TeamOrganizerPublic(TeamPublic):
    model_failures: QuotaPublic = Field(description="Models of the team that failed while sampled today (UTC), "
                                        "against ARENA_MODEL_FAILURE_BUDGET; none left: no model uploads until reset.")


class TeamsPublic(BaseModel):
    data: list[TeamOrganizerPublic]
    count: int


class TeamWithToken(TeamPublic):
    token: str = Field(description="Shown this once; only its hash is stored. Keep it secret.")
    submit_hint: str


class TeamMePublic(TeamPublic):
    quota: QuotaPublic
    model_failures: QuotaPublic = Field(description="Your models that failed while sampled today (UTC), against "
                                        "the server's budget; none left: no model uploads until it resets.")


class SubmissionEventPublic(BaseModel):
    from_status: str | None
    to_status: str
    reason: str
    worker_id: str | None
    created_at: datetime

    @classmethod
    def build(cls, event: JobEvent) -> SubmissionEventPublic:
        return cls(from_status=event.from_status, to_status=event.to_status, reason=event.reason,
                   worker_id=event.worker_id, created_at=event.created_at)


class SubmissionPublic(BaseModel):
    id: int
    competition: str
    team_id: int
    team_name: str
    sha256: str
    size_bytes: int
    message: str
    status: str
    attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    score_public: float | None
    score_private: float | None = Field(None, description="Null for teams until the private reveal.")
    score_all: float | None = None
    score_public_se: float | None = Field(
        None, description="Standard error of score_public: half-sampling over the images, or for a model submission "
        "the standard deviation of its score over fresh sample sets (see interval).")
    score_public_interval: list[float] | None = Field(None, description="95% interval [low, high] of score_public.")
    score_private_se: float | None = Field(None, description="Null for teams until the private reveal.")
    score_private_interval: list[float] | None = None
    interval: str | None = Field(None, description="What the intervals were computed over: 'half-sampling over "
                                 "the images', or 'over N sample sets' of a model.")
    interval_sets: int | None = Field(None, description="Model submissions: the number of sample sets the standard "
                                      "errors were measured over; null for half-sampling.")
    penalized: bool | None
    progress: str | None = Field(None, description="While scoring a model: the sample set and step the worker is on "
                                 "(e.g. 'sample set 3 of 5: scoring').")
    class_scores: dict[str, dict[str, Any]] | None
    timings: dict[str, Any] | None
    sample_sets: dict[str, Any] | None = Field(
        None, description="Model submissions: scores of fresh sample sets; private ones after the reveal.")
    device: str | None
    precision: str | None
    scorer_version: str | None
    worker_id: str | None
    selected_final: bool
    disqualified: bool
    disqualified_reason: str | None
    grids: dict[str, str] = Field(description="Per-class sample grid URLs (after scoring).")
    events: list[SubmissionEventPublic]

    @classmethod
    def build(cls, submission: Submission, *, view: ResultView | None, grid_url: str) -> SubmissionPublic:
        """The submission as the viewer may see it (`view`: its result seen by them; None before it is scored)."""
        return cls(
            **_result_fields(view), id=submission.id, competition=submission.team.competition.slug,
            team_id=submission.team_id,
            team_name=submission.team.name, sha256=submission.sha256, size_bytes=submission.size_bytes,
            message=submission.message, status=submission.status, attempts=submission.attempts,
            created_at=submission.created_at, updated_at=submission.updated_at, started_at=submission.started_at,
            finished_at=submission.finished_at, error=submission.error,
            progress=submission.progress if submission.status == "scoring" else None,
            timings=submission.timings, device=submission.device,
            precision=submission.precision, scorer_version=submission.scorer_version,
            worker_id=submission.worker_id, selected_final=submission.selected_final,
            disqualified=submission.disqualified_at is not None, disqualified_reason=submission.disqualified_reason,
            grids={c: grid_url.format(cls=c) for c in (submission.class_scores or {})},
            events=[SubmissionEventPublic.build(e) for e in submission.events],
        )


def _result_fields(view: ResultView | None) -> dict[str, Any]:
    """SubmissionPublic's score fields: what the viewer may see of the result (all null before there is one)."""
    if view is None:
        return dict.fromkeys(("score_public", "penalized", "class_scores"))
    result = view.result
    return {
        "score_public": view.score("public"), "score_private": view.score("private"), "score_all": view.score("all"),
        "score_public_se": view.se("public"), "score_private_se": view.se("private"),
        "score_public_interval": _listed(interval_95(view.score("public"), view.se("public"))),
        "score_private_interval": _listed(interval_95(view.score("private"), view.se("private"))),
        "interval": result.interval_label, "interval_sets": result.interval_sets, "penalized": result.penalized,
        "class_scores": view.class_scores(), "sample_sets": view.sample_sets(),
    }


def _listed(interval: tuple[float, float] | None) -> list[float] | None:
    return list(interval) if interval is not None else None


class SubmissionsPublic(BaseModel):
    data: list[SubmissionPublic]
    count: int


class SubmissionAccepted(BaseModel):
    id: int
    status: str
    status_url: str
    quota: QuotaPublic


# Flags are JSON booleans only: `{"selected": 0}` or `"yes"` is a 422, not a silent guess.
class FinalSelection(BaseModel):
    selected: StrictBool = True


class Reason(BaseModel):
    reason: ReasonText = ""


class Disqualify(BaseModel):
    reason: Annotated[ReasonText, Field(min_length=1, description="Shown to the team.")]
    disqualified: StrictBool = True


class Reveal(BaseModel):
    revealed: StrictBool = True


class RescoreAll(BaseModel):
    reason: str = ""
    submission_ids: list[int]


class WorkerPublic(BaseModel):
    id: str
    host: str
    pid: int
    device: str
    started_at: datetime
    last_heartbeat: datetime
    stopped_at: datetime | None
    current_submission_id: int | None
    address: str | None = Field(None, description="Where a remote worker connects from (its client address).")
    engine: str | None = Field(None, description="A remote worker's feature engine (torch | onnxruntime).")

    model_config = {"from_attributes": True}


# -- remote workers (api/routes/workers.py): a worker token, never a team's --------------------------------------

WorkerText = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x20-\x7e]+$")]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class WorkerRegister(BaseModel):
    host: WorkerText = Field(description="The worker machine's host name, for the organizer's console.")
    pid: int = Field(ge=0, le=2**31 - 1)
    device: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[\x20-\x7e]+$")]
    engine: Annotated[str, Field(pattern=r"^(torch|onnxruntime)$")]


class WorkerRegistered(BaseModel):
    worker_id: str
    heartbeat_seconds: float = Field(description="How often to send a heartbeat.")
    lease_seconds: float = Field(description="A job whose worker is silent this long is requeued: stop working on "
                                 "it when the server has not answered a heartbeat for this long.")


class WorkerBeat(BaseModel):
    worker_id: WorkerText
    lease_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] | None = None


class WorkerBeatAnswer(BaseModel):
    holds: bool = Field(description="Whether the lease still holds its job (false: stop, the result would be 409).")
    lease_seconds: float


class WorkerClaim(BaseModel):
    worker_id: WorkerText
    engine: Annotated[str, Field(pattern=r"^(torch|onnxruntime)$")]
    weights_sha256: Sha256
    scorer_version: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x20-\x7e]+$")]


class JobPublic(BaseModel):
    job: Literal["submission"] = "submission"
    lease_id: str = Field(description="The lease: every later call about this job names it (fencing).")
    submission_id: int
    submission_kind: str = Field(description="zip (images) or model (an ONNX generator to sample).")
    competition: str
    config: dict[str, Any] = Field(description="competition.json, as the worker needs it to score.")
    manifest: dict[str, Any] = Field(description="manifest.json (file names and splits of the references).")
    input_sha256: str
    input_size: int
    input_url: str
    reference_fingerprint: str = Field(description="sha256 of the reference file: cache key and download check.")
    reference_size: int
    reference_url: str
    settings: dict[str, int | float] = Field(description="The server's settings the job is scored under, by "
                                             "their names in server.config.Settings: the zip limits, a model's "
                                             "sample sets and sampling caps.")
    seed: int | None = Field(None, description="A model's first sample set's seed (set k: seed + k), from the "
                             "server's secret salt; None for images.")


class BuildPublic(BaseModel):
    """A reference build for the claiming worker's engine and weights (server/jobs/remote_builds.py)."""

    job: Literal["reference_build"] = "reference_build"
    lease_id: str = Field(description="The lease: every later call about this build names it (fencing).")
    build_id: int
    competition: str
    config: dict[str, Any] = Field(description="competition.json.")
    manifest: dict[str, Any] = Field(description="manifest.json: every image the build reads (path, class, split, "
                                     "sha256), fetched by its index from images_url + INDEX.")
    images_url: str
    progress_url: str
    references_url: str = Field(description="POST the built reference file here (the raw bytes, with its sha256 "
                                "in X-Content-Sha256).")
    progress: dict[str, Any] = Field(description="{classes: {CLASS: {done, total}}}: the images to go through.")
    engine: str
    weights_sha256: str


class ClassDone(BaseModel):
    done: Annotated[int, Field(ge=0, le=10**9)]
    total: Annotated[int, Field(ge=0, le=10**9)]


class BuildProgress(BaseModel):
    classes: Annotated[dict[str, ClassDone], Field(max_length=1000)]
    stage: Annotated[str, Field(max_length=200)]


class BuildAccepted(BaseModel):
    build_id: int
    status: str
    outcome: str | None


class JobFailure(BaseModel):
    error: Annotated[str, Field(min_length=1, max_length=5000)]
    model_failed: bool = Field(False, description="The model could not be sampled (the team's fault, as a local "
                               "worker's ModelFailed): the submission fails at once, without retries.")


class JobRelease(BaseModel):
    reason: Annotated[str, Field(min_length=1, max_length=1000)]


class JobProgress(BaseModel):
    progress: Annotated[str, Field(min_length=1, max_length=200)]


class ResultAccepted(BaseModel):
    submission_id: int
    status: str
    score_public: float | None


class HealthPublic(BaseModel):
    status: str
    database: str
    competitions: int
    queued: int
    workers_alive: int
