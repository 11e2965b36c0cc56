"""The database: SQLAlchemy 2 models, engine setup (SQLite WAL or PostgreSQL) and Alembic migrations."""

from server.db.models import (
    Base,
    BrowserSession,
    CompetitionRow,
    Submission,
    SubmissionEvent,
    SubmissionStatus,
    Team,
    WorkerRow,
)
from server.db.session import Database, begin_write, utcnow

__all__ = [
    "BrowserSession",
    "Base",
    "CompetitionRow",
    "Database",
    "Submission",
    "SubmissionEvent",
    "SubmissionStatus",
    "Team",
    "WorkerRow",
    "begin_write",
    "utcnow",
]
