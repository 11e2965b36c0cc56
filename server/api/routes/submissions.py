from __future__ import annotations

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.responses import FileResponse

from server.api.deps import CompetitionTeam, CurrentTeam, IdentifiedCaller
from server.api.schemas import FinalSelection, QuotaPublic, SubmissionAccepted, SubmissionPublic, SubmissionsPublic
from server.boards.ranking import result_seen
from server.competition_dir import load_competition
from server.db import Submission
from server.db.crud import get_visible_submission, list_submissions, select_final
from server.inputs import MAX_MESSAGE_CHARS
from server.params import Limit, Offset, RowId
from server.request_deps import CompetitionDep, NowDep, SessionDep, SettingsDep
from server.storage import sample_grid_file
from server.uploads.flow import submit_upload

router = APIRouter(tags=["submissions"])


def to_public(submission: Submission, *, is_admin: bool) -> SubmissionPublic:
    return SubmissionPublic.build(submission, view=result_seen(submission, is_admin=is_admin),
                                  grid_url=f"/api/submissions/{submission.id}/grids/{{cls}}.png")


@router.post("/competitions/{slug}/submissions", response_model=SubmissionAccepted, status_code=202,
             responses={413: {}, 409: {}, 422: {}, 429: {}, 403: {}})
def upload_submission(competition: CompetitionDep, team: CompetitionTeam, session: SessionDep, settings: SettingsDep,
                      request: Request, response: Response, now: NowDep, file: UploadFile = File(...),
                      message: str = Form("", max_length=MAX_MESSAGE_CHARS)) -> SubmissionAccepted:
    """Upload a zip or a model; it is validated now (422 with the report) and queued for scoring (202)."""
    request.app.state.upload_limits.hit(team_id=team.id, client=request.client.host if request.client else "unknown")
    submission, quota = submit_upload(session=session, settings=settings, competition=competition, team=team,
                                      source=file.file, message=message, now=now, filename=file.filename)
    response.headers.update(quota.headers(now))
    status_url = str(request.url_for("read_submission", submission_id=submission.id))
    return SubmissionAccepted(id=submission.id, status=submission.status, status_url=status_url,
                              quota=QuotaPublic.build(quota))


@router.get("/competitions/{slug}/submissions", response_model=SubmissionsPublic)
def read_my_submissions(team: CompetitionTeam, session: SessionDep, limit: Limit = 100,
                        offset: Offset = 0) -> SubmissionsPublic:
    """The calling team's submissions, newest first."""
    rows, count = list_submissions(session=session, team=team, limit=limit, offset=offset)
    return SubmissionsPublic(data=[to_public(s, is_admin=False) for s in rows], count=count)


@router.get("/submissions/{submission_id}", response_model=SubmissionPublic)
def read_submission(submission_id: RowId, caller: IdentifiedCaller, session: SessionDep) -> SubmissionPublic:
    """Status, scores and every status change with its reason (the owning team or the organizer)."""
    submission = get_visible_submission(session=session, submission_id=submission_id, team=caller.team,
                                        is_admin=caller.is_admin)
    return to_public(submission, is_admin=caller.is_admin)


@router.get("/submissions/{submission_id}/grids/{cls}.png", response_class=FileResponse)
def read_sample_grid(submission_id: RowId, cls: str, caller: IdentifiedCaller, session: SessionDep,
                     settings: SettingsDep) -> FileResponse:
    """The 8x8 sample grid of one class (written after scoring)."""
    submission = get_visible_submission(session=session, submission_id=submission_id, team=caller.team,
                                        is_admin=caller.is_admin)
    classes = load_competition(submission.team.competition).classes
    return FileResponse(sample_grid_file(settings.data_dir, submission.id, cls, classes), media_type="image/png")


@router.post("/submissions/{submission_id}/final", response_model=SubmissionPublic)
def choose_final(submission_id: RowId, body: FinalSelection, team: CurrentTeam, session: SessionDep,
                 now: NowDep) -> SubmissionPublic:
    """Select (or unselect) one of your scored submissions as a final for the private board."""
    config = load_competition(team.competition).config
    submission = select_final(session=session, submission_id=submission_id, team=team, selected=body.selected,
                              limit=config.final_selection_limit, deadline=config.deadline, now=now)
    return to_public(submission, is_admin=False)
