"""Engine and sessions: SQLite (WAL, busy timeout, explicit BEGIN) or PostgreSQL, migrated on start."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option read by the SQLite "begin" hook: a write transaction takes the write lock up front, so a
# read-then-write (quota check + insert, queue claim) never fails half-way with SQLITE_BUSY_SNAPSHOT.
IMMEDIATE = "arena_sqlite_immediate"


def utcnow() -> datetime:
    return datetime.now(UTC)


def utc_day(now: datetime) -> tuple[datetime, datetime]:
    """The UTC day holding `now`: its midnight and the next one (quota days reset at UTC midnight)."""
    start = datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Hand transaction control to SQLAlchemy (pysqlite's implicit BEGIN would defeat BEGIN IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        immediate = connection.get_execution_options().get(IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, pool_size=20,
                               max_overflow=40)
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=40)


def begin_write(session: Session) -> None:
    """Start a write transaction: ends any read transaction, then takes SQLite's write lock (no-op on PostgreSQL).

    Call it first in every function that reads then writes; row locks on PostgreSQL are taken per statement.
    """
    if session.in_transaction():
        session.commit()
    session.connection(execution_options={IMMEDIATE: True})


class Database:
    """One engine plus its session factory; `migrate()` brings the schema to the newest Alembic revision."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def migrate(self, data_dir: Path | None = None) -> None:
        """`data_dir`: where the stored files are, for migrations whose backfill reads them (0009: a kind)."""
        from server.db.migrations import upgrade_to_head

        upgrade_to_head(self.engine, data_dir=data_dir)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessionmaker() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()
