"""The web interface: server-rendered pages (Jinja2) on top of the same service functions as the API.

`create_app` includes `router`; pages live in `pages` (everyone and teams), `admin` and `console` (organizers);
`evidence` serves the memorization evidence images of the submission page.
`error_page` renders an error for a browser outside the routes too (the upload size cap).
"""

from fastapi import APIRouter

from server.web import admin, console, evidence, pages, signup
from server.web.routing import error_page

router = APIRouter()
router.include_router(pages.router)
router.include_router(signup.router)
router.include_router(admin.router)
router.include_router(evidence.router)
router.include_router(console.router)
router.include_router(console.new_router)

__all__ = ["error_page", "router"]
