"""Leaderboards: the public board (best public score per team) and the private board (hidden until revealed).

Rules, in one place:
- Only scored submissions count; disqualified submissions and teams are left out.
- Public board: each team's best public score over all its scored submissions.
- Private board: each team's entries are its selected finals (up to `final_selection_limit`; if it selected none,
  its best public ones, as Kaggle does) or, without selection, its best-public submission; ranked by private score.
  A team can't pick its entry by private score, so the private split stays a fair held-out test.
- A penalized submission (MiFID: some class too close to real images) ranks below every unpenalized one, whatever
  its number: the penalty says the images were memorized, and dividing by a distance of 0.04 may leave a number
  that would still beat honest entries.
- Ties go to the earlier submission. Baseline (reference) teams appear at their score, marked, without a rank.
- Statistical ties: each row whose score is not distinguishable from the row above it is marked (`tied_above`);
  the order does not change. The test is on the difference: two entries share no images, so their scores are
  independent and the difference has standard error sqrt(se_a^2 + se_b^2); the rows tie when |a - b| <= 1.96 x
  that. It holds its level only with calibrated standard errors (half-sampling, server.scoring.uncertainty): on
  fresh sample sets of one generator the rule ties two sets ~95% of the time, and tells apart two generators whose
  FIDs differ by 3 standard errors of the difference most of the time (bench/calibration.py, docs/BENCHMARKS.md).
  A model submission's se is measured instead: the standard deviation of its score over fresh sample sets
  (`interval_sets` of them, submissions.results.SubmissionResult.with_sample_sets), the same quantity.
  Interval overlap would be the simpler rule but is too lenient: two 95% intervals overlap up to
  |a - b| = 1.96 (se_a + se_b), which for equal errors calls a difference significant at p = 0.006 a tie.
  Entries scored before the intervals existed (se unknown) are never marked.
- The board is cached per competition until its `board_version` changes (every score, reveal or disqualification
  bumps it), so a check costs one primary-key lookup; `server.boards.cache` serves the API's and the pages' reads from
  memory.
- The one board cache: every rendering of a board (the API's JSON and CSV bytes, the board page) is made by
  `Leaderboard.rendered` and kept on the cached `Leaderboard` object, so it is dropped exactly when the board is
  recomputed; nothing else decides when a rendering is stale.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar
from weakref import WeakKeyDictionary

from pydantic import BaseModel, PrivateAttr
from sqlalchemy import Engine, false, func, select
from sqlalchemy.orm import Session

from server.competition_dir import load_competition
from server.db import CompetitionRow, Submission, SubmissionStatus, Team, utcnow
from server.errors import Forbidden
from submissions.results import Z_95, ClassResult, ResultView, SampleSets, Viewer, interval_95, interval_label

Board = Literal["public", "private"]
T = TypeVar("T")
PRIVATE_HIDDEN = "The private leaderboard is hidden until the organizer reveals it after the deadline."


class LeaderboardEntry(BaseModel):
    rank: int | None  # None for baseline (reference) entries: shown, not ranked
    team_id: int
    team_name: str
    is_baseline: bool
    submission_id: int
    score: float
    class_scores: dict[str, float]  # per-class FID on this board's split
    penalized: bool
    penalized_classes: list[str] = []  # the classes whose FID carries the memorization penalty
    submitted_at: datetime
    submissions_count: int
    last_submitted_at: datetime  # the team's newest counted submission (the board's "last entry")
    public_rank: int | None = None  # private board only: where the team stood on the public board
    rank_change: int | None = None  # private board only: positive = moved up
    score_se: float | None = None  # standard error of `score` (half-sampling) (95% interval: +- 1.96 se)
    class_se: dict[str, float] = {}  # per-class standard errors on this board's split
    tied_above: bool = False  # not distinguishable from the row above (see the module docstring)
    interval_sets: int | None = None  # se measured over this many sample sets of a model; None: half-sampling


class Leaderboard(BaseModel):
    competition: str
    board: Board
    revealed: bool
    generated_at: datetime
    entries: list[LeaderboardEntry]
    _renderings: dict[Hashable, Any] = PrivateAttr(default_factory=dict)

    def visible_to(self, *, is_admin: bool) -> bool:
        return board_visible(self.board, revealed=self.revealed, is_admin=is_admin)

    def rendered(self, key: Hashable, render: Callable[[Leaderboard], T]) -> T:
        """`render(self)`, made once per board: `leaderboard()` hands back this same object until the board changes."""
        if key not in self._renderings:
            self._renderings[key] = render(self)
        return self._renderings[key]

    def rendered_before(self, key: Hashable) -> Any | None:
        """What `rendered(key, ...)` made already, or None (a caller may then render off the event loop)."""
        return self._renderings.get(key)


# Per engine, so tests and tools that open several databases in one process never share boards.
_cache: WeakKeyDictionary[Engine, dict[tuple[int, Board], tuple[int, Leaderboard]]] = WeakKeyDictionary()


def board_visible(board: Board, *, revealed: bool, is_admin: bool) -> bool:
    """The public board is everyone's; the private one only the organizer's until it is revealed."""
    return board == "public" or revealed or is_admin


def private_board_visible(competition: CompetitionRow, *, is_admin: bool) -> bool:
    return viewer_of(competition, is_admin=is_admin).sees_private


def viewer_of(competition: CompetitionRow, *, is_admin: bool) -> Viewer:
    """Who looks at a submission of this competition (one the server lets them see: their own, or as organizer)."""
    return Viewer(organizer=is_admin, private_revealed=competition.private_revealed_at is not None)


def result_seen(submission: Submission, *, is_admin: bool) -> ResultView | None:
    """The submission's result as the viewer may see it, for the API and the pages alike; None before scoring."""
    result = submission.result()
    return result.seen_by(viewer_of(submission.team.competition, is_admin=is_admin)) if result else None


