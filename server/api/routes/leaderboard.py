from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from server.api.deps import DatabaseDep, SettingsDep, TokenDep, is_admin_token
from server.db import Database
from server.db.crud import get_competition
from server.errors import Forbidden
from server.ranking import Board, Leaderboard, leaderboard, recently_checked_board

router = APIRouter(tags=["leaderboard"])

HIDDEN = "The private leaderboard is hidden until the organizer reveals it after the deadline."


def current_board(database: Database, slug: str, board: Board, is_admin: bool) -> Leaderboard:
    with database.sessionmaker() as session:
        competition = get_competition(session=session, slug=slug)
        return leaderboard(session=session, competition=competition, board=board, is_admin=is_admin)


@router.get("/competitions/{slug}/leaderboard", response_model=Leaderboard,
            responses={200: {"content": {"text/csv": {}}}})
async def read_leaderboard(slug: str, database: DatabaseDep, settings: SettingsDep, credentials: TokenDep,
                           board: Board = "public", format: Literal["json", "csv"] = "json") -> Response:
    """The public board, or the private one once revealed (organizers always); JSON or CSV.

    Team tokens change nothing here (the boards are the same for everyone); the admin token opens the private
    board before the reveal. Served from memory when confirmed current within `leaderboard_max_age_seconds`.
    """
    is_admin = credentials is not None and is_admin_token(credentials.credentials, settings)
    result = recently_checked_board(database.engine, slug, board, settings.leaderboard_max_age_seconds)
    if result is None:
        result = await run_in_threadpool(current_board, database, slug, board, is_admin)
    if board == "private" and not result.revealed and not is_admin:
        raise Forbidden(HIDDEN)
    if format == "csv":
        return Response(result.rendered("csv"), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{slug}-{board}-leaderboard.csv"'})
    return Response(result.rendered("json"), media_type="application/json")
