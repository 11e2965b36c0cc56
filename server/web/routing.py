"""Page routes render errors as HTML pages (the API keeps its JSON errors), and check CSRF tokens."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from server.db.crud import get_team
from server.errors import ArenaError, Forbidden, NotFound
from server.web.render import render
from server.web.session import CsrfError, read_session, write_session


def error_page(request: Request, exc: ArenaError) -> Response:
    """The error as a page, with the signed-in team in the header as on every other page."""
    settings = request.app.state.settings
    session = read_session(request, settings.secret_key)
    team = None
    if session.team_id is not None:
        with request.app.state.database.sessionmaker() as db:
            try:
                team = get_team(session=db, team_id=session.team_id)
            except NotFound:
                team = None
    titles = {401: "Sign in required", 403: "Not allowed", 404: "Not found", 409: "Conflict", 413: "Upload too large"}
    context = {"title": titles.get(exc.status_code, "Something went wrong"), "message": exc.message}
    response = render(request, "error.html", context, web_session=session, signed_in_team=team,
                      status_code=exc.status_code)
    write_session(response, session, settings.secret_key, secure=request.url.scheme == "https")
    return response


class PageRoute(APIRoute):
    """An APIRoute whose ArenaErrors (and CSRF failures) become HTML error pages with the right status code."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            # error_page reads the signed-in team from the database: in the threadpool, not on the event loop.
            except ArenaError as exc:
                return await run_in_threadpool(error_page, request, exc)
            except CsrfError as exc:
                return await run_in_threadpool(error_page, request, Forbidden(str(exc)))

        return route
