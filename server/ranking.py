"""Leaderboards: the public board (best public score per team) and the private board (hidden until revealed).

Rules, in one place:
- Only scored submissions count; disqualified submissions and teams are left out.
- Public board: each team's best public score over all its scored submissions.
- Private board: each team's entries are its selected finals (up to `final_selection_limit`; if it selected none,
  its best public ones, as Kaggle does) or, without selection, its best-public submission; ranked by private score.
  A team can't pick its entry by private score, so the private split stays a fair held-out test.
- Ties go to the earlier submission. Baseline (reference) teams appear at their score, marked, without a rank.
- The board is cached per competition until its `board_version` changes (every score, reveal or disqualification
  bumps it), so readers cost one primary-key lookup.
"""

from __future__ import annotations

import csv
import io
import time
from datetime import datetime
from typing import Literal
from weakref import WeakKeyDictionary

from pydantic import BaseModel, PrivateAttr
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, load_only, raiseload

from server.db import CompetitionRow, Submission, SubmissionStatus, Team, utcnow
from server.db.crud import load_competition
from server.errors import Forbidden

Board = Literal["public", "private"]


class LeaderboardEntry(BaseModel):
    rank: int | None  # None for baseline (reference) entries: shown, not ranked
    team_id: int
    team_name: str
    is_baseline: bool
    submission_id: int
    score: float
    class_scores: dict[str, float]  # per-class FID on this board's split
    penalized: bool
    submitted_at: datetime
    submissions_count: int
    last_submitted_at: datetime  # the team's newest counted submission (the board's "last entry")
    public_rank: int | None = None  # private board only: where the team stood on the public board
    rank_change: int | None = None  # private board only: positive = moved up


class Leaderboard(BaseModel):
    competition: str
    board: Board
    revealed: bool
    generated_at: datetime
    entries: list[LeaderboardEntry]

    # Rendered once per cached board: readers get the same bytes until the board changes.
    _rendered: dict[str, bytes] = PrivateAttr(default_factory=dict)

    def rendered(self, fmt: Literal["json", "csv"]) -> bytes:
        if fmt not in self._rendered:
            self._rendered[fmt] = self.model_dump_json().encode() if fmt == "json" else leaderboard_csv(self).encode()
        return self._rendered[fmt]


# Per engine, so tests and tools that open several databases in one process never share boards.
_cache: WeakKeyDictionary[Engine, dict[tuple[int, Board], tuple[int, Leaderboard]]] = WeakKeyDictionary()
# When each board was last confirmed current (monotonic seconds), by competition slug.
_checked: WeakKeyDictionary[Engine, dict[tuple[str, Board], tuple[float, Leaderboard]]] = WeakKeyDictionary()


def private_board_visible(competition: CompetitionRow, *, is_admin: bool) -> bool:
    return is_admin or competition.private_revealed_at is not None


def leaderboard(*, session: Session, competition: CompetitionRow, board: Board = "public",
                is_admin: bool = False) -> Leaderboard:
    """The board as teams see it; the private board before the reveal only for organizers (403 otherwise)."""
    version, revealed_at = session.execute(
        select(CompetitionRow.board_version, CompetitionRow.private_revealed_at).where(
            CompetitionRow.id == competition.id)
    ).one()
    if board == "private" and revealed_at is None and not is_admin:
        raise Forbidden("The private leaderboard is hidden until the organizer reveals it after the deadline.")
    boards = _cache.setdefault(session.get_bind().engine, {})
    cached = boards.get((competition.id, board))
    if cached is None or cached[0] != version:
        cached = (version, _compute(session, competition, board, revealed=revealed_at is not None))
        boards[(competition.id, board)] = cached
    _checked.setdefault(session.get_bind().engine, {})[(competition.slug, board)] = (time.monotonic(), cached[1])
    return cached[1]


def recently_checked_board(engine: Engine, slug: str, board: Board, max_age: float) -> Leaderboard | None:
    """The board `leaderboard()` confirmed current at most `max_age` seconds ago, without touching the database.

    Lets the API answer most reads from memory (a board at most max_age seconds old); None means: call
    `leaderboard()`. Visibility still applies: check `revealed` before serving a private board.
    """
    checked = _checked.get(engine, {}).get((slug, board))
    if checked is None or time.monotonic() - checked[0] > max_age:
        return None
    return checked[1]


def _sort_key(score: float, submission: Submission) -> tuple[float, datetime, int]:
    return (score, submission.created_at, submission.id)


RANKING_COLUMNS = (Submission.id, Submission.team_id, Submission.created_at, Submission.score_public,
                   Submission.score_private, Submission.selected_final, Submission.penalized, Submission.class_scores)