def leaderboard(*, session: Session, competition: CompetitionRow, board: Board = "public",
                is_admin: bool = False) -> Leaderboard:
    """The board as teams see it; the private board before the reveal only for organizers (403 otherwise)."""
    version, revealed_at = session.execute(
        select(CompetitionRow.board_version, CompetitionRow.private_revealed_at).where(
            CompetitionRow.id == competition.id)
    ).one()
    if not board_visible(board, revealed=revealed_at is not None, is_admin=is_admin):
        raise Forbidden(PRIVATE_HIDDEN)
    boards = _cache.setdefault(session.get_bind().engine, {})
    cached = boards.get((competition.id, board))
    if cached is None or cached[0] != version:
        cached = (version, _compute(session, competition, board, revealed=revealed_at is not None))
        boards[(competition.id, board)] = cached
    return cached[1]


class _Counted(Protocol):
    """One counted submission as ranking reads it: plain columns, no ORM objects (10,000 rows in about 0.1 s)."""

    id: int
    team_id: int
    created_at: datetime
    score_public: float
    score_private: float | None
    selected_final: bool
    score_public_se: float | None
    score_private_se: float | None
    penalized: bool | None


def _sort_key(score: float, submission: _Counted) -> tuple[bool, float, datetime, int]:
    return (bool(submission.penalized), score, submission.created_at, submission.id)


def _counted(competition_id: int) -> tuple[Any, ...]:
    """The submissions a board counts (joined with their team)."""
    return (Submission.competition_id == competition_id, Submission.status == SubmissionStatus.scored,
            Submission.disqualified_at.is_(None), Team.disqualified_at.is_(None), Submission.score_public.is_not(None))


_COUNTED_COLUMNS = (Submission.id, Submission.team_id, Submission.created_at, Submission.score_public,
                    Submission.score_private, Submission.selected_final, Submission.score_public_se,
                    Submission.score_private_se, Submission.penalized)


def _counted_submissions(session: Session, competition_id: int) -> dict[int, list[_Counted]]:
    rows = session.execute(
        select(*_COUNTED_COLUMNS).join(Team, Team.id == Submission.team_id).where(*_counted(competition_id))
        .order_by(Submission.id)
    ).all()
    by_team: dict[int, list[_Counted]] = {}
    for row in rows:
        by_team.setdefault(row.team_id, []).append(row)  # type: ignore[arg-type]
    return by_team


class _Pick(_Counted, Protocol):
    """A team's best public submission, with what the board shows of all the team's counted ones."""

    team_submissions: int
    team_last_at: datetime


