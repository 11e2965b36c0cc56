from __future__ import annotations

from fastapi import APIRouter

from server.api.schemas import CompetitionPublic, CompetitionsPublic
from server.competition import load_competition
from server.db.crud import list_competitions
from server.deps import CompetitionDep, SessionDep, SettingsDep

router = APIRouter(prefix="/competitions", tags=["competitions"])


@router.get("", response_model=CompetitionsPublic)
def read_competitions(session: SessionDep, settings: SettingsDep) -> CompetitionsPublic:
    """Every competition with its rules (classes, images per class, deadline, quota, ...)."""
    rows = list_competitions(session=session)
    data = [CompetitionPublic.build(row, load_competition(row), settings) for row in rows]
    return CompetitionsPublic(data=data, count=len(data))


@router.get("/{slug}", response_model=CompetitionPublic)
def read_competition(competition: CompetitionDep, settings: SettingsDep) -> CompetitionPublic:
    """One competition's rules."""
    return CompetitionPublic.build(competition, load_competition(competition), settings)
