"""one lease and one events table for both kinds of job; submissions.kind (issue 25, items 3-4)

- `submissions.kind` ("zip" or "model"), backfilled from the stored file: a model's upload is kept as .onnx
  (server/storage.py). Without a data dir to look in, a submission with sample sets is a model, the rest zips.
- `lease_id` on submissions and reference builds: the claim's lease, which every progress, finish and release must
  present (server/jobs/leases.py).
- `submission_events` becomes `job_events` with a `build_id` beside `submission_id`; each existing build gets the
  events its columns record (queued, claimed, finished) and one "worker lost" event per counted crash, which
  replaces the `crashes` column (crashes are counted from events, as for submissions).

Revision ID: 0009_jobs
Revises: 0008
Create Date: 2026-12-06
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import context, op

from server.db.models import UTCDateTime

revision = '0009_jobs'
down_revision = '0008'
branch_labels = None
depends_on = None

WORKER_LOST = "worker lost"  # server/jobs/leases.py's marker of a crash event, as of this migration


def upgrade() -> None:
    add_submission_kind()
    for table in ('submissions', 'reference_builds'):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column('lease_id', sa.String(length=32), nullable=True))
    builds = op.get_bind().execute(sa.text(
        "SELECT id, status, reason, worker_id, outcome, crashes, created_at, started_at, finished_at "
        "FROM reference_builds ORDER BY id")).mappings().all()
    # Before job_events exists: SQLite drops a column by copying the table, and dropping the old copy would
    # cascade to the events of its builds.
    with op.batch_alter_table('reference_builds') as batch_op:
        batch_op.drop_column('crashes')
    create_job_events()
    backfill_build_events(builds)


def add_submission_kind() -> None:
    with op.batch_alter_table('submissions') as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=8), nullable=False, server_default='zip'))
    op.execute("UPDATE submissions SET kind = 'model' WHERE sample_sets IS NOT NULL")
    data_dir = context.config.attributes.get("data_dir")
    if data_dir is None:
        return
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, sha256 FROM submissions WHERE kind = 'zip'")).all()
    models = [sid for sid, sha256 in rows if is_stored_model(Path(data_dir), sha256)]
    if models:
        connection.execute(sa.text("UPDATE submissions SET kind = 'model' WHERE id = :id"),
                           [{"id": sid} for sid in models])


def is_stored_model(data_dir: Path, sha256: str) -> bool:
    """The rule the worker used before this column: an .onnx upload and no .zip of that hash."""
    stem = data_dir / "uploads" / sha256[:2] / sha256
    return stem.with_suffix(".onnx").exists() and not stem.with_suffix(".zip").exists()


def event_columns() -> list[sa.Column]:
    """What an event says, in both tables (`job_events` and the `submission_events` it replaces)."""
    return [
        sa.Column('from_status', sa.String(length=16), nullable=True),
        sa.Column('to_status', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('worker_id', sa.String(length=128), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
    ]


def create_job_events() -> None:
    op.create_table(
        'job_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('submission_id', sa.Integer(), nullable=True),
        sa.Column('build_id', sa.Integer(), nullable=True),
        *event_columns(),
        sa.CheckConstraint('(submission_id IS NULL) <> (build_id IS NULL)', name='ck_job_events_one_job'),
        sa.ForeignKeyConstraint(['submission_id'], ['submissions.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['build_id'], ['reference_builds.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_job_events_submission_id', 'job_events', ['submission_id'])
    op.create_index('ix_job_events_build_id', 'job_events', ['build_id'])
    op.execute("INSERT INTO job_events (id, submission_id, from_status, to_status, reason, worker_id, created_at) "
               "SELECT id, submission_id, from_status, to_status, reason, worker_id, created_at "
               "FROM submission_events ORDER BY id")
    if op.get_bind().dialect.name == 'postgresql':  # ids were copied: the sequence continues after them
        op.execute("SELECT setval(pg_get_serial_sequence('job_events', 'id'), "
                   "COALESCE((SELECT MAX(id) FROM job_events), 0) + 1, false)")
    op.drop_index('ix_submission_events_submission_id', table_name='submission_events')
    op.drop_table('submission_events')


def backfill_build_events(builds) -> None:
    """The events each build's columns record; events sort by id, so they are written in time order per build."""
    connection = op.get_bind()
    events = []
    for build in builds:
        events.append(event(build, None, 'queued', build['reason'], build['created_at']))
        for crash in range(build['crashes'] or 0):
            events.append(event(build, 'building', 'queued', f"{WORKER_LOST}: a worker went silent while building "
                                "(recorded before migration 0009)", build['created_at'],
                                worker=f"unknown worker {crash + 1} (before migration 0009)"))
        if build['started_at'] is not None and build['status'] != 'queued':
            events.append(event(build, 'queued', 'building', f"claimed by worker {build['worker_id']}",
                                build['started_at'], worker=build['worker_id']))
        if build['status'] in ('done', 'failed'):
            events.append(event(build, 'building', build['status'], build['outcome'] or build['status'],
                                build['finished_at'] or build['started_at'] or build['created_at'],
                                worker=build['worker_id']))
    if events:
        connection.execute(sa.text(
            "INSERT INTO job_events (build_id, from_status, to_status, reason, worker_id, created_at) "
            "VALUES (:build_id, :from_status, :to_status, :reason, :worker_id, :created_at)"), events)


def event(build, from_status, to_status, reason, created_at, worker=None) -> dict:
    return {"build_id": build['id'], "from_status": from_status, "to_status": to_status, "reason": reason,
            "worker_id": worker, "created_at": created_at}


def downgrade() -> None:
    """Back to 0008. On SQLite, dropping the new columns copies `submissions` and `reference_builds`, which
    deletes the events of their rows (foreign keys cascade): downgrade a copy of the database, not the only one."""
    with op.batch_alter_table('reference_builds') as batch_op:
        batch_op.add_column(sa.Column('crashes', sa.Integer(), nullable=False, server_default='0'))
    op.execute(f"UPDATE reference_builds SET crashes = (SELECT COUNT(*) FROM job_events WHERE "
               f"job_events.build_id = reference_builds.id AND job_events.reason LIKE '{WORKER_LOST}%')")
    op.create_table(
        'submission_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('submission_id', sa.Integer(), nullable=False),
        *event_columns(),
        sa.ForeignKeyConstraint(['submission_id'], ['submissions.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_submission_events_submission_id', 'submission_events', ['submission_id'])
    op.execute("INSERT INTO submission_events (id, submission_id, from_status, to_status, reason, worker_id, "
               "created_at) SELECT id, submission_id, from_status, to_status, reason, worker_id, created_at "
               "FROM job_events WHERE submission_id IS NOT NULL ORDER BY id")
    op.drop_table('job_events')
    for table in ('submissions', 'reference_builds'):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column('lease_id')
    with op.batch_alter_table('submissions') as batch_op:
        batch_op.drop_column('kind')