def _public_picks(session: Session, competition_id: int) -> list[_Pick]:
    """Each team's best public submission (`_sort_key`'s order), picked by the database over a window of the team's
    rows: a recompute reads one row per team instead of every submission, and most of its work runs inside the
    database, outside the GIL that the readers' event loop holds (docs/BENCHMARKS.md, issue 26: a new score shows
    sooner on a board 50 readers are reading)."""
    team = Submission.team_id
    best_first = (func.coalesce(Submission.penalized, false()), Submission.score_public, Submission.created_at,
                  Submission.id)
    per_team = (
        select(*_COUNTED_COLUMNS, func.row_number().over(partition_by=team, order_by=best_first).label("place"),
               func.count().over(partition_by=team).label("team_submissions"),
               func.max(Submission.created_at).over(partition_by=team).label("team_last_at"))
        .join(Team, Team.id == Submission.team_id).where(*_counted(competition_id)).subquery()
    )
    return session.execute(select(per_team).where(per_team.c.place == 1)).all()  # type: ignore[return-value]


def _private_candidates(submissions: list[_Counted], selection_limit: int) -> list[_Counted]:
    by_public = sorted(submissions, key=lambda s: _sort_key(s.score_public, s))
    if selection_limit <= 0:
        return by_public[:1]
    selected = [s for s in submissions if s.selected_final]
    return selected[:selection_limit] if selected else by_public[:selection_limit]


def _ranked(picks: list[tuple[float, _Counted]], baseline_teams: set[int]) -> list[tuple[int | None, float, _Counted]]:
    """Ranks 1, 2, ... by score, then time, then id; baseline (reference) teams get no rank."""
    ranked: list[tuple[int | None, float, _Counted]] = []
    rank = 0
    for score, submission in sorted(picks, key=lambda pick: _sort_key(*pick)):
        if submission.team_id in baseline_teams:
            ranked.append((None, score, submission))
        else:
            rank += 1
            ranked.append((rank, score, submission))
    return ranked


def _compute(session: Session, competition: CompetitionRow, board: Board, *, revealed: bool) -> Leaderboard:
    picks = {pick.team_id: pick for pick in _public_picks(session, competition.id)}
    teams = {t.id: t for t in session.execute(
        select(Team.id, Team.name, Team.is_baseline).where(Team.id.in_(picks)))}
    baseline_teams = {team_id for team_id, team in teams.items() if team.is_baseline}
    public = _ranked([(pick.score_public, pick) for pick in picks.values()], baseline_teams)
    if board == "public":
        ranked, public_rank = public, {}
    else:
        limit = load_competition(competition).config.final_selection_limit
        private_picks = []
        # A team whose first submission was scored between the two queries waits for the next recompute.
        for subs in (subs for team_id, subs in _counted_submissions(session, competition.id).items()
                     if team_id in picks):
            best = min(_private_candidates(subs, limit), key=lambda s: _sort_key(s.score_private or 0.0, s))
            private_picks.append((float(best.score_private or 0.0), best))
        ranked = _ranked(private_picks, baseline_teams)
        public_rank = {s.team_id: rank for rank, _, s in public}
    # Only the shown submissions' per-class scores are read (decoding all of them was most of the cost).
    details = {row.id: row for row in session.execute(
        select(Submission.id, Submission.class_scores, Submission.penalized, Submission.sample_sets).where(
            Submission.id.in_([s.id for _, _, s in ranked])))}
    entries = []
    for rank, score, submission in ranked:
        before, team, detail = public_rank.get(submission.team_id), teams[submission.team_id], details[submission.id]
        # Constructed, not validated: the worker validated these rows when it stored them (SubmissionResult), and
        # re-validating every shown entry's evidence lists made a board of 250 teams ~40 ms slower to compute.
        classes = {cls: ClassResult.model_construct(**values) for cls, values in (detail.class_scores or {}).items()}
        sets = SampleSets.model_construct(**detail.sample_sets) if detail.sample_sets else None
        entries.append(LeaderboardEntry(
            rank=rank, team_id=submission.team_id, team_name=team.name, is_baseline=team.is_baseline,
            submission_id=submission.id, score=score,
            class_scores={cls: c.fid(board) for cls, c in classes.items()},
            penalized=bool(detail.penalized), submitted_at=submission.created_at,
            penalized_classes=[cls for cls, c in classes.items() if c.penalized],
            submissions_count=picks[submission.team_id].team_submissions,
            last_submitted_at=picks[submission.team_id].team_last_at,
            public_rank=before, rank_change=(before - rank) if board == "private" and rank and before else None,
            score_se=submission.score_public_se if board == "public" else submission.score_private_se,
            class_se={cls: float(se) for cls, c in classes.items() if (se := c.se(board)) is not None},
            interval_sets=sets.interval_sets if sets else None,
        ))
    mark_ties(entries)
    return Leaderboard(competition=competition.slug, board=board, revealed=revealed, generated_at=utcnow(),
                       entries=entries)


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: object) -> object:
    """A text cell a spreadsheet would run as a formula, prefixed with ' (shown as text). Numbers are written as
    numbers (not text), so a negative rank change stays a number."""
    return "'" + cell if isinstance(cell, str) and cell.startswith(FORMULA_TRIGGERS) else cell


