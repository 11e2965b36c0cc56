from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.board_cache import BoardCache, board_response
from server.api.deps import TokenDep
from server.boards.ranking import PRIVATE_HIDDEN, Board, Leaderboard
from server.errors import Forbidden
from server.request_deps import SettingsDep, is_admin_token

router = APIRouter(tags=["leaderboard"])


CURRENT = {"description": "Not modified: the client's copy (If-None-Match, the ETag) is current."}


@router.get("/competitions/{slug}/leaderboard", response_model=Leaderboard,
            responses={200: {"content": {"text/csv": {}}}, 304: CURRENT})
async def read_leaderboard(request: Request, slug: str, settings: SettingsDep, credentials: TokenDep,
                           board: Board = "public", format: Literal["json", "csv"] = "json") -> Response:
    """The public board, or the private one once revealed (organizers always); JSON or CSV.

    Team tokens change nothing here (the boards are the same for everyone); the admin token opens the private
    board before the reveal. Served from memory, checked against the database at most every
    `leaderboard_max_age_seconds`; gzip and ETag/304 as the client asks. The common reads never reach this function:
    `board_cache.LeaderboardFastPath` answers them first from the same cache.
    """
    boards: BoardCache = request.app.state.boards
    cached = await boards.get(slug, board)
    is_admin = credentials is not None and is_admin_token(credentials.credentials, settings)
    if not cached.board.visible_to(is_admin=is_admin):
        raise Forbidden(PRIVATE_HIDDEN)
    return board_response(cached, format, request.headers)
