"""Ranking rules on both databases: best per team, ties, finals, baselines, disqualification, private reveal."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from server.boards.ranking import leaderboard, leaderboard_csv
from server.db import Team
from server.db.crud import (
    create_team,
    disqualify_submission,
    disqualify_team,
    register_competition,
    reveal_private_board,
    select_final,
)
from server.errors import Conflict, Forbidden
from server.jobs.queue import claim_next_submission, finish_scored
from server.uploads.rules import create_submission
from submissions.results import SubmissionResult
from tests.utils.server_factories import START, add_scored, class_result, make_test_competition


@pytest.fixture
def board(database, data_dir):
    """(session, competition row, make_team) for a competition with the given config."""
    sessions = []

    def setup(**config):
        competition = make_test_competition(data_dir, **config)
        session = database.sessionmaker()
        sessions.append(session)
        row = register_competition(session=session, root=competition.root)

        def team(name: str, baseline: bool = False) -> Team:
            return create_team(session=session, competition=row, name=name, is_baseline=baseline, now=START)[0]

        return session, row, team

    yield setup
    for session in sessions:
        session.close()


def ranks(result):
    return [(e.team_name, e.rank, round(e.score, 3)) for e in result.entries]


def test_public_board_ranks_each_teams_best_public_score(board):
    session, row, team = board()
    a, b = team("a"), team("b")
    add_scored(session, a, public=30.0, private=1.0, created_at=START)
    add_scored(session, a, public=20.0, private=99.0, created_at=START + timedelta(hours=1))
    add_scored(session, b, public=25.0, private=5.0, created_at=START)
    result = leaderboard(session=session, competition=row)
    assert ranks(result) == [("a", 1, 20.0), ("b", 2, 25.0)]
    assert result.entries[0].submissions_count == 2
    assert result.entries[0].class_scores == {"with_mask": 10.0, "without_mask": 10.0}


def test_ties_go_to_the_earlier_submission(board):
    session, row, team = board()
    late, early = team("late"), team("early")
    add_scored(session, late, public=10.0, private=10.0, created_at=START + timedelta(minutes=5))
    add_scored(session, early, public=10.0, private=10.0, created_at=START)
    assert [e.team_name for e in leaderboard(session=session, competition=row).entries] == ["early", "late"]
    # The same rule inside one team: its earlier equal submission is the one shown.
    first = add_scored(session, late, public=10.0, private=3.0, created_at=START + timedelta(minutes=1))
    entry = next(e for e in leaderboard(session=session, competition=row).entries if e.team_name == "late")
    assert entry.submission_id == first.id


def test_baselines_are_shown_marked_and_not_ranked(board):
    session, row, team = board()
    reference, a, b = team("DCGAN baseline", baseline=True), team("a"), team("b")
    add_scored(session, reference, public=15.0, private=15.0, created_at=START)
    add_scored(session, a, public=10.0, private=10.0, created_at=START)
    add_scored(session, b, public=20.0, private=20.0, created_at=START)
    result = leaderboard(session=session, competition=row)
    assert ranks(result) == [("a", 1, 10.0), ("DCGAN baseline", None, 15.0), ("b", 2, 20.0)]
    assert [e.is_baseline for e in result.entries] == [False, True, False]


def test_disqualified_submissions_and_teams_are_excluded(board):
    session, row, team = board()
    a, b, c = team("a"), team("b"), team("c")
    cheat = add_scored(session, a, public=1.0, private=1.0, created_at=START)
    add_scored(session, a, public=12.0, private=12.0, created_at=START)
    add_scored(session, b, public=2.0, private=2.0, created_at=START)
    add_scored(session, c, public=13.0, private=13.0, created_at=START)
    disqualify_submission(session=session, submission_id=cheat.id, reason="copied training images")
    disqualify_team(session=session, team_id=b.id, reason="two accounts")
    assert ranks(leaderboard(session=session, competition=row)) == [("a", 1, 12.0), ("c", 2, 13.0)]
    disqualify_team(session=session, team_id=b.id, reason="", disqualified=False)  # restoring counts again
    assert ranks(leaderboard(session=session, competition=row))[0] == ("b", 1, 2.0)


def test_private_board_is_hidden_until_revealed_then_shows_rank_change(board):
    session, row, team = board()
    a, b = team("a"), team("b")
    add_scored(session, a, public=10.0, private=30.0, created_at=START)
    add_scored(session, b, public=20.0, private=15.0, created_at=START)
    with pytest.raises(Forbidden):  # teams and anonymous visitors alike
        leaderboard(session=session, competition=row, board="private")
    organizer_view = leaderboard(session=session, competition=row, board="private", is_admin=True)
    assert not organizer_view.revealed
    reveal_private_board(session=session, competition=row)
    result = leaderboard(session=session, competition=row, board="private")
    assert result.revealed
    assert ranks(result) == [("b", 1, 15.0), ("a", 2, 30.0)]
    assert [(e.public_rank, e.rank_change) for e in result.entries] == [(2, 1), (1, -1)]
    assert result.entries[0].class_scores == {"with_mask": 7.5, "without_mask": 7.5}
    csv_text = leaderboard_csv(result)
    assert ",public_rank,rank_change," in csv_text.splitlines()[0]
    assert csv_text.splitlines()[1].startswith("1,b,0,")


def test_entries_within_noise_of_the_row_above_are_marked_tied_without_reordering(board):
    session, row, team = board()
    a, b, c, d, old = team("a"), team("b"), team("c"), team("d"), team("old")
    add_scored(session, a, public=20.0, private=30.0, created_at=START, public_se=1.0, private_se=1.0)
    # 1.5 apart with se 1 each: difference se sqrt(2) = 1.41, limit 2.77 -> tied; the intervals overlap too.
    add_scored(session, b, public=21.5, private=20.0, created_at=START, public_se=1.0, private_se=1.0)
    # 3.3 apart: the 95% intervals [19.54, 23.46] and [22.84, 26.76] still overlap, but the difference is
    # significant (3.3 > 2.77): not a tie under the difference test.
    add_scored(session, c, public=24.8, private=20.5, created_at=START, public_se=1.0, private_se=1.0)
    add_scored(session, d, public=25.0, private=50.0, created_at=START, public_se=0.1, private_se=0.1)
    add_scored(session, old, public=25.1, private=60.0, created_at=START)  # scored before intervals: se unknown
    result = leaderboard(session=session, competition=row)
    assert ranks(result) == [("a", 1, 20.0), ("b", 2, 21.5), ("c", 3, 24.8), ("d", 4, 25.0), ("old", 5, 25.1)]
    assert [e.tied_above for e in result.entries] == [False, True, False, True, False]
    assert result.entries[0].score_se == 1.0
    lines = leaderboard_csv(result).splitlines()
    assert lines[0].endswith(",score_se,ci95_low,ci95_high,tied_above,interval")
    assert lines[2].endswith(",1.000000,19.540036,23.459964,1,half-sampling over the images")
    assert lines[5].endswith(",,,,0,")

    reveal_private_board(session=session, competition=row)
    private = leaderboard(session=session, competition=row, board="private")
    assert [(e.team_name, e.tied_above) for e in private.entries] == [
        ("b", False), ("c", True), ("a", False), ("d", False), ("old", False)]
    assert [e.rank_change for e in private.entries] == [1, 1, -2, 0, 0]


def test_private_board_without_selection_uses_the_best_public_submission(board):
    session, row, team = board()
    a = team("a")
    best_public = add_scored(session, a, public=10.0, private=50.0, created_at=START)
    add_scored(session, a, public=40.0, private=1.0, created_at=START)  # a lucky private score can't be picked
    reveal_private_board(session=session, competition=row)
    entry = leaderboard(session=session, competition=row, board="private").entries[0]
    assert (entry.submission_id, entry.score) == (best_public.id, 50.0)


def test_finals_selection_decides_the_private_board(board):
    session, row, team = board(final_selection_limit=2)
    a = team("a")
    s1 = add_scored(session, a, public=10.0, private=40.0, created_at=START)
    s2 = add_scored(session, a, public=20.0, private=30.0, created_at=START + timedelta(minutes=1))
    s3 = add_scored(session, a, public=30.0, private=5.0, created_at=START + timedelta(minutes=2))
    # No selection: the best public ones (up to the limit) stand in, as on Kaggle.
    preview = leaderboard(session=session, competition=row, board="private", is_admin=True)
    assert preview.entries[0].submission_id == s2.id
    select_final(session=session, submission_id=s3.id, team=a, selected=True, limit=2)
    select_final(session=session, submission_id=s1.id, team=a, selected=True, limit=2)
    with pytest.raises(Conflict, match="already selected 2"):
        select_final(session=session, submission_id=s2.id, team=a, selected=True, limit=2)
    reveal_private_board(session=session, competition=row)
    private = leaderboard(session=session, competition=row, board="private").entries[0]
    assert (private.submission_id, private.score) == (s3.id, 5.0)
    # The public board still shows the best public score over all submissions.
    assert leaderboard(session=session, competition=row).entries[0].submission_id == s1.id


def test_selecting_another_teams_submission_is_forbidden(board):
    session, row, team = board(final_selection_limit=2)
    a, b = team("a"), team("b")
    theirs = add_scored(session, b, public=1.0, private=1.0, created_at=START)
    with pytest.raises(Forbidden):
        select_final(session=session, submission_id=theirs.id, team=a, selected=True, limit=2)


def test_board_follows_a_score_the_worker_stores(board, data_dir):
    session, row, team = board()
    a = team("a")
    add_scored(session, a, public=10.0, private=10.0, created_at=START)
    assert ranks(leaderboard(session=session, competition=row)) == [("a", 1, 10.0)]
    queued, _ = create_submission(session=session, competition=row, team=a, sha256="f" * 64, size_bytes=1,
                                  now=START)
    claimed = claim_next_submission(session=session, worker_id="w1", now=START)
    assert claimed is not None and claimed.id == queued.id
    result = SubmissionResult(score_public=5.0, score_private=6.0, score_all=5.5, penalized=False,
                              class_scores={"with_mask": class_result(2.0, 3.0)}, scorer_version="t")
    assert finish_scored(session=session, submission_id=queued.id, lease_id=claimed.lease_id, worker_id="w1",
                         result=result, now=START)
    assert ranks(leaderboard(session=session, competition=row)) == [("a", 1, 5.0)]


def reference_board(rows, board, limit):
    """The ranking rules written plainly in Python: {team: submission id} of each team's entry."""
    by_team = {}
    for row in rows:
        by_team.setdefault(row["team"], []).append(row)
    entries = {}
    for team, subs in by_team.items():
        by_public = sorted(subs, key=lambda s: (s["penalized"], s["public"], s["created_at"], s["id"]))
        if board == "public" or limit <= 0:
            candidates = by_public[:1]
        else:
            selected = sorted((s for s in subs if s["selected"]), key=lambda s: s["id"])
            candidates = selected[:limit] if selected else by_public[:limit]
        key = "public" if board == "public" else "private"
        entries[team] = min(candidates, key=lambda s: (s["penalized"], s[key], s["created_at"], s["id"]))["id"]
    return entries


