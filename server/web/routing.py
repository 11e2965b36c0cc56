"""Page routes render errors as HTML pages (the API keeps its JSON errors), and check CSRF tokens."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from server.errors import ArenaError, Forbidden
from server.web.browser_session import CsrfError, read_session, signed_in_team, write_session
from server.web.render import render


def error_page(request: Request, exc: ArenaError) -> Response:
    """The error as a page, with the signed-in team in the header as on every other page."""
    settings = request.app.state.settings
    session = read_session(request, settings.secret_key)
    with request.app.state.database.sessionmaker() as db:
        team = signed_in_team(db, session, settings.admin_token, now=request.app.state.clock())
    titles = {401: "Sign in required", 403: "Not allowed", 404: "Not found", 409: "Conflict", 413: "Upload too large",
              503: "Temporarily unavailable"}
    context = {"title": titles.get(exc.status_code, "Something went wrong"), "message": exc.message}
    response = render(request, "error.html", context, web_session=session, signed_in_team=team,
                      status_code=exc.status_code)
    write_session(response, session, settings.secret_key, secure=request.url.scheme == "https")
    return response


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def check_same_origin(request: Request) -> None:
    """A form POST must come from this site's own pages: its Origin (or, without one, its Referer) names this host.

    The CSRF token already ties a form to its session; this closes what a leaked token would leave open. A request
    with neither header (some privacy settings strip both) still needs the token.
    """
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return
    parts = urlsplit(source)
    allowed = {request.headers.get("host", ""), urlsplit(request.app.state.settings.resolved_public_url).netloc}
    if parts.scheme not in ("http", "https") or parts.netloc not in allowed:
        raise CsrfError("This form was sent from another site; use the form on this site's own page.")


class PageRoute(APIRoute):
    """An APIRoute whose ArenaErrors (and CSRF failures) become HTML error pages with the right status code."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                if request.method not in SAFE_METHODS:
                    check_same_origin(request)
                return await handler(request)
            # error_page reads the signed-in team from the database: in the threadpool, not on the event loop.
            except ArenaError as exc:
                return await run_in_threadpool(error_page, request, exc)
            except CsrfError as exc:
                return await run_in_threadpool(error_page, request, Forbidden(str(exc)))

        return route
