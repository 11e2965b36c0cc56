"""ORM tables. API schemas live in server/api/schemas.py; these are the stored facts."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


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
        UniqueConstraint("team_id", "sha256", name="uq_submissions_team_sha256"),
        Index("ix_submissions_claim", "status", "not_before", "created_at"),
        Index("ix_submissions_board", "competition_id", "status", "team_id"),
        Index("ix_submissions_team_created", "team_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    competition_id: Mapped[int] = mapped_column(ForeignKey("competitions.id", ondelete="CASCADE"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
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
    score_public: Mapped[float | None] = mapped_column(Float)
    score_private: Mapped[float | None] = mapped_column(Float)
    score_all: Mapped[float | None] = mapped_column(Float)
    penalized: Mapped[bool | None] = mapped_column(Boolean)
    class_scores: Mapped[dict[str, Any] | None]  # ScoreReport.classes: per-split FIDs, memorization, penalty
    timings: Mapped[dict[str, Any] | None]
    # Model submissions: the scores of several fresh sample sets (seeds), the honest spread of the score.
    sample_sets: Mapped[dict[str, Any] | None]
    device: Mapped[str | None] = mapped_column(String(32))
    precision: Mapped[str | None] = mapped_column(String(16))
    scorer_version: Mapped[str | None] = mapped_column(String(64))
    weights_sha256: Mapped[str | None] = mapped_column(String(64))
    selected_final: Mapped[bool] = mapped_column(Boolean, default=False)
    disqualified_at: Mapped[datetime | None]
    disqualified_reason: Mapped[str | None] = mapped_column(Text)

    team: Mapped[Team] = relationship(lazy="joined")
    events: Mapped[list[SubmissionEvent]] = relationship(
        order_by="SubmissionEvent.id", cascade="all, delete-orphan", lazy="selectin", back_populates="submission"
    )


class SubmissionEvent(Base):
    """One status change of a submission, with the reason people read when they ask what happened."""

    __tablename__ = "submission_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]

    submission: Mapped[Submission] = relationship(back_populates="events")


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
