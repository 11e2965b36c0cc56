"""The organizer console's services: change a competition's settings (validated, recorded, written atomically to
competition.json and the database) and post announcements. The pages and `arena admin settings|announce` call
these, so the browser and the CLI share every rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.competition_dir import CompetitionConfig, load_competition, write_config
from server.db import CompetitionRow, Submission, begin_write, bump_board_version, utcnow
from server.db.models import Announcement, SettingChange
from server.errors import Conflict, InvalidSettings
from server.inputs import plain_text
from submissions.competition import CompetitionStatus, SubmissionKinds

# What the settings page edits, with the effect people read next to each field.
EDITABLE: dict[str, str] = {
    "title": "Shown on every page and in the competition list.",
    "description": "Markdown; the first thing on the overview page.",
    "team_rules": "Markdown; the rules teams agree to, shown on the overview page.",
    "deadline": "UTC. After it, uploads are refused (the message names the deadline); boards stay visible.",
    "daily_limit": "Accepted submissions per team per UTC day (rejected uploads and system failures don't count).",
    "final_selection_limit": "0: each team's best submission counts. N: teams pick up to N finals for the private "
                             "board.",
    "self_registration": "Whether teams may create their own accounts (otherwise the organizer creates them).",
    "status": "open: teams submit. closed: uploads refused, pages stay. archived: read-only, still browsable.",
    "submission_kinds": "What teams upload. images: a zip of PNGs they generated. model: an ONNX generator the "
                        "server samples (fresh seeded image sets, so its score has an interval; needs a worker with "
                        "the time to sample). both: either. Entries already made keep their scores.",
}
# Changing these after the first entry would make old and new scores incomparable.
SCORE_FIELDS: dict[str, str] = {
    "images_per_class": "Images per class a submission must hold.",
    "memorization_eps": "The memorization threshold ('auto' or a number).",
}
STATUSES = get_args(CompetitionStatus)
SUBMISSION_KINDS = get_args(SubmissionKinds)
MAX_ANNOUNCEMENT_CHARS = 5000
DEADLINE_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d")


@dataclass(frozen=True)
class Change:
    field: str
    old: Any
    new: Any


def parse_deadline(text: str) -> datetime | None:
    """A deadline typed by a person: empty for none, else a UTC date and time (an explicit offset is honoured)."""
    text = text.strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
        for pattern in DEADLINE_FORMATS:
            try:
                parsed = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
    if parsed is None:
        raise InvalidSettings(f"Deadline '{text}' is not a date and time; write it as YYYY-MM-DD HH:MM (UTC).",
                              detail={"deadline": "write it as YYYY-MM-DD HH:MM (UTC), or leave it empty for none"})
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def count_entries(*, session: Session, competition: CompetitionRow, scored_only: bool = False) -> int:
    """Submissions received (validated under the current settings), or only those scored."""
    query = select(func.count(Submission.id)).where(Submission.competition_id == competition.id)
    if scored_only:
        query = query.where(Submission.status == "scored")
    return int(session.scalar(query) or 0)


def save_warnings(changes: list[Change], now: datetime) -> list[str]:
    """What a saved change does that the organizer may not have meant (saved all the same)."""
    return [f"The deadline {_as_text(change.new)} is in the past: uploads are refused from now on. If that is not "
            "what you meant, set a later one." for change in changes
            if change.field == "deadline" and change.new is not None and change.new <= now]


def _validated(current: CompetitionConfig, changes: dict[str, Any]) -> CompetitionConfig:
    unknown = sorted(set(changes) - set(EDITABLE) - set(SCORE_FIELDS))
    if unknown:
        raise InvalidSettings(
            f"Not an editable setting: {', '.join(unknown)}. Editable: {', '.join([*EDITABLE, *SCORE_FIELDS])}; the "
            "slug, classes, image size and public fraction are fixed when the data is prepared.",
            detail=dict.fromkeys(unknown, "not editable"))
    try:
        return CompetitionConfig.model_validate({**current.model_dump(), **changes})
    except ValidationError as exc:
        problems = {str(error["loc"][0]): error["msg"] for error in exc.errors()}
        listed = "; ".join(f"{field}: {message}" for field, message in problems.items())
        raise InvalidSettings(f"Settings not saved: {listed}.", detail=problems) from exc


def _check_allowed(*, session: Session, competition: CompetitionRow, current: CompetitionConfig,
                   changes: list[Change]) -> None:
    fields = {change.field for change in changes}
    if current.status == "archived" and fields - {"status"}:
        raise Conflict(f"'{competition.slug}' is archived (read-only): set its status to open or closed first, "
                       "then change other settings.")
    scoring = sorted(fields & set(SCORE_FIELDS))
    if scoring:
        entries = count_entries(session=session, competition=competition)
        if entries:
            scored = count_entries(session=session, competition=competition, scored_only=True)
            raise Conflict(
                f"Not changed: {', '.join(scoring)} affect{'s' if len(scoring) == 1 else ''} scores, and "
                f"'{competition.slug}' already has {entries} entr{'y' if entries == 1 else 'ies'} ({scored} scored) "
                "made under the current value; old and new scores would not be comparable. Start a new competition "
                "instead.",
                detail=dict.fromkeys(scoring, "affects scores; entries exist"))


def update_settings(
    *, session: Session, competition: CompetitionRow, changes: dict[str, Any], actor: str, now: datetime | None = None,
) -> list[Change]:
    """Validate, refuse what may not change now (with the reason), record each change and write both stores.

    competition.json is replaced atomically after the history rows are flushed and before the commit; if the commit
    fails the old file is put back, so the file and the database never disagree.
    """
    now = now or utcnow()
    current = load_competition(competition).config
    proposed = _validated(current, changes)
    diffs = [Change(field, getattr(current, field), getattr(proposed, field))
             for field in changes if getattr(current, field) != getattr(proposed, field)]
    if not diffs:
        return []
    _check_allowed(session=session, competition=competition, current=current, changes=diffs)
    begin_write(session)
    row = session.get(CompetitionRow, competition.id)
    assert row is not None
    for diff in diffs:
        session.add(SettingChange(competition_id=row.id, field=diff.field, old_value=_as_text(diff.old),
                                  new_value=_as_text(diff.new), actor=actor[:200], created_at=now))
    row.title = proposed.title
    session.flush()
    # The final selection limit (and the title) shape rendered boards: drop the cached ones.
    bump_board_version(session, row.id)
    root = Path(row.root)
    write_config(root, proposed)
    try:
        session.commit()
    except BaseException:
        session.rollback()
        write_config(root, current)
        raise
    return diffs


def _as_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value if isinstance(value, str) else json.dumps(value)


def reveal_consequence(*, competition: CompetitionRow, revealed: bool, now: datetime) -> tuple[str, str | None]:
    """What revealing the private board (or hiding it again) does, and a warning while teams may still submit."""
    if not revealed:
        return ("Teams and visitors no longer see the private leaderboard; the public one stays. Whoever looked at it "
                "meanwhile may have noted it. The change is recorded in the settings history.", None)
    consequence = ("Everyone, teams and anonymous visitors, will see the private leaderboard: the final ranking on "
                   "the held-out private images, with every team's private scores.")
    deadline = load_competition(competition).config.deadline
    if deadline is not None and deadline <= now:
        return consequence, None
    when = f"The deadline ({_as_text(deadline)}) has not passed" if deadline else "This competition has no deadline"
    return consequence, (f"{when}: teams can still submit, and with the private scores in sight they can tune "
                         "their entries to the private images, which would make the final ranking meaningless.")


def rescore_consequence(*, session: Session, competition: CompetitionRow, now: datetime) -> tuple[str, str | None]:
    """What rescoring every entry does (how many go back into the queue), and a warning while teams submit."""
    count = int(session.scalar(select(func.count(Submission.id)).where(
        Submission.competition_id == competition.id, Submission.status.in_(["scored", "failed"]))) or 0)
    consequence = (f"{count} scored or failed submission{'s' if count != 1 else ''} of '{competition.slug}' go back "
                   "into the queue and are scored again with the current scorer and references: their scores leave "
                   "the boards until the worker has rescored them, and may change. Quotas are not touched. Meant for "
                   "after a scorer or reference change.")
    deadline = load_competition(competition).config.deadline
    if deadline is None or deadline > now:
        return consequence, ("The competition is running: teams will see their entries queued again and new uploads "
                             "wait behind the rescoring.")
    return consequence, None


def setting_history(*, session: Session, competition: CompetitionRow, limit: int = 200) -> list[SettingChange]:
    return list(session.scalars(select(SettingChange).where(SettingChange.competition_id == competition.id)
                                .order_by(SettingChange.id.desc()).limit(limit)))


def announce(*, session: Session, competition: CompetitionRow, message: str, actor: str,
             now: datetime | None = None) -> Announcement:
    message = message.strip()
    if not message:
        raise InvalidSettings("An announcement needs a message.", detail={"message": "empty"})
    if len(message) > MAX_ANNOUNCEMENT_CHARS:
        raise InvalidSettings("Announcements are short notes (5,000 characters at most); put longer text in the rules.",
                              detail={"message": "too long"})
    message = plain_text(message, field="announcement", max_chars=MAX_ANNOUNCEMENT_CHARS)  # no NUL, no controls
    begin_write(session)
    item = Announcement(competition_id=competition.id, message=message, actor=actor[:200], created_at=now or utcnow())
    session.add(item)
    bump_board_version(session, competition.id)  # every board page shows them: its rendering is made anew
    session.commit()
    return item


def withdraw_announcement(*, session: Session, competition: CompetitionRow, announcement_id: int) -> None:
    begin_write(session)
    item = session.get(Announcement, announcement_id)
    if item is not None and item.competition_id == competition.id:
        session.delete(item)
        bump_board_version(session, competition.id)
    session.commit()


def competition_announcements(*, session: Session, slug: str, limit: int = 20) -> list[Announcement]:
    """Newest first; every competition page shows them."""
    return list(session.scalars(select(Announcement).join(CompetitionRow).where(CompetitionRow.slug == slug)
                                .order_by(Announcement.id.desc()).limit(limit)))