class SafeCsvWriter:
    """csv.writer whose rows go through `spreadsheet_safe`: every CSV the server writes uses it."""

    def __init__(self, out: io.StringIO) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row: list[object]) -> None:
        self._writer.writerow([spreadsheet_safe(cell) for cell in row])


def statistically_tied(score_a: float, se_a: float | None, score_b: float, se_b: float | None) -> bool:
    """Whether two independent scores are within 1.96 standard errors of their difference of each other."""
    if se_a is None or se_b is None:
        return False
    return abs(score_a - score_b) <= Z_95 * (se_a**2 + se_b**2) ** 0.5


def mark_ties(entries: list[LeaderboardEntry]) -> None:
    """Set `tied_above` on each entry not distinguishable from the entry above it (board order)."""
    for above, entry in zip(entries, entries[1:], strict=False):
        # A penalized entry below an unpenalized one is apart by rule, not within noise of it.
        entry.tied_above = above.penalized == entry.penalized and statistically_tied(
            above.score, above.score_se, entry.score, entry.score_se)


def _uncertainty_csv_header() -> list[str]:
    return ["score_se", "ci95_low", "ci95_high", "tied_above", "interval"]


def _uncertainty_csv_cells(entry: LeaderboardEntry) -> list[str]:
    if entry.score_se is None:
        return ["", "", "", str(int(entry.tied_above)), ""]
    low, high = interval_95(entry.score, entry.score_se) or (entry.score, entry.score)
    return [f"{entry.score_se:.6f}", f"{low:.6f}", f"{high:.6f}", str(int(entry.tied_above)),
            interval_label(entry.interval_sets)]


def leaderboard_csv(board: Leaderboard) -> str:
    classes = sorted({cls for entry in board.entries for cls in entry.class_scores})
    out = io.StringIO()
    writer = SafeCsvWriter(out)
    writer.writerow(["rank", "team", "baseline", "submission_id", "score", *classes, "penalized", "submitted_at",
                     "submissions", *(["public_rank", "rank_change"] if board.board == "private" else []),
                     *_uncertainty_csv_header()])
    for e in board.entries:
        writer.writerow([e.rank or "", e.team_name, int(e.is_baseline), e.submission_id, f"{e.score:.6f}",
                         *(f"{e.class_scores.get(c, 0.0):.6f}" for c in classes), int(e.penalized),
                         e.submitted_at.isoformat(), e.submissions_count,
                         *([e.public_rank or "", e.rank_change if e.rank_change is not None else ""]
                           if board.board == "private" else []),
                         *_uncertainty_csv_cells(e)])
    return out.getvalue()


def all_scores_csv(*, session: Session, competition: CompetitionRow) -> str:
    """Every submission of a competition with status and all scores (organizer export)."""
    out = io.StringIO()
    writer = SafeCsvWriter(out)
    writer.writerow(["submission_id", "team", "baseline", "status", "created_at", "score_public", "score_private",
                     "score_all", "score_public_se", "score_private_se", "score_all_se", "penalized", "class_scores",
                     "selected_final", "disqualified", "attempts",
                     "scorer_version", "sha256", "message"])
    rows = session.scalars(select(Submission).where(Submission.competition_id == competition.id)
                           .order_by(Submission.id)).unique()
    for s in rows:
        writer.writerow([s.id, s.team.name, int(s.team.is_baseline), s.status, s.created_at.isoformat(),
                         s.score_public, s.score_private, s.score_all, s.score_public_se, s.score_private_se,
                         s.score_all_se, s.penalized, s.class_scores or {},
                         int(s.selected_final), int(bool(s.disqualified_at or s.team.disqualified_at)),
                         s.attempts, s.scorer_version, s.sha256, s.message])
    return out.getvalue()
