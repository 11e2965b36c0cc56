"""The REST API: one router module per resource in routes/, assembled into `router` (health at the root, the rest
under /api). `server.app.create_app` includes it next to the pages."""

from typing import Any

from fastapi import APIRouter

from server.api.routes import admin, competitions, health, leaderboard, submissions, teams, workers
from server.api.schemas import ErrorPublic

# Every API error has the same shape; documented so clients (and the schemathesis test) can rely on it.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorPublic, "description": description} for status, description in (
        (400, "Malformed request body (e.g. a multipart upload that cannot be parsed)"),
        (401, "No or an unknown token"), (403, "Not allowed for this caller"), (404, "No such resource"),
        (409, "Conflicts with the current state"), (413, "Upload too large"), (422, "Invalid request or upload"),
        (429, "Quota or rate limit reached"),
        (503, "The competition's configuration cannot be read (organizers see why on /admin)"))
}


router = APIRouter()
router.include_router(health.router)
for _module in (competitions, teams, submissions, leaderboard, admin, workers):
    router.include_router(_module.router, prefix="/api", responses=ERROR_RESPONSES)

__all__ = ["router"]
