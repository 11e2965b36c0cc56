"""reference statistics built by a worker, with progress (issue 17)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from server.db.models import UTCDateTime

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reference_builds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('competition_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('worker_id', sa.String(length=128), nullable=True),
    sa.Column('engine', sa.String(length=32), nullable=True),
    sa.Column('images_done', sa.Integer(), nullable=False),
    sa.Column('images_total', sa.Integer(), nullable=False),
    sa.Column('progress', sa.JSON(), nullable=True),
    sa.Column('outcome', sa.Text(), nullable=True),
    sa.Column('crashes', sa.Integer(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('started_at', UTCDateTime(), nullable=True),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.Column('finished_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['competition_id'], ['competitions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_reference_builds_claim', 'reference_builds', ['status', 'created_at'], unique=False)
    op.create_index(op.f('ix_reference_builds_competition_id'), 'reference_builds', ['competition_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_reference_builds_competition_id'), table_name='reference_builds')
    op.drop_index('ix_reference_builds_claim', table_name='reference_builds')
    op.drop_table('reference_builds')
