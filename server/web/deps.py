"""What every page handler gets: the database session, settings, the browser session and who is signed in."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from server.competition_dir import Competition
from server.config import Settings
from server.db import Team
from server.errors import ArenaError, Forbidden, InvalidSettings
from server.organizer.settings import competition_announcements
from server.request_deps import NowDep, SessionDep, SettingsDep
from server.web.browser_session import WebSession, read_session, signed_in_team, write_session
from server.web.render import render
from server.web.shared import SharedPages, render_shared, render_viewer, shared_response


def refused_form(exc: ArenaError, form: Mapping[str, str]) -> dict[str, Any]:
    """The one shape of a form shown again after a service refused it: the error's status code, its message on top,
    a message under each field it names (InvalidSettings maps fields to messages; other errors' details are data)
    and the values as typed, so nothing has to be typed twice. Pass it to the page's render function as keywords."""
    errors = dict(exc.detail) if isinstance(exc, InvalidSettings) and isinstance(exc.detail, dict) else {}
    return {"status_code": exc.status_code, "error": exc.message, "errors": errors, "form": dict(form)}


@dataclass
class Page:
    request: Request
    db: Session
    settings: Settings
    session: WebSession
    team: Team | None
    now: datetime

    @property
    def is_admin(self) -> bool:
        return self.session.is_admin

    def render(self, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200) -> HTMLResponse:
        context = context or {}
        if isinstance(context.get("comp"), Competition) and "announcements" not in context:
            context["announcements"] = competition_announcements(session=self.db, slug=context["comp"].slug)
        response = render(self.request, name, context, web_session=self.session, signed_in_team=self.team,
                          status_code=status_code)
        self.finish(response)
        return response

    def render_shared(self, key: Hashable, name: str, context: Callable[[], dict[str, Any]], *,
                      fragment: bool = False) -> Response:
        """A page many viewers read (`server/web/shared.py`): rendered once per `key` (which names every version
        of what it shows) and audience, with this viewer's header (none in a `fragment`); ETag/304 and gzip."""
        app = self.request.app
        pages: SharedPages = app.state.shared_pages

        def render_once() -> Any:
            made = context()
            if isinstance(made.get("comp"), Competition) and "announcements" not in made:
                made["announcements"] = competition_announcements(session=self.db, slug=made["comp"].slug)
            return render_shared(app, name, made, is_admin=self.is_admin, fragment=fragment)

        page = pages.get((name, key, self.is_admin), render_once)
        viewer = b"" if fragment else render_viewer(app, self.session, self.team)
        return self.finish(shared_response(page, viewer, self.request.headers))

    def redirect(self, url: str) -> RedirectResponse:
        # 303: the browser follows a POST with a GET, so reloading the next page never re-submits the form.
        response = RedirectResponse(url, status_code=303)
        self.finish(response)
        return response

    def finish(self, response: Response) -> Response:
        secure = self.request.url.scheme == "https"
        write_session(response, self.session, self.settings.secret_key, secure=secure)
        return response

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("Organizer pages need the organizer sign-in (the admin token).")

    def url_for(self, name: str, **params: Any) -> str:
        return str(self.request.app.url_path_for(name, **{k: str(v) for k, v in params.items()}))


def _page(request: Request, db: SessionDep, settings: SettingsDep, now: NowDep) -> Page:
    session = read_session(request, settings.secret_key)
    team = signed_in_team(db, session, settings.admin_token, now=now)
    return Page(request=request, db=db, settings=settings, session=session, team=team, now=now)


PageDep = Annotated[Page, Depends(_page)]


async def in_one_hop(request: Request, handle: Callable[[Page], Response]) -> Response:
    """Run a page handler with its `Page` in one threadpool hop, for a route polled often (the status fragment):
    `PageDep` costs three (session, page, handler) and FastAPI's dependency solving, most of such a request."""

    def run() -> Response:
        state = request.app.state
        with state.database.sessionmaker() as db:
            return handle(_page(request, db, state.settings, state.clock()))

    return await run_in_threadpool(run)
