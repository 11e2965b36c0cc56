"""remote reference builds: the FID weights a build is made with (#27)

A remote worker builds a competition's reference statistics and uploads them; the server checks the file against
the engine and weights the worker claimed the build with, so the claim records both (the engine since 0006).

Revision ID: 0011_remote_builds
Revises: 0010_remote
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = '0011_remote_builds'
down_revision = '0010_remote'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reference_builds') as batch:
        batch.add_column(sa.Column('weights_sha256', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('reference_builds') as batch:
        batch.drop_column('weights_sha256')
