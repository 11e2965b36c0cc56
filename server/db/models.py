"""ORM tables. API schemas live in server/api/schemas.py; these are the stored facts."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from submissions.results import SubmissionResult


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (which stores naive text) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass timezone-aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class SubmissionKind(StrEnum):
    zip = "zip"  # a zip of images
    model = "model"  # an ONNX generator; the worker samples the images (server/jobs/model_entries.py)


class SubmissionStatus(StrEnum):
    queued = "queued"
    scoring = "scoring"
    scored = "scored"
    failed = "failed"
    cancelled = "cancelled"


# The status groups, defined once. Active: waiting for or being scored (cancellable). Final: nothing more happens
# unless the organizer rescores (the status page stops polling). Quota: what uses up the team's daily quota;
# rejected uploads never get a row, and failed (a system failure after all attempts) or cancelled runs give it back.
ACTIVE_STATUSES = (SubmissionStatus.queued, SubmissionStatus.scoring)
FINAL_STATUSES = (SubmissionStatus.scored, SubmissionStatus.failed, SubmissionStatus.cancelled)
QUOTA_STATUSES = (SubmissionStatus.queued, SubmissionStatus.scoring, SubmissionStatus.scored)


class CompetitionRow(Base):
    """A competition registered with the server; its rules and images stay in its directory (`root`)."""

    __tablename__ = "competitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    root: Mapped[str] = mapped_column(Text)
    private_revealed_at: Mapped[datetime | None]
    # Bumped by every change that can move the leaderboard, so a rendered board can be cached until then.
    board_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]


class Team(Base):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("competition_id", "name", name="uq_teams_competition_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    competition_id: Mapped[int] = mapped_column(ForeignKey("competitions.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    members: Mapped[list[str]] = mapped_column(default=list)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    disqualified_at: Mapped[datetime | None]
    disqualified_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    token_rotated_at: Mapped[datetime | None]

    competition: Mapped[CompetitionRow] = relationship(lazy="joined")


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (
        # Not unique: a failed or cancelled zip may be uploaded again (the duplicate check runs under the team's
        # write lock in submission_rules.create_submission).
        Index("ix_submissions_team_sha256", "team_id", "sha256"),
        Index("ix_submissions_claim", "status", "not_before", "created_at"),
        Index("ix_submissions_board", "competition_id", "status", "team_id"),
        Index("ix_submissions_team_created", "team_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    competition_id: Mapped[int] = mapped_column(ForeignKey("competitions.id", ondelete="CASCADE"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8), default=SubmissionKind.zip)  # images, or a model the worker samples
    message: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=SubmissionStatus.queued)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None]  # retry backoff: not claimable before this time
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lease_id: Mapped[str | None] = mapped_column(String(32))  # the current claim's lease (server/jobs/leases.py)
    score_public: Mapped[float | None] = mapped_column(Float)
    score_private: Mapped[float | None] = mapped_column(Float)
    score_all: Mapped[float | None] = mapped_column(Float)
    # Bootstrap standard errors of the scores (95% interval: score +- 1.96 se); null for entries scored before
    # scorer 1.1 until `arena admin rescore --all`.
    score_public_se: Mapped[float | None] = mapped_column(Float)
    score_private_se: Mapped[float | None] = mapped_column(Float)
    score_all_se: Mapped[float | None] = mapped_column(Float)
    penalized: Mapped[bool | None] = mapped_column(Boolean)
    class_scores: Mapped[dict[str, Any] | None]  # per class a ClassResult: per-split FIDs, memorization, penalty
    timings: Mapped[dict[str, Any] | None]
    # Model submissions: the scores of several fresh sample sets (seeds), the honest spread of the score (SampleSets).
    sample_sets: Mapped[dict[str, Any] | None]
    # While scoring: what the worker is doing now ("sample set 3 of 5: scoring"); cleared when it is claimed again.
    progress: Mapped[str | None] = mapped_column(String(200))
    device: Mapped[str | None] = mapped_column(String(32))
    precision: Mapped[str | None] = mapped_column(String(16))
    scorer_version: Mapped[str | None] = mapped_column(String(64))
    weights_sha256: Mapped[str | None] = mapped_column(String(64))
    selected_final: Mapped[bool] = mapped_column(Boolean, default=False)
    disqualified_at: Mapped[datetime | None]
    disqualified_reason: Mapped[str | None] = mapped_column(Text)

    team: Mapped[Team] = relationship(lazy="joined")
    events: Mapped[list[JobEvent]] = relationship(
        order_by="JobEvent.id", cascade="all, delete-orphan", lazy="selectin", back_populates="submission"
    )

    def result(self) -> SubmissionResult | None:
        """The typed result of a scored submission (None before it has one). Rows of every scorer version read
        back: columns a version did not write (standard errors, weights hash) are None or empty."""
        if self.score_public is None or self.class_scores is None:
            return None
        columns = {name: getattr(self, name) for name in SubmissionResult.model_fields}
        return SubmissionResult.model_validate({name: value for name, value in columns.items() if value is not None})


class JobEvent(Base):
    """One status change of a job (a submission or a reference build), with the reason people read when they ask
    what happened; also a refused result (from_status = to_status). Exactly one of the two job ids is set."""

    __tablename__ = "job_events"
    __table_args__ = (
        CheckConstraint("(submission_id IS NULL) <> (build_id IS NULL)", name="ck_job_events_one_job"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    build_id: Mapped[int | None] = mapped_column(ForeignKey("reference_builds.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]

    submission: Mapped[Submission | None] = relationship(back_populates="events")
    build: Mapped[ReferenceBuild | None] = relationship(back_populates="events")


class BrowserSession(Base):
    """A signed-in browser. The cookie holds only a random key (this row's id is its hash); the row remembers the
    token hashes it was opened with, so the session ends when a token is rotated, the team is disqualified or the
    browser signs out."""

    __tablename__ = "browser_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    team_token_hash: Mapped[str | None] = mapped_column(String(64))
    admin_token_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]


class WorkerRow(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime]
    last_heartbeat: Mapped[datetime]
    stopped_at: Mapped[datetime | None]
    current_submission_id: Mapped[int | None] = mapped_column(Integer)
    # Remote workers (server/jobs/remote.py): the token they signed in with, where they connect from, their engine,
    # and the scorer version they claim with (a result must carry the same).
    token_id: Mapped[int | None] = mapped_column(ForeignKey("worker_tokens.id", ondelete="SET NULL"), index=True)
    address: Mapped[str | None] = mapped_column(String(64))
    engine: Mapped[str | None] = mapped_column(String(32))
    scorer_version: Mapped[str | None] = mapped_column(String(64))


class WorkerToken(Base):
    """A token the organizer gave a remote scoring worker (`arena admin workers create NAME`): stored hashed like a
    team token; it can only claim jobs, read their inputs, heartbeat and post results. Revoking it gives back the jobs
    its workers hold."""

    __tablename__ = "worker_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class SettingChange(Base):
    """One organizer change of one competition setting: who, when, the old and new value (as JSON text)."""

    __tablename__ = "setting_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    competition_id: Mapped[int] = mapped_column(ForeignKey("competitions.id", ondelete="CASCADE"), index=True)
    field: Mapped[str] = mapped_column(String(64))
    old_value: Mapped[str] = mapped_column(Text)
    new_value: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Announcement(Base):
    """A short organizer message (Markdown) shown on the competition's pages, newest first."""

    __tablename__ = "announcements"

    id: Mapped[int] = mapped_column(primary_key=True)
    competition_id: Mapped[int] = mapped_column(ForeignKey("competitions.id", ondelete="CASCADE"), index=True)
    message: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class ReferenceBuildStatus(StrEnum):
    queued = "queued"
    building = "building"
    done = "done"
    failed = "failed"


# A build in one of these holds back the competition's submissions (they queue behind it).
ACTIVE_BUILD_STATUSES = (ReferenceBuildStatus.queued, ReferenceBuildStatus.building)
_ACTIVE_BUILD_SQL = "status IN ('queued', 'building')"


class ReferenceBuild(Base):
    """One build of a competition's reference statistics by a scoring worker (server/jobs/reference_builds.py):
    queued by the console, `arena admin references` or a worker whose cache is stale; claimed and leased like a
    submission (server/jobs/leases.py), its status changes in `job_events`; progress in images per class, written
    every few seconds while it runs."""

    __tablename__ = "reference_builds"
    __table_args__ = (
        Index("ix_reference_builds_claim", "status", "created_at"),
        # At most one queued or building row per competition, whoever asks at the same moment (migration 0007).
        Index("uq_reference_builds_one_active", "competition_id", unique=True,
              sqlite_where=text(_ACTIVE_BUILD_SQL), postgresql_where=text(_ACTIVE_BUILD_SQL)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    competition_id: Mapped[int] = mapped_column(ForeignKey("competitions.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=ReferenceBuildStatus.queued)
    reason: Mapped[str] = mapped_column(Text)  # why it was queued, shown on the console
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lease_id: Mapped[str | None] = mapped_column(String(32))  # the current claim's lease (server/jobs/leases.py)
    engine: Mapped[str | None] = mapped_column(String(32))  # the feature engine of the worker that built it
    weights_sha256: Mapped[str | None] = mapped_column(String(64))  # its FID weights (a remote upload must match)
    images_done: Mapped[int] = mapped_column(Integer, default=0)
    images_total: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[dict[str, Any] | None]  # {"classes": {cls: {"done", "total"}}, "stage": "with_mask train"}
    outcome: Mapped[str | None] = mapped_column(Text)  # "built" or "already current", or the failure's reason
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]

    events: Mapped[list[JobEvent]] = relationship(
        order_by="JobEvent.id", cascade="all, delete-orphan", lazy="selectin", back_populates="build"
    )
