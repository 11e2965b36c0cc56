"""bootstrap standard errors of the scores

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
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
