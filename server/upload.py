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
from server.competition import load_competition
from server.config import Settings
from server.db import CompetitionRow, Submission, Team, utcnow
from server.db.crud import Quota, check_may_submit, create_submission
from server.errors import InvalidSubmission
from server.storage import receive_upload, store_upload
from submissions import SubmissionInvalid, SubmissionSpec
from submissions.model import ModelInfo, validate_submission


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
        suffix = validate(temporary, competition=competition, settings=settings, name=uploaded_name(filename))
        store_upload(settings.data_dir, temporary, sha256, suffix)
    finally:
        temporary.unlink(missing_ok=True)
    return create_submission(session=session, competition=competition, team=team, sha256=sha256, size_bytes=size,
                             message=message, now=now)


def uploaded_name(filename: str | None) -> str | None:
    """The base name of the uploaded file as the browser or client sent it (never a path), at most 200 chars."""
    name = Path((filename or "").replace("\\", "/")).name.strip()
    return name[:200] or None


def validate(upload: Path, *, competition: CompetitionRow, settings: Settings, name: str | None = None) -> str:
    """A zip or a model against the competition's format and the server's limits; 422 with the full report when
    invalid. Returns the suffix it is stored under: .zip or .onnx."""
    config = load_competition(competition).config
    try:
        checked = validate_submission(upload, SubmissionSpec.from_competition(config, **settings.zip_limits),
                                      name=name)
    except SubmissionInvalid as exc:
        raise InvalidSubmission(
            f"The upload is not a valid submission for '{competition.slug}' ({len(exc.report.problems)} problem(s)); "
            "nothing was stored and your quota is unchanged. Fix them and upload again.",
            detail=exc.report.model_dump(mode="json"),
        ) from exc
    return ".onnx" if isinstance(checked, ModelInfo) else ".zip"