@pytest.mark.parametrize("limit", [0, 1, 2])
def test_database_picks_match_the_rules_written_in_python(board, limit):
    rng = random.Random(limit)
    session, row, team = board(final_selection_limit=limit)
    rows = []
    for t in range(12):
        owner = team(f"t{t}")
        for _ in range(rng.randint(1, 6)):  # scores from a small set, so ties happen
            public, private = rng.choice([1.0, 2.0, 3.0]), rng.choice([1.0, 2.0, 3.0])
            created = START + timedelta(minutes=rng.randint(0, 3))
            submission = add_scored(session, owner, public=public, private=private, created_at=created)
            submission.penalized = rng.choice([False, False, True, None])  # None: scored before MiFID existed
            rows.append({"team": owner.name, "id": submission.id, "public": public, "private": private,
                         "created_at": created, "selected": False, "penalized": bool(submission.penalized)})
        if limit and rng.random() < 0.5:
            own = [r for r in rows if r["team"] == owner.name]
            for chosen in rng.sample(own, k=min(len(own), rng.randint(1, limit))):
                select_final(session=session, submission_id=chosen["id"], team=owner, selected=True, limit=limit)
                chosen["selected"] = True
    session.commit()
    reveal_private_board(session=session, competition=row, now=START)
    counts = {}  # team: (counted submissions, newest one), as the board shows them
    for r in rows:
        counted, newest = counts.get(r["team"], (0, r["created_at"]))
        counts[r["team"]] = (counted + 1, max(newest, r["created_at"]))
    for which in ("public", "private"):
        result = leaderboard(session=session, competition=row, board=which)
        assert {e.team_name: e.submission_id for e in result.entries} == reference_board(rows, which, limit)
        assert {e.team_name: (e.submissions_count, e.last_submitted_at) for e in result.entries} == counts
        order = [(e.penalized, e.score) for e in result.entries]  # penalized entries rank below the rest
        assert order == sorted(order) and [e.rank for e in result.entries] == list(range(1, 13))
