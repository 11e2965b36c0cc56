"""The one application factory: settings, database (migrated, competitions registered), error shape, middleware,
the API and the pages. ASGI servers use `uvicorn --factory server.app:app_from_environment`.

The top of the server's layers: it imports `api` and `web`, which never import each other.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from server import __version__, api, web
from server.api.board_cache import LeaderboardFastPath, prerender
from server.boards.cache import BoardCache
from server.boards.ranking import Leaderboard
from server.config import Settings, get_settings
from server.db import Database, utcnow
from server.db.crud import sync_competitions
from server.errors import ArenaError, UploadTooLarge
from server.rate_limit import RateLimit
from server.uploads.limits import UploadRateLimits

logger = logging.getLogger(__name__)

# Multipart framing (boundaries, part headers, the message field) on top of the zip itself.
MULTIPART_OVERHEAD = 1024 * 1024


def error_response(status: int, code: str, message: str, detail: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "detail": detail}}, status_code=status,
                        headers=headers)


# A remote worker's reference file (hundreds of MB) is streamed to disk by its route under a cap of its own,
# `max_reference_upload_bytes` (server/api/routes/workers.py).
REFERENCE_UPLOAD_PATH = re.compile(r"/api/worker/builds/[0-9]+/[0-9a-f]{32}/references")


class BodySizeLimit:
    """Stop reading a request body past the cap (413), whether or not it declared a Content-Length."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or REFERENCE_UPLOAD_PATH.fullmatch(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            refusal = await self._refusal(scope)
            await refusal(scope, receive, send)
            return
        received, over_cap = 0, False

        async def limited_receive() -> Any:
            nonlocal received, over_cap
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                over_cap = True
                raise UploadTooLarge(self._message())
            return message

        async def guarded_send(message: Any) -> None:
            # The form parser turns the error raised in `receive` into its own 400 ("error parsing the body");
            # a body cut off at the cap is answered with the 413 below instead.
            if not over_cap:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except UploadTooLarge:
            if not over_cap:
                raise
        if over_cap:
            refusal = await self._refusal(scope)
            await refusal(scope, receive, send)

    async def _refusal(self, scope: Scope) -> Response:
        """JSON for API clients; the web form's users get a page like every other web error."""
        if scope["path"].startswith("/api/"):
            return error_response(413, UploadTooLarge.code, self._message())
        return await run_in_threadpool(web.error_page, Request(scope), UploadTooLarge(self._message()))

    def _message(self) -> str:
        return (f"The request is larger than the upload limit ({self.max_bytes - MULTIPART_OVERHEAD:,} bytes). "
                "Check that the zip holds only the PNG images the competition asks for.")


class FrameDenial:
    """No page may be framed by another page (clickjacking an organizer's form, even from another port of the same
    host): X-Frame-Options for older browsers, CSP frame-ancestors for the rest. The API docs pages also may load
    nothing from another origin: their packaged Swagger UI and ReDoc would still call out (ReDoc's footer fetches
    its maker's logo from a CDN, Swagger UI a validator badge), and the arena must work offline and not tell a
    third party who reads its docs."""

    HEADERS = ((b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'"))
    # Inline scripts and styles: FastAPI's docs pages start the UI inline, and both UIs style elements inline.
    DOCS_HEADERS = ((b"x-frame-options", b"DENY"), (b"content-security-policy", (
        b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'")))
    DOCS_PATHS = ("/docs", "/redoc")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = self.DOCS_HEADERS if scope["path"] in self.DOCS_PATHS else self.HEADERS

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [header for header in headers if header[0] not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def allowed_methods(app: Any, scope: Scope) -> str:
    """Every method some route of this path answers (Starlette's 405 names only the first route's): each method is
    tried against the routes' public `matches`, a full match meaning a route takes it."""
    def taken(method: str) -> bool:
        probe = {"type": "http", "path": scope["path"], "root_path": scope.get("root_path", ""), "method": method,
                 "headers": []}
        return any(route.matches(dict(probe))[0] == Match.FULL for route in app.router.routes)

    methods = [method for method in METHODS if taken(method)]
    return ", ".join(methods + ["HEAD"] if "GET" in methods else methods)  # HEAD: HeadAsGet answers it


class HeadAsGet:
    """HEAD on any GET route: run it as GET and send the headers without the body (RFC 9110 9.3.2)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Any) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ArenaError)
    async def _arena_error(_: Request, exc: ArenaError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, exc.message, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code,
                                                                                         f"http_{exc.status_code}")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request.app, request.scope)
        return error_response(exc.status_code, code, str(exc.detail), None, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", "The request is malformed; see detail for each field.",
                              jsonable_errors(exc.errors()))


def jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors]


def prerender_board(app: FastAPI, board: Leaderboard) -> None:
    """A new board's API bytes and its page as teams see it, made before the first reader asks."""
    prerender(board)
    if not board.visible_to(is_admin=False):
        return  # the private board before the reveal: only the organizer's page is ever sent, made on its first read
    try:
        web.shared_board_page(app, board, is_admin=False)
    except Exception:  # the page's first reader renders it again and sees the error; the API must not
        logger.exception("rendering the leaderboard page of %s failed", board.competition)


def create_app(settings: Settings, *, clock: Callable[[], datetime] = utcnow,
               database: Database | None = None) -> FastAPI:
    """The FastAPI app for these settings; `clock` lets tests move time (quota days, deadlines)."""
    database = database or Database(settings.resolved_database_url)
    database.migrate(settings.data_dir)
    with database.session() as session:
        sync_competitions(session=session, data_dir=settings.data_dir)

    boards = BoardCache(database, settings.leaderboard_max_age_seconds,
                        prerender=lambda board: prerender_board(app, board))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        boards.start()  # new scores reach readers without waiting for a reader to look (server.boards.cache)
        try:
            yield
        finally:
            boards.stop()
            database.dispose()

    # /docs and /redoc load their JavaScript and CSS from the fastapi-offline package, not a CDN: they work offline
    # (FastAPI's self-hosting recipe, packaged).
    app = FastAPIOffline(title="FID Arena", version=__version__, lifespan=lifespan, favicon_url="/favicon.ico",
                         description="Image-generation competitions scored by FID: upload, queue, leaderboard.")
    app.state.settings, app.state.database, app.state.clock = settings, database, clock
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD)
    app.state.boards = boards
    app.state.team_creation_limit = RateLimit(settings.team_creation_rate_limit, action="create teams")
    app.state.join_code_failures = RateLimit(settings.join_code_failure_rate_limit, action="try join codes")
    app.state.upload_limits = UploadRateLimits(team_rule=settings.upload_rate_limit_team,
                                               client_rule=settings.upload_rate_limit_client)
    app.state.shared_pages = web.SharedPages()
    app.add_middleware(web.BoardPageFastPath)  # before routing, like the API's
    app.add_middleware(LeaderboardFastPath, boards=app.state.boards)  # before routing
    app.add_middleware(HeadAsGet)  # HEAD reads take every GET path, the fast one included
    app.add_middleware(FrameDenial)  # outermost: every response, the fast path's and the 413 included
    app.include_router(api.router)
    app.include_router(web.router)
    return app


def app_from_environment() -> FastAPI:
    """The app from ARENA_* variables, refusing a guessable admin token (what `arena serve` checks too)."""
    settings = get_settings()
    settings.require_secure()
    return create_app(settings)
