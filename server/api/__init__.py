"""The REST API: one router module per resource in routes/, assembled into `router` (health at the root, the rest
under /api). `server.app.create_app` includes it next to the pages."""

from fastapi import APIRouter

from server.api.routes import admin, competitions, health, leaderboard, submissions, teams

router = APIRouter()
router.include_router(health.router)
for _module in (competitions, teams, submissions, leaderboard, admin):
    router.include_router(_module.router, prefix="/api")

__all__ = ["router"]
