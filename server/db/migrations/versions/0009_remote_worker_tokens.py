"""remote scoring workers: worker tokens, leases (fencing), and where a worker connects from (issue 27)

Revision ID: 0009_remote
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = '0009_remote'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'worker_tokens',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('name', sa.String(length=100), nullable=False, unique=True),
        sa.Column('token_hash', sa.String(length=64), nullable=False, unique=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        'worker_leases',
        sa.Column('id', sa.String(length=64), primary_key=True),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('worker_id', sa.String(length=128), nullable=False),
        sa.Column('token_id', sa.Integer(), sa.ForeignKey('worker_tokens.id', ondelete='CASCADE'), nullable=False),
        sa.Column('reference_fingerprint', sa.String(length=64), nullable=False),
        sa.Column('scorer_version', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('outcome', sa.Text(), nullable=True),
    )
    op.create_index('ix_worker_leases_job', 'worker_leases', ['kind', 'job_id'])
    op.create_index('ix_worker_leases_token_id', 'worker_leases', ['token_id'])
    with op.batch_alter_table('workers') as batch:
        batch.add_column(sa.Column('token_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('address', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('engine', sa.String(length=32), nullable=True))
        batch.create_foreign_key('fk_workers_token_id', 'worker_tokens', ['token_id'], ['id'], ondelete='SET NULL')
        batch.create_index('ix_workers_token_id', ['token_id'])


def downgrade() -> None:
    with op.batch_alter_table('workers') as batch:
        batch.drop_index('ix_workers_token_id')
        batch.drop_constraint('fk_workers_token_id', type_='foreignkey')
        batch.drop_column('engine')
        batch.drop_column('address')
        batch.drop_column('token_id')
    op.drop_index('ix_worker_leases_token_id', table_name='worker_leases')
    op.drop_index('ix_worker_leases_job', table_name='worker_leases')
    op.drop_table('worker_leases')
    op.drop_table('worker_tokens')
