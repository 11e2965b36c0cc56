"""Team sign-up in the browser, where a competition lets teams register themselves: the API's rule
(`check_self_registration`: self-registration open, the join code where one is set, the per-address limit), the
token shown once on the answer page, and the browser signed in as the new team."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, Response

from server.competition_dir import load_competition
from server.db import CompetitionRow
from server.db.crud import create_team, get_competition, list_competitions
from server.errors import ArenaError, Forbidden
from server.request_deps import check_self_registration
from server.web.browser_session import start_signed_in
from server.web.deps import Page, PageDep
from server.web.routing import PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)

FormText = Annotated[str, Form()]


def _join_page(page: Page, row: CompetitionRow, *, status_code: int = 200, **extra: Any) -> Response:
    return page.render("join.html", {"comp": load_competition(row), "form": {}, "errors": {}, **extra},
                       status_code=status_code)


@router.get("/c/{slug}/join", name="web_join", response_class=HTMLResponse)
def join(slug: str, page: PageDep) -> Response:
    """The create-a-team form (or who creates teams, where the organizer does)."""
    return _join_page(page, get_competition(session=page.db, slug=slug))


@router.post("/c/{slug}/join", name="web_join_post", response_class=HTMLResponse)
def join_post(slug: str, page: PageDep, name: FormText = "", members: FormText = "", join_code: FormText = "",
              csrf_token: FormText = "") -> Response:
    """Create the team, sign this browser in as it, and show its token this once."""
    page.session.check_csrf(csrf_token)
    row = get_competition(session=page.db, slug=slug)
    form = {"name": name, "members": members}
    try:
        client = page.request.client.host if page.request.client else "unknown"
        check_self_registration(load_competition(row).config, join_code.strip() or None, anonymous=True,
                                client=client, failures=page.request.app.state.join_code_failures)
        page.request.app.state.team_creation_limit.hit(client)
        team, token = create_team(session=page.db, competition=row, name=name, members=member_list(members),
                                  now=page.now)
    except ArenaError as exc:
        page.db.rollback()
        errors = {"join_code": "wrong or missing: ask the organizer for it"} if (
            isinstance(exc, Forbidden) and isinstance(exc.detail, dict) and "join_code" in exc.detail) else {}
        return _join_page(page, row, status_code=exc.status_code, error=_plain(exc, errors), errors=errors, form=form)
    start_signed_in(page.db, page.session, team=team, now=page.now)
    page.team = team
    response = page.render("join_done.html", {"comp": load_competition(row), "team": team, "token": token,
                                              "server_url": str(page.request.base_url).rstrip("/")})
    response.headers["Cache-Control"] = "no-store"  # the token must not stay in a cache or the back button
    return response


def open_to_sign_up(page: Page) -> list[dict[str, str]]:
    """Competitions a visitor may create a team for (the sign-in page links each)."""
    competitions = (load_competition(row) for row in list_competitions(session=page.db))
    return [{"slug": comp.slug, "title": comp.config.title} for comp in competitions
            if comp.config.self_registration and comp.config.status == "open"]


def member_list(text: str) -> list[str]:
    """Members typed one per line or separated by commas."""
    return [member.strip() for member in re.split(r"[\n,]", text) if member.strip()]


def _plain(exc: ArenaError, errors: dict[str, str]) -> str:
    """The API's message, said for a form where the API's wording names JSON fields."""
    if errors.get("join_code"):
        return "This competition needs its join code to create a team; the organizer hands it out."
    return exc.message
