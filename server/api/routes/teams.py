from __future__ import annotations

from fastapi import APIRouter, Request

from server.api.deps import CallerDep, CurrentTeam
from server.api.schemas import QuotaPublic, TeamCreate, TeamMePublic, TeamPublic, TeamWithToken
from server.competition_dir import load_competition
from server.db import Team
from server.db.crud import create_team, rotate_team_token
from server.rate_limit import RateLimit
from server.request_deps import CompetitionDep, NowDep, SessionDep, SettingsDep, check_self_registration
from server.uploads.rules import model_failures, quota_status

router = APIRouter(tags=["teams"])


def with_token(team: Team, token: str, request: Request) -> TeamWithToken:
    base = str(request.base_url).rstrip("/")
    hint = (f"arena submit FILE.zip --server {base} --competition {team.competition.slug} --token {token}   or   "
            f"curl -H 'Authorization: Bearer {token}' -F file=@FILE.zip "
            f"{base}/api/competitions/{team.competition.slug}/submissions")
    return TeamWithToken(**TeamPublic.build(team).model_dump(), token=token, submit_hint=hint)


@router.post("/competitions/{slug}/teams", response_model=TeamWithToken, status_code=201)
def register_team(body: TeamCreate, competition: CompetitionDep, caller: CallerDep, session: SessionDep,
                  request: Request, now: NowDep) -> TeamWithToken:
    """Create a team (organizer, or anyone where self-registration is open); its token is shown this once."""
    if not caller.is_admin:
        client = request.client.host if request.client else "unknown"
        check_self_registration(load_competition(competition).config, body.join_code, caller.is_anonymous,
                                client=client, failures=request.app.state.join_code_failures)
        limit: RateLimit = request.app.state.team_creation_limit
        limit.hit(client)
    team, token = create_team(session=session, competition=competition, name=body.name, members=body.members,
                              now=now)
    return with_token(team, token, request)


@router.get("/teams/me", response_model=TeamMePublic)
def read_my_team(team: CurrentTeam, session: SessionDep, settings: SettingsDep, now: NowDep) -> TeamMePublic:
    """The calling team with its remaining quota and model failure budget for today (UTC)."""
    quota = quota_status(session=session, team=team, daily_limit=load_competition(team.competition).config.daily_limit,
                         now=now)
    failures = model_failures(session=session, team=team, budget=settings.model_failure_budget, now=now)
    return TeamMePublic(**TeamPublic.build(team).model_dump(), quota=QuotaPublic.build(quota),
                        model_failures=QuotaPublic.build(failures))


@router.post("/teams/me/token", response_model=TeamWithToken)
def rotate_my_token(team: CurrentTeam, session: SessionDep, request: Request, now: NowDep) -> TeamWithToken:
    """Replace the calling team's token; the old one stops working at once."""
    token = rotate_team_token(session=session, team=team, now=now)
    return with_token(team, token, request)
