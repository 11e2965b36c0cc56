from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response

from server.api.deps import CallerDep, CompetitionDep, SessionDep
from server.ranking import Board, Leaderboard, leaderboard, leaderboard_csv

router = APIRouter(tags=["leaderboard"])


@router.get("/competitions/{slug}/leaderboard", response_model=Leaderboard,
            responses={200: {"content": {"text/csv": {}}}})
def read_leaderboard(competition: CompetitionDep, caller: CallerDep, session: SessionDep, board: Board = "public",
                     format: Literal["json", "csv"] = "json") -> Leaderboard | Response:
    """The public board, or the private one once revealed (organizers always); JSON or CSV."""
    result = leaderboard(session=session, competition=competition, board=board, is_admin=caller.is_admin)
    if format == "csv":
        return Response(leaderboard_csv(result), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{competition.slug}-{board}-leaderboard.csv"'})
    return result
