"""Database setup: migrations match the models on both engines; SQLite runs in WAL with a busy timeout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from server.db import Base, CompetitionRow


def test_migrations_create_exactly_the_models(database):
    with database.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == [], "models changed without a migration: add one under server/db/migrations/versions/"
        tables = set(inspect(connection).get_table_names())
    assert {"competitions", "teams", "submissions", "job_events", "workers", "alembic_version"} <= tables
    database.migrate()  # applying again on start is a no-op


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_runs_in_wal_mode_with_a_busy_timeout_and_foreign_keys(database):
    with database.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 10_000
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_times_come_back_timezone_aware_in_utc(database):
    local = datetime(2026, 11, 27, 23, 30, tzinfo=timezone(timedelta(hours=2)))
    with database.session() as session:
        session.add(CompetitionRow(slug="c", title="c", root="/x", board_version=0, created_at=local))
    with database.session() as session:
        stored = session.query(CompetitionRow).one().created_at
    assert stored == local and stored.tzinfo == UTC and stored.hour == 21
    with pytest.raises(Exception, match="naive datetime"), database.session() as session:
        session.add(CompetitionRow(slug="d", title="d", root="/x", board_version=0, created_at=datetime(2026, 1, 1)))
        session.flush()


def test_migration_0008_keeps_the_oldest_of_duplicate_active_builds(tmp_path):
    """Databases that already hold duplicate active reference builds (issue 22, item 5) can still take the index."""
    from alembic import command

    from server.db import Database
    from server.db.migrations import alembic_config

    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(alembic_config(database.engine), "0007")
    stamp = "'2026-11-30 00:00:00.000000'"
    with database.engine.begin() as connection:
        connection.execute(text(f"INSERT INTO competitions (id, slug, title, root, created_at, board_version) "
                                f"VALUES (1, 'c', 'C', '/nowhere', {stamp}, 0)"))
        for build_id, status in ((1, "done"), (2, "queued"), (3, "building"), (4, "queued")):
            connection.execute(text(
                "INSERT INTO reference_builds (id, competition_id, status, reason, images_done, images_total, "
                f"crashes, created_at, updated_at) VALUES ({build_id}, 1, '{status}', 'r', 0, 1, 0, {stamp}, {stamp})"))
    database.migrate()
    with database.engine.connect() as connection:
        statuses = connection.execute(text("SELECT id, status FROM reference_builds ORDER BY id")).all()
    assert [tuple(row) for row in statuses] == [(1, "done"), (2, "queued"), (3, "failed"), (4, "failed")]
    database.dispose()
