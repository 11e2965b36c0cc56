"""Request dependencies as Annotated aliases: settings, database session, clock, and who is calling.

The ones that only read `app.state` are `async`: FastAPI runs a plain `def` dependency in its threadpool, a hop
that costs more than the lookup.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from server.config import Settings
from server.db import CompetitionRow, Database, Team
from server.db.crud import authenticate_team, check_team_in_competition, get_competition
from server.errors import Forbidden, Unauthorized

bearer = HTTPBearer(auto_error=False, description="A team token (arena_...) or the organizer's admin token.")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_database(request: Request) -> Database:
    return request.app.state.database


def get_session(database: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    with database.sessionmaker() as session:
        yield session


async def get_now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[Session, Depends(get_session)]
NowDep = Annotated[datetime, Depends(get_now)]
TokenDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


@dataclass(frozen=True)
class Caller:
    """Who sent the request: anonymous, a team, or the organizer."""

    team: Team | None = None
    is_admin: bool = False

    @property
    def is_anonymous(self) -> bool:
        return self.team is None and not self.is_admin


def is_admin_token(token: str, settings: Settings) -> bool:
    return bool(settings.admin_token) and hmac.compare_digest(token.encode(), settings.admin_token.encode())


def get_caller(session: SessionDep, settings: SettingsDep, credentials: TokenDep) -> Caller:
    """Anonymous without a token; 401 for a token that is neither the admin token nor a team's."""
    if credentials is None:
        return Caller()
    if is_admin_token(credentials.credentials, settings):
        return Caller(is_admin=True)
    team = authenticate_team(session=session, token=credentials.credentials)
    session.commit()  # end the read transaction before the handler's own work
    if team is None:
        raise Unauthorized(
            "This token is not valid (mistyped, or replaced by a token rotation). Use the token shown when the team "
            "was created, or ask the organizer for a new one.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Caller(team=team)


CallerDep = Annotated[Caller, Depends(get_caller)]


def require_team(caller: CallerDep) -> Team:
    if caller.is_admin:
        raise Forbidden("This route is for teams; the organizer token can't act as a team. Create a team first.")
    if caller.team is None:
        raise Unauthorized("Send your team token: `Authorization: Bearer arena_...`.",
                           headers={"WWW-Authenticate": "Bearer"})
    return caller.team


def require_admin(caller: CallerDep) -> Caller:
    if caller.is_anonymous:
        raise Unauthorized("Organizer route: send the admin token as `Authorization: Bearer ...`.",
                           headers={"WWW-Authenticate": "Bearer"})
    if not caller.is_admin:
        raise Forbidden("Organizer route: a team token is not enough.")
    return caller


def require_identified(caller: CallerDep) -> Caller:
    if caller.is_anonymous:
        raise Unauthorized("Send your team token (or the admin token) as `Authorization: Bearer ...`.",
                           headers={"WWW-Authenticate": "Bearer"})
    return caller


CurrentTeam = Annotated[Team, Depends(require_team)]
IdentifiedCaller = Annotated[Caller, Depends(require_identified)]
AdminDep = Annotated[Caller, Depends(require_admin)]


def get_competition_row(slug: str, session: SessionDep) -> CompetitionRow:
    return get_competition(session=session, slug=slug)


CompetitionDep = Annotated[CompetitionRow, Depends(get_competition_row)]


def get_competition_team(competition: CompetitionDep, team: CurrentTeam) -> Team:
    """The calling team, checked to belong to the competition in the path (403 otherwise)."""
    return check_team_in_competition(team=team, competition=competition)


CompetitionTeam = Annotated[Team, Depends(get_competition_team)]
