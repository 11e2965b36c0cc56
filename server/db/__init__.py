"""The database: SQLAlchemy 2 models, engine setup (SQLite WAL or PostgreSQL) and Alembic migrations."""

from server.db.boards import bump_board_version
from server.db.events import transition
from server.db.models import (
    Base,
    BrowserSession,
    CompetitionRow,
    JobEvent,
    ReferenceBuild,
    ReferenceBuildStatus,
    Submission,
    SubmissionKind,
    SubmissionStatus,
    Team,
    WorkerRow,
    WorkerToken,
)
from server.db.session import Database, begin_write, utc_day, utcnow

__all__ = [
    "BrowserSession",
    "Base",
    "CompetitionRow",
    "Database",
    "ReferenceBuild",
    "ReferenceBuildStatus",
    "JobEvent",
    "Submission",
    "SubmissionKind",
    "SubmissionStatus",
    "Team",
    "WorkerRow",
    "WorkerToken",
    "begin_write",
    "bump_board_version",
    "transition",
    "utc_day",
    "utcnow",
]
