"""Persistence of competitions, teams and submissions: keyword-only functions shared by the API, pages and CLI.

They raise server.errors.ArenaError subclasses for anything a user can cause; the caller turns those into HTTP
responses or messages. Functions that write start with `begin_write(session)` and commit before returning.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server import inputs
from server.competition_dir import Competition, CompetitionError, competitions_dir, load_competition
from server.db.boards import bump_board_version
from server.db.events import transition
from server.db.models import CompetitionRow, SettingChange, Submission, SubmissionStatus, Team
from server.db.session import begin_write, utcnow
from server.errors import (
    Conflict,
    Forbidden,
    NotFound,
)

TOKEN_PREFIX = "arena_"
RowT = TypeVar("RowT", Team, Submission)

# -- competitions --------------------------------------------------------------------------------------------------


def register_competition(*, session: Session, root: Path, now: datetime | None = None) -> CompetitionRow:
    """Register (or refresh) the competition prepared in `root`; its slug comes from its competition.json."""
    competition = Competition.load(root)
    begin_write(session)
    row = session.scalar(select(CompetitionRow).where(CompetitionRow.slug == competition.slug))
    if row is None:
        row = CompetitionRow(slug=competition.slug, created_at=now or utcnow(), board_version=0,
                             title=competition.config.title, root=str(Path(root).resolve()))
        session.add(row)
    else:
        row.title, row.root = competition.config.title, str(Path(root).resolve())
    session.commit()
    return row


def sync_competitions(*, session: Session, data_dir: Path) -> list[CompetitionRow]:
    """Register every competition directory under {data_dir}/competitions/ (skipping incomplete ones)."""
    rows = []
    for config_file in sorted(competitions_dir(data_dir).glob("*/competition.json")):
        try:
            rows.append(register_competition(session=session, root=config_file.parent))
        except CompetitionError:
            continue  # still being prepared; registered on the next start
    return rows


def list_competitions(*, session: Session) -> list[CompetitionRow]:
    return list(session.scalars(select(CompetitionRow).order_by(CompetitionRow.created_at, CompetitionRow.id)))


def get_competition(*, session: Session, slug: str) -> CompetitionRow:
    row = session.scalar(select(CompetitionRow).where(CompetitionRow.slug == slug))
    if row is None:
        known = ", ".join(r.slug for r in list_competitions(session=session)) or "none yet"
        raise NotFound(f"No competition '{slug}'. Known competitions: {known}.")
    return row


def reveal_private_board(
    *, session: Session, competition: CompetitionRow, revealed: bool = True, now: datetime | None = None,
    actor: str = "unknown",
) -> CompetitionRow:
    """Show (or hide again, after a reveal by mistake) the private leaderboard to teams and anonymous visitors. A
    change is recorded in the settings history (`private_board`: hidden -> revealed) with `actor`."""
    now = now or utcnow()
    begin_write(session)
    row = session.get(CompetitionRow, competition.id, populate_existing=True)
    assert row is not None
    if (row.private_revealed_at is not None) != revealed:
        states = ("hidden", "revealed")
        session.add(SettingChange(competition_id=row.id, field="private_board", old_value=states[not revealed],
                                  new_value=states[revealed], actor=actor[:200], created_at=now))
        row.private_revealed_at = now if revealed else None
        bump_board_version(session, row.id)
    session.commit()
    return row


# -- teams ---------------------------------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_team(
    *, session: Session, competition: CompetitionRow, name: str, members: list[str] | None = None,
    is_baseline: bool = False, now: datetime | None = None,
) -> tuple[Team, str]:
    """Create a team and return it with its token; only the token's hash is stored, so show the token now."""
    name, members = inputs.team_name(name), inputs.member_names(list(members or []))
    if load_competition(competition).config.status == "archived":
        raise Forbidden(f"'{competition.slug}' is archived (read-only); reopen it in its settings to add teams.")
    token = new_token()
    begin_write(session)
    team = Team(competition_id=competition.id, name=name, members=members, token_hash=hash_token(token),
                is_baseline=is_baseline, created_at=now or utcnow())
    add_unique(session, team, Conflict(f"A team named '{name}' already exists in '{competition.slug}'. Pick another "
                                       "name.", detail={"name": name}))
    return team, token


