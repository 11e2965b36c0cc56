"""browser sessions in the database; a failed or cancelled zip may be uploaded again

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from server.db.models import UTCDateTime

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('browser_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=True),
    sa.Column('team_token_hash', sa.String(length=64), nullable=True),
    sa.Column('admin_token_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('browser_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_browser_sessions_team_id'), ['team_id'], unique=False)
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.drop_constraint('uq_submissions_team_sha256', type_='unique')
        batch_op.create_index('ix_submissions_team_sha256', ['team_id', 'sha256'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.drop_index('ix_submissions_team_sha256')
        batch_op.create_unique_constraint('uq_submissions_team_sha256', ['team_id', 'sha256'])
    with op.batch_alter_table('browser_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_browser_sessions_team_id'))
    op.drop_table('browser_sessions')
