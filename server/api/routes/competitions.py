from __future__ import annotations

from fastapi import APIRouter

from server.api.schemas import CompetitionPublic, CompetitionsPublic
from server.competition_dir import config_problem, load_competition
from server.db.crud import list_competitions
from server.request_deps import CompetitionDep, SessionDep, SettingsDep

router = APIRouter(prefix="/competitions", tags=["competitions"])


@router.get("", response_model=CompetitionsPublic)
def read_competitions(session: SessionDep, settings: SettingsDep) -> CompetitionsPublic:
    """Every competition with its rules (classes, images per class, deadline, quota, ...)."""
    rows = list_competitions(session=session)
    # One whose config cannot be read is left out here and answers 503 on its own routes.
    readable = [row for row in rows if config_problem(row) is None]
    data = [CompetitionPublic.build(row, load_competition(row), settings) for row in readable]
    return CompetitionsPublic(data=data, count=len(data))


@router.get("/{slug}", response_model=CompetitionPublic)
def read_competition(competition: CompetitionDep, settings: SettingsDep) -> CompetitionPublic:
    """One competition's rules."""
    return CompetitionPublic.build(competition, load_competition(competition), settings)
