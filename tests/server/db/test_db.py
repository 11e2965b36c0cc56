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


def test_migration_0009_backfills_kinds_build_events_and_crashes(tmp_path):
    """Submissions get their kind from the stored file (or their sample sets); each build gets the events its
    columns recorded, and its crash count becomes `worker lost` events that the lease code counts."""
    from alembic import command

    from server.db import Database, ReferenceBuild, Submission
    from server.db.migrations import alembic_config
    from server.jobs.leases import crashed_workers
    from server.storage import model_path

    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(alembic_config(database.engine), "0008")
    stamp = "'2026-11-30 00:00:00.000000'"
    data_dir = tmp_path / "data"
    model_path(data_dir, "b" * 64).parent.mkdir(parents=True)
    model_path(data_dir, "b" * 64).write_bytes(b"onnx")
    with database.engine.begin() as connection:
        connection.execute(text(f"INSERT INTO competitions (id, slug, title, root, created_at, board_version) "
                                f"VALUES (1, 'c', 'C', '/nowhere', {stamp}, 0)"))
        connection.execute(text(f"INSERT INTO teams (id, competition_id, name, members, token_hash, is_baseline, "
                                f"created_at) VALUES (1, 1, 't', '[]', 'h', 0, {stamp})"))
        for sid, sha, sets in ((1, "a" * 64, "NULL"), (2, "b" * 64, "NULL"), (3, "c" * 64, "'{}'")):
            connection.execute(text(
                "INSERT INTO submissions (id, competition_id, team_id, sha256, size_bytes, message, status, attempts, "
                f"created_at, updated_at, selected_final, sample_sets) VALUES ({sid}, 1, 1, '{sha}', 1, '', 'queued', "
                f"0, {stamp}, {stamp}, 0, {sets})"))
            connection.execute(text("INSERT INTO submission_events (submission_id, to_status, reason, created_at) "
                                    f"VALUES ({sid}, 'queued', 'uploaded', {stamp})"))
        connection.execute(text(
            "INSERT INTO reference_builds (id, competition_id, status, reason, worker_id, images_done, images_total, "
            f"crashes, outcome, created_at, started_at, updated_at, finished_at) VALUES (1, 1, 'done', 'prepared', "
            f"'w', 1, 1, 2, 'built in 3 s', {stamp}, {stamp}, {stamp}, {stamp})"))
    database.migrate(data_dir)
    with database.sessionmaker() as session:
        kinds = {s.id: s.kind for s in session.query(Submission)}
        assert kinds == {1: "zip", 2: "model", 3: "model"}
        assert [e.reason for e in session.get(Submission, 1).events] == ["uploaded"]
        build = session.get(ReferenceBuild, 1)
        assert [(e.from_status, e.to_status) for e in build.events] == [
            (None, "queued"), ("building", "queued"), ("building", "queued"), ("queued", "building"),
            ("building", "done")]
        assert build.events[0].reason == "prepared" and build.events[-1].reason == "built in 3 s"
        assert len(crashed_workers(build)) == 2
    database.dispose()