def _counted_submissions(session: Session, competition_id: int) -> dict[int, list[Submission]]:
    rows = session.scalars(
        select(Submission)
        .options(raiseload(Submission.events), load_only(*RANKING_COLUMNS))
        .join(Team, Team.id == Submission.team_id)
        .where(
            Submission.competition_id == competition_id, Submission.status == SubmissionStatus.scored,
            Submission.disqualified_at.is_(None), Team.disqualified_at.is_(None), Submission.score_public.is_not(None),
        )
    ).unique().all()
    by_team: dict[int, list[Submission]] = {}
    for submission in rows:
        by_team.setdefault(submission.team_id, []).append(submission)
    return by_team


def _private_candidates(submissions: list[Submission], selection_limit: int) -> list[Submission]:
    by_public = sorted(submissions, key=lambda s: _sort_key(s.score_public or 0.0, s))
    if selection_limit <= 0:
        return by_public[:1]
    selected = [s for s in submissions if s.selected_final]
    return selected[:selection_limit] if selected else by_public[:selection_limit]


def _ranked(picks: list[tuple[float, Submission]]) -> list[tuple[int | None, float, Submission]]:
    ranked: list[tuple[int | None, float, Submission]] = []
    rank = 0
    for score, submission in sorted(picks, key=lambda pick: _sort_key(pick[0], pick[1])):
        if submission.team.is_baseline:
            ranked.append((None, score, submission))
        else:
            rank += 1
            ranked.append((rank, score, submission))
    return ranked


def _class_scores(submission: Submission, board: Board) -> dict[str, float]:
    return {cls: float(values.get(f"fid_{board}", 0.0)) for cls, values in (submission.class_scores or {}).items()}


def _compute(session: Session, competition: CompetitionRow, board: Board, *, revealed: bool) -> Leaderboard:
    by_team = _counted_submissions(session, competition.id)
    public_picks = [min(((s.score_public, s) for s in subs), key=lambda p: _sort_key(p[0] or 0.0, p[1]))
                    for subs in by_team.values()]
    public = _ranked([(float(score or 0.0), s) for score, s in public_picks])
    if board == "public":
        ranked, public_rank = public, {}
    else:
        limit = load_competition(competition).config.final_selection_limit
        private_picks = []
        for subs in by_team.values():
            candidates = _private_candidates(subs, limit)
            best = min(candidates, key=lambda s: _sort_key(s.score_private or 0.0, s))
            private_picks.append((float(best.score_private or 0.0), best))
        ranked = _ranked(private_picks)
        public_rank = {s.team_id: rank for rank, _, s in public}
    entries = []
    for rank, score, submission in ranked:
        before = public_rank.get(submission.team_id)
        entries.append(LeaderboardEntry(
            rank=rank, team_id=submission.team_id, team_name=submission.team.name,
            is_baseline=submission.team.is_baseline, submission_id=submission.id, score=score,
            class_scores=_class_scores(submission, board), penalized=bool(submission.penalized),
            submitted_at=submission.created_at, submissions_count=len(by_team[submission.team_id]),
            last_submitted_at=max(s.created_at for s in by_team[submission.team_id]),
            public_rank=before, rank_change=(before - rank) if board == "private" and rank and before else None,
        ))
    return Leaderboard(competition=competition.slug, board=board, revealed=revealed, generated_at=utcnow(),
                       entries=entries)


def leaderboard_csv(board: Leaderboard) -> str:
    classes = sorted({cls for entry in board.entries for cls in entry.class_scores})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["rank", "team", "baseline", "submission_id", "score", *classes, "penalized", "submitted_at",
                     "submissions", *(["public_rank", "rank_change"] if board.board == "private" else [])])
    for e in board.entries:
        writer.writerow([e.rank or "", e.team_name, int(e.is_baseline), e.submission_id, f"{e.score:.6f}",
                         *(f"{e.class_scores.get(c, 0.0):.6f}" for c in classes), int(e.penalized),
                         e.submitted_at.isoformat(), e.submissions_count,
                         *([e.public_rank or "", e.rank_change if e.rank_change is not None else ""]
                           if board.board == "private" else [])])
    return out.getvalue()


def all_scores_csv(*, session: Session, competition: CompetitionRow) -> str:
    """Every submission of a competition with status and all scores (organizer export)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["submission_id", "team", "baseline", "status", "created_at", "score_public", "score_private",
                     "score_all", "penalized", "class_scores", "selected_final", "disqualified", "attempts",
                     "scorer_version", "sha256", "message"])
    rows = session.scalars(select(Submission).where(Submission.competition_id == competition.id)
                           .order_by(Submission.id)).unique()
    for s in rows:
        writer.writerow([s.id, s.team.name, int(s.team.is_baseline), s.status, s.created_at.isoformat(),
                         s.score_public, s.score_private, s.score_all, s.penalized, s.class_scores or {},
                         int(s.selected_final), int(bool(s.disqualified_at or s.team.disqualified_at)),
                         s.attempts, s.scorer_version, s.sha256, s.message])
    return out.getvalue()
