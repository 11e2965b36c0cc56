"""model submissions: the scores of fresh sample sets (issue 18)

Revision ID: 0003_model_sample_sets
Revises: 0001 (the lead chains it after the trust branch's 0002 when both are merged)
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = '0003_model_sample_sets'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('submissions') as batch:
        batch.add_column(sa.Column('sample_sets', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('submissions') as batch:
        batch.drop_column('sample_sets')
