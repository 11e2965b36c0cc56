"""no interval for the unranked "all" split (scorer 1.2 bootstraps the public and private splits only)

The column held the bootstrap standard error of score_all, which no board ranks and no page showed; computing it
was a third of the bootstrap's cost. Per-class values of older reports stay in class_scores.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('submissions') as batch:
        batch.drop_column('score_all_se')


def downgrade() -> None:
    with op.batch_alter_table('submissions') as batch:
        batch.add_column(sa.Column('score_all_se', sa.Float(), nullable=True))
