"""at most one active reference build per competition, enforced by the database (issue 22, item 5)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

ACTIVE = "status IN ('queued', 'building')"


def upgrade() -> None:
    # Duplicates made before this index (8 concurrent requests once left 6 active builds): keep the oldest.
    op.execute(
        "UPDATE reference_builds SET status = 'failed', finished_at = updated_at, "
        "outcome = 'a duplicate of an older active build of this competition (cleared by migration 0008)' "
        f"WHERE {ACTIVE} AND id NOT IN (SELECT MIN(id) FROM reference_builds WHERE {ACTIVE} GROUP BY competition_id)")
    op.create_index('uq_reference_builds_one_active', 'reference_builds', ['competition_id'], unique=True,
                    sqlite_where=sa.text(ACTIVE), postgresql_where=sa.text(ACTIVE))


def downgrade() -> None:
    op.drop_index('uq_reference_builds_one_active', table_name='reference_builds')
