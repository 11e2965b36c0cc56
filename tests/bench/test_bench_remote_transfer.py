"""bench/remote_transfer.py (`python -m bench.remote_transfer`): alternating drains, their ratios, and a tiny run end
to end against a real `arena serve`."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

from bench.remote_transfer import Drain, TimedScorer, round_order, summarize
from tests.utils.serve import REPO as ROOT

ARGS = argparse.Namespace(images=200, entries=2, rounds=3, test_images=200)
STAGES = {"claim": 0.02, "references": 0.0, "input": 0.01, "score": 40.0, "post": 0.03}


def test_rounds_alternate_which_worker_drains_first():
    assert [round_order(i) for i in range(3)] == [("local", "remote"), ("remote", "local"), ("local", "remote")]


def test_the_comparison_is_the_median_of_the_rounds_ratios():
    """A drift of the load between rounds moves both drains of a round: the median of the per-round ratios stays near
    1 where the ratio of the totals would not (round 2 ran twice as slow for both workers, round 3 had a hiccup)."""
    rounds = [{"local": Drain("local", 2, 100.0, 98.0), "remote": Drain("remote", 2, 102.0, 98.0)},
              {"local": Drain("local", 2, 200.0, 196.0), "remote": Drain("remote", 2, 206.0, 200.0)},
              {"local": Drain("local", 2, 100.0, 98.0), "remote": Drain("remote", 2, 150.0, 98.0)}]
    first = {**STAGES, "references": 3.5}
    result = summarize(ARGS, [Drain("local", 1, 60.0, 50.0), Drain("remote", 1, 70.0, 50.0)], rounds,
                       [first, STAGES, STAGES])
    assert [r["remote_over_local"] for r in result["round_results"]] == [1.02, 1.03, 1.5]
    assert [r["first"] for r in result["round_results"]] == ["local", "remote", "local"]
    assert result["remote_over_local_median"] == 1.03 and result["within_target"]
    assert result["remote_over_local_range"] == [1.02, 1.5]
    assert result["overhead_per_entry_s"] == {"local": 1.0, "remote": 3.0}  # (wall - scoring) / entries, median
    assert result["first_job_references_s"] == 3.5
    assert result["transfer_per_entry_s"] == 0.06 and result["score_per_entry_s"] == 40.0


def test_a_median_past_five_percent_misses_the_target():
    rounds = [{"local": Drain("local", 1, 100.0, 90.0), "remote": Drain("remote", 1, 107.0, 90.0)}]
    assert not summarize(ARGS, [], rounds, [STAGES, STAGES])["within_target"]


def test_the_timed_scorer_adds_up_only_its_score_calls():
    class Scorer:
        device = "cpu"

        def score(self, seconds: float) -> str:
            import time
            time.sleep(seconds)
            return "report"

    timed = TimedScorer(Scorer())
    assert timed.score(0.05) == "report" and timed.score(0.05) == "report"
    assert 0.1 <= timed.seconds < 1.0 and timed.device == "cpu"


@pytest.mark.slow
def test_a_tiny_run_alternates_two_rounds_against_a_real_server(tmp_path):
    out = tmp_path / "remote_transfer.json"
    # Minutes on the shared, busy machine (a real server, InceptionV3 on CPU); the timeout only guards a hang.
    result = subprocess.run([sys.executable, "-m", "bench.remote_transfer", "--images", "2", "--test-images", "4",
                             "--rounds", "2", "--out", str(out)], cwd=ROOT, env=dict(os.environ), capture_output=True,
                            text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert [r["first"] for r in summary["round_results"]] == ["local", "remote"]
    assert all(r["local_wall_s"] >= r["local_score_s"] > 0 and r["remote_wall_s"] >= r["remote_score_s"] > 0
               for r in summary["round_results"])
    assert len(summary["jobs"]) == 3  # the warm-up job and one per round
    assert summary["first_job_references_s"] > 0 and "remote / local, median" in result.stdout
