"""API request dependencies: who is calling (bearer token: anonymous, a team or the organizer) and the team checks.

The dependencies shared with the pages (settings, database session, clock, competition) live in server.request_deps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from server.db import Team
from server.db.crud import authenticate_team
from server.errors import Forbidden, Unauthorized
from server.request_deps import CompetitionDep, SessionDep, SettingsDep, is_admin_token
from server.uploads.rules import check_team_in_competition

bearer = HTTPBearer(auto_error=False, description="A team token (arena_...) or the organizer's admin token.")


TokenDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


@dataclass(frozen=True)
class Caller:
    """Who sent the request: anonymous, a team, or the organizer."""

    team: Team | None = None
    is_admin: bool = False

    @property
    def is_anonymous(self) -> bool:
        return self.team is None and not self.is_admin


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




def get_competition_team(competition: CompetitionDep, team: CurrentTeam) -> Team:
    """The calling team, checked to belong to the competition in the path (403 otherwise)."""
    return check_team_in_competition(team=team, competition=competition)


CompetitionTeam = Annotated[Team, Depends(get_competition_team)]
