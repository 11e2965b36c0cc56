"""The board version: a counter on the competition row that every change to what a leaderboard shows increments.

Board caches (ranking, the API's rendered bytes, the page rows) compare it to decide when to recompute. It lives
with the models so that the queue and the service functions both bump it without importing each other.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from server.db.models import CompetitionRow


def bump_board_version(session: Session, competition_id: int) -> None:
    """Mark the competition's boards stale (the caller commits, in the same transaction as the change)."""
    session.execute(
        update(CompetitionRow)
        .where(CompetitionRow.id == competition_id)
        .values(board_version=CompetitionRow.board_version + 1)
    )
