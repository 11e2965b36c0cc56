"""The web interface: server-rendered pages (Jinja2) on top of the same service functions as the API.

`create_app` includes `router`; pages live in `pages` (everyone and teams) and `admin` (organizers).
"""

from fastapi import APIRouter

from server.web import admin, pages

router = APIRouter()
router.include_router(pages.router)
router.include_router(admin.router)

__all__ = ["router"]
