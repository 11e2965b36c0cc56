"""bootstrap standard errors of the scores

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

COLUMNS = ("score_public_se", "score_private_se", "score_all_se")


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        for column in COLUMNS:
            batch.add_column(sa.Column(column, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column)
