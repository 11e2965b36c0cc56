"""Request dependencies shared by the API and the pages, as Annotated aliases: settings, database, session, clock,
the competition in the path, the organizer's token check, and who may create a team (self-registration).

The ones that only read `app.state` are `async`: FastAPI runs a plain `def` dependency in its threadpool, a hop
that costs more than the lookup.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from server.competition_dir import CompetitionConfig
from server.config import Settings
from server.db import CompetitionRow, Database
from server.db.crud import get_competition
from server.errors import Forbidden, Unauthorized
from server.rate_limit import RateLimit


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
SessionDep = Annotated[Session, Depends(get_session)]
NowDep = Annotated[datetime, Depends(get_now)]


def is_admin_token(token: str, settings: Settings) -> bool:
    return bool(settings.admin_token) and hmac.compare_digest(token.encode(), settings.admin_token.encode())


def get_competition_row(slug: str, session: SessionDep) -> CompetitionRow:
    return get_competition(session=session, slug=slug)


CompetitionDep = Annotated[CompetitionRow, Depends(get_competition_row)]


def check_self_registration(config: CompetitionConfig, join_code: str | None, anonymous: bool, *, client: str,
                            failures: RateLimit) -> None:
    """Self-registration must be open, and where the competition has a join code, the caller must know it. Wrong
    codes count against the client: past the limit it is refused (429) before its next guess is even compared, so
    a right guess would not get through either."""
    if not config.self_registration:
        if anonymous:
            raise Unauthorized("Teams of this competition are created by the organizer (send the admin token).")
        raise Forbidden("Teams of this competition are created by the organizer; a team token can't create teams.")
    if not config.join_code:
        return
    failures.check(client)
    if not hmac.compare_digest((join_code or "").encode(), config.join_code.encode()):
        failures.hit(client)
        raise Forbidden("This competition needs its join code to create a team (the organizer hands it out): send "
                        '`"join_code": "..."` with the team.', detail={"join_code": "missing" if not join_code
                                                                        else "wrong"})
