"""Who may submit, and how much: the rules the API, the pages and the upload share.

A team submits only to its own competition, while the competition accepts uploads (its status and deadline in
competition.json; reference entries of the organizer also while it is closed), not when disqualified, not the same
file twice (unless the earlier run failed or was cancelled, which gave its quota back), and at most the
competition's daily limit per UTC day. A model that fails while sampled counts against the team's model failure
budget (server/uploads/limits.py). The database only stores the result (server/db/crud.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.competition_dir import load_competition
from server.db import CompetitionRow, Submission, SubmissionStatus, Team, begin_write, utc_day, utcnow
from server.db.crud import add_queued_submission
from server.db.models import QUOTA_STATUSES
from server.errors import DeadlinePassed, DuplicateSubmission, Forbidden, QuotaExceeded

# How the worker's error for a model that failed while sampled begins, and how the stored error does (the queue's
# finish_failed puts "scoring error: " first); the failure budget counts these.
MODEL_FAILED = "model sampling failed"
MODEL_FAILED_ERROR = f"scoring error: {MODEL_FAILED}"


@dataclass(frozen=True)
class Quota:
    limit: int
    used: int
    resets_at: datetime  # the next UTC midnight

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def headers(self, now: datetime) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(int(self.resets_at.timestamp())),
            **({"Retry-After": str(max(1, int((self.resets_at - now).total_seconds())))} if not self.remaining else {}),
        }

    def as_dict(self) -> dict[str, object]:
        return {"limit": self.limit, "used": self.used, "remaining": self.remaining,
                "resets_at": self.resets_at.isoformat()}


def quota_status(*, session: Session, team: Team, daily_limit: int, now: datetime | None = None) -> Quota:
    """Accepted submissions of this UTC day; failed (system) and cancelled runs give their slot back."""
    day_start, day_end = utc_day(now or utcnow())
    used = session.scalar(
        select(func.count(Submission.id)).where(
            Submission.team_id == team.id, Submission.created_at >= day_start,
            Submission.created_at < day_end, Submission.status.in_(QUOTA_STATUSES),
        )
    )
    return Quota(limit=daily_limit, used=int(used or 0), resets_at=day_end)


def model_failures(*, session: Session, team: Team, budget: int, now: datetime | None = None) -> Quota:
    """The team's model failure budget: its models uploaded this UTC day that failed while a worker sampled them
    (they gave their quota back, but each held a worker; server/uploads/limits.py)."""
    day_start, day_end = utc_day(now or utcnow())
    used = session.scalar(
        select(func.count(Submission.id)).where(
            Submission.team_id == team.id, Submission.status == SubmissionStatus.failed,
            Submission.created_at >= day_start, Submission.created_at < day_end,  # the quota's window
            Submission.error.startswith(MODEL_FAILED_ERROR, autoescape=True),
        )
    )
    return Quota(limit=budget, used=int(used or 0), resets_at=day_end)


# -- submissions ---------------------------------------------------------------------------------------------------


def check_team_in_competition(*, team: Team, competition: CompetitionRow) -> Team:
    """The one membership rule: a team acts only in the competition it is registered in (403 otherwise)."""
    if team.competition_id != competition.id:
        raise Forbidden(f"Team '{team.name}' is registered in '{team.competition.slug}', not '{competition.slug}'.")
    return team


def check_may_submit(
    *, session: Session, competition: CompetitionRow, team: Team, sha256: str | None, now: datetime
) -> Quota:
    """Deadline, disqualification, duplicate file and daily quota: the checks that need no look at the zip."""
    directory = load_competition(competition)
    config = directory.config
    # Reference entries may be uploaded while the competition is closed (before it opens), never once archived.
    if not directory.accepts_uploads and not (team.is_baseline and config.status == "closed"):
        raise Forbidden(f"'{competition.slug}' is {config.status}: the organizer does not accept submissions now.",
                        detail={"status": config.status})
    if directory.is_past_deadline(now):
        raise DeadlinePassed(
            f"The deadline of '{competition.slug}' ({config.deadline:%Y-%m-%d %H:%M} UTC) has passed; "
            "no more submissions are accepted.", detail={"deadline": str(config.deadline)},
        )
    if team.disqualified_at is not None:
        raise Forbidden(f"Team '{team.name}' is disqualified: {team.disqualified_reason or 'ask the organizer'}.")
    if sha256 is not None:
        # A failed or cancelled run gave its quota back, so its zip may be uploaded again.
        earlier = session.scalar(select(Submission).where(Submission.team_id == team.id, Submission.sha256 == sha256,
                                                          Submission.status.in_(QUOTA_STATUSES)))
        if earlier is not None:
            raise DuplicateSubmission(
                f"Your team already submitted this exact file as submission {earlier.id} "
                f"({earlier.created_at:%Y-%m-%d %H:%M} UTC, {earlier.status}). Generate new images to submit again.",
                detail={"submission_id": earlier.id, "status": earlier.status},
            )
    quota = quota_status(session=session, team=team, daily_limit=config.daily_limit, now=now)
    if quota.remaining <= 0:
        raise QuotaExceeded(
            f"Team '{team.name}' has used all {quota.limit} submissions of today (UTC); the quota resets at "
            f"{quota.resets_at:%Y-%m-%d %H:%M} UTC.", detail={"quota": quota.as_dict()}, headers=quota.headers(now),
        )
    return quota


def create_submission(
    *, session: Session, competition: CompetitionRow, team: Team, sha256: str, size_bytes: int, kind: str = "zip",
    message: str = "", now: datetime | None = None,
) -> tuple[Submission, Quota]:
    """Insert a queued submission after the deadline, duplicate and quota checks; returns it with the new quota.
    `kind`: "zip" (images) or "model" (an ONNX generator the worker samples).

    The checks and the insert share one write transaction (and a row lock on the team on PostgreSQL), so two
    concurrent uploads can't both take the last slot of the day.
    """
    now = now or utcnow()
    begin_write(session)
    locked_team = session.scalar(select(Team).where(Team.id == team.id).with_for_update(of=Team))
    assert locked_team is not None
    check_may_submit(session=session, competition=competition, team=locked_team, sha256=sha256, now=now)
    submission = add_queued_submission(session=session, team=locked_team, sha256=sha256, size_bytes=size_bytes,
                                       kind=kind, message=message, now=now)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        check_may_submit(session=session, competition=competition, team=team, sha256=sha256, now=now)
        raise
    quota = quota_status(session=session, team=team, daily_limit=load_competition(competition).config.daily_limit,
                         now=now)
    session.commit()
    return submission, quota
