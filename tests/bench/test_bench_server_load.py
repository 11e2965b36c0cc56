"""bench/server_load.py (`python -m bench.server_load`): the server benchmark runs end to end at a tiny size."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.utils.serve import REPO as ROOT


@pytest.mark.slow
def test_runs_without_the_upload_phase(tmp_path):
    """`--uploads 0` skips the uploads (it used to crash averaging no zips): every read phase still runs against
    a real `arena serve`, and the report and its JSON say nothing of uploads."""
    out = tmp_path / "server_load.json"
    env = {**os.environ, "ARENA_DATA_DIR": str(tmp_path / "unused")}
    # About 10 s on idle cores; the timeout only guards against a hang on the shared, busy machine.
    result = subprocess.run(
        [sys.executable, "-m", "bench.server_load", "--submissions", "40", "--teams", "4", "--readers", "2",
         "--requests-per-reader", "5", "--uploads", "0", "--drain", "0", "--team-entries", "60",
         "--images-per-class", "2", "--new-scores", "4", "--data-dir", str(tmp_path / "data"), "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert "uploads" not in summary and "concurrent uploads" not in result.stdout
    assert summary["leaderboard"]["plain"]["errors"] == 0 and summary["leaderboard"]["plain"]["entries"] == 4
    for phase in ("anonymous", "signed_in", "status"):
        assert summary["html"][phase]["errors"] == 0, phase
    assert summary["html"]["team_page"]["last_page_status"] == 200
    # The scoring phase reads until its scores landed (more than the 4 teams: the bench goes round them again),
    # and the board page showed each one.
    visible = summary["html"]["scoring"]["visible_after"]
    assert len(visible["seen_after_s"]) >= 3 and visible["missed"] == 0