def add_unique(session: Session, row: object, conflict: Conflict) -> None:
    """Insert `row` and commit (the caller has begun the write); a unique name it repeats is `conflict`, the write
    rolled back."""
    session.add(row)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise conflict from exc


def delete_team(*, session: Session, team: Team) -> None:
    """Remove a team and its submissions (only for a team created moments ago whose first step failed)."""
    begin_write(session)
    row = session.get(Team, team.id)
    if row is not None:
        session.delete(row)
    session.commit()


def authenticate_team(*, session: Session, token: str) -> Team | None:
    """The team whose token this is, or None. Lookup by hash, so stored hashes never meet user input directly."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    team = session.scalar(select(Team).where(Team.token_hash == hash_token(token)))
    if team is not None and not hmac.compare_digest(team.token_hash, hash_token(token)):
        return None
    return team


def rotate_team_token(*, session: Session, team: Team, now: datetime | None = None) -> str:
    """Replace a team's token (the old one stops working at once) and return the new one."""
    token = new_token()
    begin_write(session)
    row = session.get(Team, team.id, populate_existing=True)
    assert row is not None
    row.token_hash, row.token_rotated_at = hash_token(token), now or utcnow()
    session.commit()
    return token


def get_team(*, session: Session, team_id: int) -> Team:
    return _get_or_not_found(session, Team, team_id)


def list_teams(*, session: Session, competition: CompetitionRow) -> list[Team]:
    return list(session.scalars(select(Team).where(Team.competition_id == competition.id).order_by(Team.id)))


def disqualify_team(
    *, session: Session, team_id: int, reason: str, disqualified: bool = True, now: datetime | None = None
) -> Team:
    begin_write(session)
    team = get_team(session=session, team_id=team_id)
    _mark_disqualified(session, team, reason, disqualified, now)
    return team


# -- submissions ---------------------------------------------------------------------------------------------------


def add_queued_submission(*, session: Session, team: Team, sha256: str, size_bytes: int, kind: str, message: str,
                          now: datetime) -> Submission:
    """Add a new submission in the queue with its first event (the caller checked the rules and commits:
    server/uploads/rules.py's `create_submission`)."""
    submission = Submission(
        competition_id=team.competition_id, team_id=team.id, sha256=sha256, size_bytes=size_bytes, kind=kind,
        message=message.strip(), attempts=0, created_at=now, selected_final=False,
    )
    transition(session, submission, SubmissionStatus.queued, f"uploaded by team '{team.name}' and validated", now=now)
    session.add(submission)
    return submission


def get_submission(*, session: Session, submission_id: int) -> Submission:
    return _get_or_not_found(session, Submission, submission_id)


def _get_or_not_found(session: Session, model: type[RowT], row_id: int) -> RowT:
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(f"{model.__name__} {row_id} does not exist.")
    return row


def get_visible_submission(
    *, session: Session, submission_id: int, team: Team | None, is_admin: bool
) -> Submission:
    """A submission for its own team or an organizer (403 for everyone else)."""
    submission = get_submission(session=session, submission_id=submission_id)
    if not is_admin and (team is None or team.id != submission.team_id):
        raise Forbidden(f"Submission {submission_id} belongs to another team; teams see only their own submissions.")
    return submission


def list_submissions(
    *, session: Session, competition: CompetitionRow | None = None, team: Team | None = None,
    status: str | None = None, limit: int = 100, offset: int = 0,
) -> tuple[list[Submission], int]:
    """Newest first, with the total count for paging."""
    query = select(Submission)
    if competition is not None:
        query = query.where(Submission.competition_id == competition.id)
    if team is not None:
        query = query.where(Submission.team_id == team.id)
    if status is not None:
        query = query.where(Submission.status == status)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Submission.created_at.desc(), Submission.id.desc()).limit(limit)
                           .offset(offset)).unique().all()
    return list(rows), int(count)


