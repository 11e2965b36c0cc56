"""remote scoring workers: worker tokens, and a remote worker's token, address, engine and scorer version (#27)

A remote worker holds its job under the job's lease_id (0009), like a local worker: no lease table of its own.

Revision ID: 0010_remote
Revises: 0009_jobs
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = '0010_remote'
down_revision = '0009_jobs'
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
    with op.batch_alter_table('workers') as batch:
        batch.add_column(sa.Column('token_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('address', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('engine', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('scorer_version', sa.String(length=64), nullable=True))
        batch.create_foreign_key('fk_workers_token_id', 'worker_tokens', ['token_id'], ['id'], ondelete='SET NULL')
        batch.create_index('ix_workers_token_id', ['token_id'])


def downgrade() -> None:
    with op.batch_alter_table('workers') as batch:
        batch.drop_index('ix_workers_token_id')
        batch.drop_constraint('fk_workers_token_id', type_='foreignkey')
        batch.drop_column('scorer_version')
        batch.drop_column('engine')
        batch.drop_column('address')
        batch.drop_column('token_id')
    op.drop_table('worker_tokens')
