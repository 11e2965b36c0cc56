"""The web interface: server-rendered pages (Jinja2) on top of the same service functions as the API.

`create_app` includes `router`; pages live in `pages` (everyone and teams), `admin` and `console` (organizers);
`evidence` serves the memorization evidence images of the submission page.
`error_page` renders an error for a browser outside the routes too (the upload size cap). Pages a whole class
reads at once are shared renderings (`shared`); the leaderboard page has a fast path (`board_page`).
"""

from fastapi import APIRouter

from server.web import admin, console, evidence, pages, signup
from server.web.board_page import BoardPageFastPath, shared_board_page
from server.web.routing import error_page
from server.web.shared import SharedPages

router = APIRouter()
router.include_router(pages.router)
router.include_router(signup.router)
router.include_router(admin.router)
router.include_router(evidence.router)
router.include_router(console.router)
router.include_router(console.new_router)

__all__ = ["BoardPageFastPath", "SharedPages", "error_page", "shared_board_page", "router"]
