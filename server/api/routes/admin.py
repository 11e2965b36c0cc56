"""Organizer routes (admin token): submissions, rescoring, cancelling, disqualifying, revealing, teams, exports."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.deps import AdminDep
from server.api.routes.submissions import to_public
from server.api.routes.teams import with_token
from server.api.schemas import (
    CompetitionPublic,
    Disqualify,
    QuotaPublic,
    Reason,
    RescoreAll,
    Reveal,
    SettingsUpdate,
    SubmissionPublic,
    SubmissionsPublic,
    TeamAdminCreate,
    TeamOrganizerPublic,
    TeamPublic,
    TeamsPublic,
    TeamWithToken,
    WorkerPublic,
)
from server.boards.ranking import all_scores_csv
from server.competition_dir import load_competition
from server.db.crud import (
    create_team,
    disqualify_submission,
    disqualify_team,
    get_competition,
    get_submission,
    get_team,
    list_submissions,
    list_teams,
    reveal_private_board,
    rotate_team_token,
)
from server.jobs.leases import list_workers
from server.jobs.queue import cancel, rescore, rescore_competition
from server.organizer.settings import update_settings
from server.params import Limit, Offset, RowId
from server.request_deps import CompetitionDep, NowDep, SessionDep, SettingsDep
from server.uploads.rules import model_failures

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/submissions", response_model=SubmissionsPublic)
def admin_list_submissions(_: AdminDep, session: SessionDep, competition: str | None = None,
                           status: str | None = None, limit: Limit = 100, offset: Offset = 0) -> SubmissionsPublic:
    """All submissions, newest first, optionally of one competition and one status."""
    row = get_competition(session=session, slug=competition) if competition else None
    rows, count = list_submissions(session=session, competition=row, status=status, limit=limit,
                                   offset=offset)
    return SubmissionsPublic(data=[to_public(s, is_admin=True) for s in rows], count=count)


@router.post("/submissions/{submission_id}/rescore", response_model=SubmissionPublic)
def admin_rescore(submission_id: RowId, body: Reason, _: AdminDep, session: SessionDep,
                  now: NowDep) -> SubmissionPublic:
    """Queue one submission again (quota untouched)."""
    rescore(session=session, submission_id=submission_id, reason=body.reason, now=now)
    return to_public(get_submission(session=session, submission_id=submission_id), is_admin=True)


@router.post("/submissions/{submission_id}/cancel", response_model=SubmissionPublic)
def admin_cancel(submission_id: RowId, body: Reason, _: AdminDep, session: SessionDep, now: NowDep) -> SubmissionPublic:
    """Cancel a queued or scoring submission (its quota slot is given back)."""
    cancel(session=session, submission_id=submission_id, reason=body.reason, now=now)
    return to_public(get_submission(session=session, submission_id=submission_id), is_admin=True)


@router.post("/submissions/{submission_id}/disqualify", response_model=SubmissionPublic)
def admin_disqualify_submission(submission_id: RowId, body: Disqualify, _: AdminDep, session: SessionDep,
                                now: NowDep) -> SubmissionPublic:
    """Remove one submission from the boards (or restore it with disqualified=false)."""
    submission = disqualify_submission(session=session, submission_id=submission_id, reason=body.reason,
                                       disqualified=body.disqualified, now=now)
    return to_public(submission, is_admin=True)


@router.post("/competitions/{slug}/rescore", response_model=RescoreAll)
def admin_rescore_all(competition: CompetitionDep, body: Reason, _: AdminDep, session: SessionDep,
                      now: NowDep) -> RescoreAll:
    """Queue every scored or failed submission of the competition again (after a scorer or reference change)."""
    ids = rescore_competition(session=session, competition_id=competition.id, reason=body.reason, now=now)
    return RescoreAll(reason=body.reason, submission_ids=ids)


@router.post("/competitions/{slug}/reveal", response_model=CompetitionPublic)
def admin_reveal(competition: CompetitionDep, body: Reveal, _: AdminDep, session: SessionDep, now: NowDep,
                 settings: SettingsDep, request: Request) -> CompetitionPublic:
    """Show the private board to everyone (or hide it again with revealed=false)."""
    row = reveal_private_board(session=session, competition=competition, revealed=body.revealed, now=now,
                               actor="API (admin token)")
    request.app.state.boards.forget(row.slug)  # a hidden board must not be served from the cache a moment longer
    return CompetitionPublic.build(row, load_competition(row), settings)


@router.patch("/competitions/{slug}/settings", response_model=CompetitionPublic)
def admin_update_settings(competition: CompetitionDep, body: SettingsUpdate, _: AdminDep, session: SessionDep,
                          now: NowDep, settings: SettingsDep) -> CompetitionPublic:
    """Change settings: the settings page's rules (422 naming each invalid field, 409 where entries lock it)."""
    update_settings(session=session, competition=competition, changes=body.model_dump(exclude_unset=True),
                    actor="API (admin token)", now=now)
    return CompetitionPublic.build(competition, load_competition(competition), settings)


@router.get("/competitions/{slug}/teams", response_model=TeamsPublic)
def admin_list_teams(competition: CompetitionDep, _: AdminDep, session: SessionDep, settings: SettingsDep,
                     now: NowDep) -> TeamsPublic:
    """Every team of the competition, with its model failure budget of today (UTC)."""
    teams = list_teams(session=session, competition=competition)
    budget = settings.model_failure_budget
    return TeamsPublic(data=[TeamOrganizerPublic(**TeamPublic.build(t).model_dump(), model_failures=QuotaPublic.build(
        model_failures(session=session, team=t, budget=budget, now=now))) for t in teams], count=len(teams))


@router.post("/competitions/{slug}/teams", response_model=TeamWithToken, status_code=201)
def admin_create_team(competition: CompetitionDep, body: TeamAdminCreate, _: AdminDep, session: SessionDep,
                      request: Request, now: NowDep) -> TeamWithToken:
    """Create a team (optionally a baseline/reference entry); its token is shown this once."""
    team, token = create_team(session=session, competition=competition, name=body.name, members=body.members,
                              is_baseline=body.is_baseline, now=now)
    return with_token(team, token, request)


@router.post("/teams/{team_id}/token", response_model=TeamWithToken)
def admin_rotate_token(team_id: RowId, _: AdminDep, session: SessionDep, request: Request,
                       now: NowDep) -> TeamWithToken:
    """Give a team a new token (the old one stops working)."""
    team = get_team(session=session, team_id=team_id)
    return with_token(team, rotate_team_token(session=session, team=team, now=now), request)


@router.post("/teams/{team_id}/disqualify", response_model=TeamPublic)
def admin_disqualify_team(team_id: RowId, body: Disqualify, _: AdminDep, session: SessionDep,
                          now: NowDep) -> TeamPublic:
    """Remove a team from the boards and stop its uploads (or restore it)."""
    return TeamPublic.build(disqualify_team(session=session, team_id=team_id, reason=body.reason,
                                            disqualified=body.disqualified, now=now))


@router.get("/competitions/{slug}/scores.csv", response_class=Response)
def admin_export_scores(competition: CompetitionDep, _: AdminDep, session: SessionDep) -> Response:
    """Every submission with its status and all scores, as CSV."""
    return Response(all_scores_csv(session=session, competition=competition), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{competition.slug}-all-scores.csv"'})


@router.get("/workers", response_model=list[WorkerPublic])
def admin_workers(_: AdminDep, session: SessionDep) -> list[WorkerPublic]:
    """Registered workers with their last heartbeat and current job."""
    return [WorkerPublic.model_validate(w) for w in list_workers(session=session)]
