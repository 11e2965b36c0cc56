"""The upload flow, top to bottom: receive -> checks -> validate -> store -> create.

The one service that crosses layers: it streams the body to disk (storage), runs the cheap database checks
(deadline, disqualification, duplicate, quota), validates the zip or ONNX model with the team-side format
(submissions), stores it content-addressed and inserts the queued row with its first event. The caller has checked
that the team belongs to the competition (`check_team_in_competition`, the API's `CompetitionTeam` dependency).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from server import inputs
from server.competition_dir import load_competition
from server.config import Settings
from server.db import CompetitionRow, Submission, SubmissionKind, Team, utcnow
from server.errors import InvalidSubmission
from server.storage import receive_upload, store_upload
from server.uploads.limits import dry_run_queue, model_failure_error
from server.uploads.rules import Quota, check_may_submit, create_submission, model_failures
from submissions import SubmissionInvalid, SubmissionSpec
from submissions.model import ModelInfo, dry_run_model, validate_submission


def submit_upload(
    *, session: Session, settings: Settings, competition: CompetitionRow, team: Team, source: BinaryIO,
    message: str = "", now: datetime | None = None, filename: str | None = None,
) -> tuple[Submission, Quota]:
    """Copy under the size cap (413), cheap checks (403/409/429), validate (422), store, queue (202).

    Validation decodes every image, so it runs outside any transaction; `create_submission` repeats the cheap
    checks inside its write transaction, so two concurrent uploads can't both take the last slot. `filename` is
    the name the team uploaded (the problems name it, not the temporary copy).
    """
    now = now or utcnow()
    message = inputs.submission_message(message)
    temporary, sha256, size = receive_upload(settings.data_dir, source, max_bytes=settings.max_upload_bytes)
    try:
        check_may_submit(session=session, competition=competition, team=team, sha256=sha256, now=now)
        session.commit()  # no transaction stays open while validating
        kind = validate(temporary, competition=competition, settings=settings, team=team, session=session, now=now,
                        name=uploaded_name(filename))
        store_upload(settings.data_dir, temporary, sha256, ".onnx" if kind == SubmissionKind.model else ".zip")
    finally:
        temporary.unlink(missing_ok=True)
    return create_submission(session=session, competition=competition, team=team, sha256=sha256, size_bytes=size,
                             kind=kind, message=message, now=now)


def uploaded_name(filename: str | None) -> str | None:
    """The base name of the uploaded file as the browser or client sent it (never a path), at most 200 chars."""
    name = Path((filename or "").replace("\\", "/")).name.strip()
    return name[:200] or None


def validate(upload: Path, *, competition: CompetitionRow, settings: Settings, team: Team, session: Session,
             now: datetime, name: str | None = None) -> SubmissionKind:
    """A zip or a model against the competition's format and the server's limits; 422 with the full report when
    invalid. A model's dry run waits for a place in the bounded queue, and only while the team has model failure
    budget left (429 otherwise). Returns its kind (a model is stored as .onnx, a zip as .zip)."""
    config = load_competition(competition).config
    spec = SubmissionSpec.from_competition(config, **settings.zip_limits)
    try:
        checked = validate_submission(upload, spec, dry_run=False, name=name)
        if isinstance(checked, ModelInfo):
            check_model_failures(session=session, settings=settings, team=team, now=now)
            with dry_runs(settings).slot(team.id):
                dry_run_model(checked, spec)
    except SubmissionInvalid as exc:
        raise InvalidSubmission(
            f"The upload is not a valid submission for '{competition.slug}' ({len(exc.report.problems)} problem(s)); "
            "nothing was stored and your quota is unchanged. Fix them and upload again.",
            detail=exc.report.model_dump(mode="json"),
        ) from exc
    return SubmissionKind.model if isinstance(checked, ModelInfo) else SubmissionKind.zip


def check_model_failures(*, session: Session, settings: Settings, team: Team, now: datetime) -> None:
    """429 until midnight UTC once the team's models failed `model_failure_budget` times today in the worker."""
    budget = model_failures(session=session, team=team, budget=settings.model_failure_budget, now=now)
    session.commit()  # a read: no transaction stays open during the dry run
    if budget.remaining <= 0:
        raise model_failure_error(used=budget.used, budget=budget.limit, resets_at=budget.resets_at, now=now)


def dry_runs(settings: Settings):
    """This process's bounded queue of model dry runs."""
    return dry_run_queue(slots=settings.model_dry_runs, per_team=settings.model_dry_runs_per_team,
                         waiting=settings.model_dry_run_queue, wait_s=settings.model_dry_run_seconds)