def finals_frozen(*, competition: CompetitionRow, deadline: datetime | None, now: datetime) -> str | None:
    """Why a team may no longer change its finals, or None. They freeze at the deadline, and at the reveal when
    there is none: a team that has read its private scores must not pick the submission they favour."""
    if deadline is not None and now >= deadline:
        return f"Final selection closed at the deadline ({deadline:%Y-%m-%d %H:%M} UTC); your finals stand as chosen."
    if competition.private_revealed_at is not None:
        return "Final selection closed when the private board was revealed; your finals stand as chosen."
    return None


def select_final(
    *, session: Session, submission_id: int, team: Team, selected: bool, limit: int,
    deadline: datetime | None = None, now: datetime | None = None,
) -> Submission:
    """Mark (or unmark) one of a team's scored submissions as a final, up to the competition's limit, until the
    deadline (or the reveal)."""
    now = now or utcnow()
    begin_write(session)
    submission = get_visible_submission(session=session, submission_id=submission_id, team=team, is_admin=False)
    if limit <= 0:
        raise Conflict("This competition ranks each team's best submission; there are no finals to select.")
    competition = session.get_one(CompetitionRow, submission.competition_id, populate_existing=True)
    frozen = finals_frozen(competition=competition, deadline=deadline, now=now)
    if frozen:
        raise Conflict(frozen, detail={"finals": "frozen"})
    if selected and not submission.selected_final:
        if submission.status != SubmissionStatus.scored:
            raise Conflict(f"Submission {submission_id} is {submission.status}; only scored ones can be finals.")
        chosen = session.scalar(select(func.count(Submission.id)).where(
            Submission.team_id == team.id, Submission.selected_final.is_(True)))
        if (chosen or 0) >= limit:
            raise Conflict(f"Your team has already selected {limit} final(s); unselect one first.",
                           detail={"limit": limit})
    submission.selected_final = selected
    submission.updated_at = now
    bump_board_version(session, submission.competition_id)
    session.commit()
    return submission


def disqualify_submission(
    *, session: Session, submission_id: int, reason: str, disqualified: bool = True, now: datetime | None = None
) -> Submission:
    begin_write(session)
    submission = get_submission(session=session, submission_id=submission_id)
    _mark_disqualified(session, submission, reason, disqualified, now)
    return submission


def _mark_disqualified(session: Session, row: Team | Submission, reason: str, disqualified: bool,
                       now: datetime | None) -> None:
    """Disqualify (or reinstate) a team or a submission; its board changes."""
    row.disqualified_at = (now or utcnow()) if disqualified else None
    row.disqualified_reason = reason if disqualified else None
    bump_board_version(session, row.competition_id)
    session.commit()


def team_submissions_stamp(*, session: Session, team: Team) -> tuple[int, datetime | None]:
    """(how many, the newest change) of a team's submissions: a page listing them stays current while this does
    (every status change sets `updated_at`; disqualifications and finals move the board version as well)."""
    count, newest = session.execute(select(func.count(Submission.id), func.max(Submission.updated_at))
                                    .where(Submission.team_id == team.id)).one()
    return int(count), newest


def team_scores_over_time(*, session: Session, team: Team) -> list[tuple[datetime, float, bool, float | None]]:
    """(submitted, public score, penalized, its standard error) of every scored submission of a team, oldest first:
    the plot's points, without loading the submissions themselves."""
    rows = session.execute(select(Submission.created_at, Submission.score_public, Submission.penalized,
                                  Submission.score_public_se)
                           .where(Submission.team_id == team.id, Submission.status == SubmissionStatus.scored,
                                  Submission.score_public.is_not(None))
                           .order_by(Submission.created_at, Submission.id))
    return [(created, score, bool(penalized), se) for created, score, penalized, se in rows if score is not None]
