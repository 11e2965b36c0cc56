"""What a remote worker pays for the network: claim, download, post against scoring, and its drain against a local one.

    python -m bench.remote_transfer                                  # 4 rounds of 1 entry of 2 x 200 images each
    python -m bench.remote_transfer --images 1000 --entries 2 --rounds 6   # larger entries, on quiet cores

A real `arena serve --no-worker` on 127.0.0.1; one local worker (`server.jobs.worker.Worker`, the database and data dir)
and one remote worker (`server.jobs.remote_worker.RemoteWorker`, HTTP only, an empty cache), both with one Scorer
(torch engine, CPU, randomly initialized FID weights: the network's cost is the real one's, its numbers are not).

The load of shared cores drifts over minutes, so two drains one after the other say little about each other. The
drains alternate instead: each round uploads `--entries` entries for the local worker and as many for the remote one
(same size, other pixels: the cost of scoring depends on the size) and drains them in turn, the local one first in
rounds 1, 3, ... and the remote one first in rounds 2, 4, ..., so a steady drift favours neither. Each round gives
the ratio of its two drains; the median over the rounds is the comparison. The overhead per entry (a drain's wall
time less the Scorer's own time in it: claim, decoding, images written, and for the remote worker the transfers)
does not move with the load of the scoring itself. One warm-up job of each worker comes first, not counted in the
rounds: the remote worker's first job fetches the reference file (~400 MB, whatever the image count) and loads it.

Prints a table and writes bench/results/remote_transfer.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.utils.competition import make_competition, random_images
from tests.utils.inception import install_random_fid_weights
from tests.utils.serve import free_port, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "remote-transfer-admin-token-0123456789"
SLUG = "bench"
TARGET = 0.05  # the issue's: one remote worker's drain within 5% of one local worker's


@dataclass
class TimedScorer:
    """The workers' one Scorer, with the seconds its `score` calls took added up (what a drain spends scoring)."""

    scorer: Any
    seconds: float = 0.0

    def score(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.scorer.score(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started

    def __getattr__(self, name: str) -> Any:  # extractor, device, prepare: the Scorer's own
        return getattr(self.scorer, name)


@dataclass
class Uploader:
    """One team's uploads; every entry is new (its own seed) and `images` per class."""

    url: str
    images: int
    team: str = ""
    uploaded: int = 0
    ids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.team = httpx.post(f"{self.url}/api/admin/competitions/{SLUG}/teams", json={"name": "bench"}, timeout=60,
                               headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()["token"]

    def upload(self, count: int) -> None:
        from submissions import pack

        with httpx.Client(base_url=self.url, timeout=300) as client:
            for _ in range(count):
                self.uploaded += 1
                buffer = io.BytesIO()
                pack({cls: random_images(self.images, 64, seed=self.uploaded * 10 + i, brightness=90 + 60 * i)
                      for i, cls in enumerate(("with_mask", "without_mask"))}, buffer, ["with_mask", "without_mask"])
                response = client.post(f"/api/competitions/{SLUG}/submissions", files={
                    "file": ("s.zip", buffer.getvalue(), "application/zip")},
                    headers={"Authorization": f"Bearer {self.team}"})
                response.raise_for_status()
                self.ids.append(response.json()["id"])


@dataclass(frozen=True)
class Drain:
    """One worker's drain of `jobs` entries: its wall time and the Scorer's time within it."""

    worker: str  # "local" or "remote"
    jobs: int
    wall_s: float
    score_s: float

    @property
    def overhead_per_entry_s(self) -> float:
        return (self.wall_s - self.score_s) / self.jobs


def drain(worker: str, run: Callable[[], int], scorer: TimedScorer) -> Drain:
    before, started = scorer.seconds, time.perf_counter()
    jobs = run()
    return Drain(worker, jobs, time.perf_counter() - started, scorer.seconds - before)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="images per class of an entry")
    parser.add_argument("--entries", type=int, default=1, help="entries each worker drains per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of one local and one remote drain")
    parser.add_argument("--test-images", type=int, default=200, help="held-out images per class (references)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "remote_transfer.json")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so `finally` stops the server started here
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="arena-remote-bench-") as tmp:
        data_dir, torch_home = Path(tmp) / "data", Path(tmp) / "torch"
        make_competition(data_dir / "competitions" / SLUG, slug=SLUG, train_per_class=args.test_images,
                         test_per_class=args.test_images, images_per_class=args.images, daily_limit=1000)
        install_random_fid_weights(torch_home)
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TORCH_HOME": str(torch_home), "ARENA_DATA_DIR": str(data_dir),
               "ARENA_ADMIN_TOKEN": ADMIN_TOKEN, "ARENA_PORT": str(port), "ARENA_DEVICE": "cpu",
               "ARENA_FID_ENGINE": "torch", "ARENA_UPLOAD_RATE_LIMIT_TEAM": "", "ARENA_UPLOAD_RATE_LIMIT_CLIENT": "",
               "ARENA_TEAM_CREATION_RATE_LIMIT": ""}
        os.environ.update({k: v for k, v in env.items() if k.startswith(("ARENA_", "TORCH_HOME"))})
        log = Path(tmp) / "serve.log"
        with log.open("w") as out:
            server = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--no-worker"], cwd=ROOT, env=env,
                                      stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_healthy(f"http://127.0.0.1:{port}", server, log)
            result = run(f"http://127.0.0.1:{port}", Path(tmp), args)
        finally:
            server.terminate()
            server.wait()
    result |= {"load_average_before": [round(x, 2) for x in load_before],
               "load_average_after": [round(x, 2) for x in os.getloadavg()],
               "machine": f"{os.cpu_count()} cores, {platform.python_version()}, {platform.machine()}"}
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


def run(url: str, tmp: Path, args: argparse.Namespace) -> dict:
    from server.cli.common import load_settings
    from server.db import Database
    from server.jobs.remote_worker import ArenaServer, RemoteWorker
    from server.jobs.worker import Worker, make_scorer
    from server.jobs.worker_tokens import create_worker_token

    settings = load_settings()
    database = Database(settings.resolved_database_url)
    scorer = TimedScorer(make_scorer(settings))
    local = Worker(database=database, settings=settings, scorer=scorer)
    local.run(exit_when_idle=True, prepare=True)  # builds the references (not timed)
    with database.sessionmaker() as session:
        token = create_worker_token(session=session, name="bench")[1]
    remote = RemoteWorker(server=ArenaServer(url, token), settings=settings, cache_dir=tmp / "worker-cache",
                          scorer=scorer)
    uploader = Uploader(url, args.images)

    def drained(worker: str, count: int) -> Drain:
        uploader.upload(count)
        if worker == "local":
            done = drain(worker, lambda: local.run(exit_when_idle=True), scorer)
        else:
            done = drain(worker, lambda: remote.run(max_jobs=count), scorer)
        assert done.jobs == count, (worker, done)
        return done

    try:
        warm_up = [drained("local", 1), drained("remote", 1)]
        rounds = [{d.worker: d for d in (drained(w, args.entries) for w in round_order(index))}
                  for index in range(args.rounds)]
    finally:
        remote.stop.set()
        database.dispose()
    return summarize(args, warm_up, rounds, remote.timings)


def round_order(index: int) -> tuple[str, str]:
    return ("local", "remote") if index % 2 == 0 else ("remote", "local")


def summarize(args: argparse.Namespace, warm_up: list[Drain], rounds: list[dict[str, Drain]],
              timings: list[dict[str, float]]) -> dict:
    ratios = [r["remote"].wall_s / r["local"].wall_s for r in rounds]
    steady = timings[1:]  # the remote worker's jobs after its first (which fetched the reference file)
    median = statistics.median(ratios)
    return {
        "images_per_class": args.images, "entries_per_drain": args.entries, "rounds": args.rounds,
        "test_images_per_class": args.test_images,
        "round_results": [{"first": round_order(i)[0], **{f"{w}_{k}": round(getattr(r[w], k), 2)
                                                          for w in ("local", "remote") for k in ("wall_s", "score_s")},
                           "remote_over_local": round(ratios[i], 3)} for i, r in enumerate(rounds)],
        "remote_over_local_median": round(median, 3),
        "remote_over_local_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "within_target": abs(median - 1) <= TARGET,
        "overhead_per_entry_s": {w: round(statistics.median(r[w].overhead_per_entry_s for r in rounds), 3)
                                 for w in ("local", "remote")},
        "warm_up": [{"worker": d.worker, "wall_s": round(d.wall_s, 2), "score_s": round(d.score_s, 2)}
                    for d in warm_up],
        "first_job_references_s": round(timings[0]["references"], 2),
        "transfer_per_entry_s": round(statistics.median(t["claim"] + t["input"] + t["post"] for t in steady), 3),
        "score_per_entry_s": round(statistics.median(t["score"] for t in steady), 2),
        "jobs": [{k: round(v, 3) for k, v in t.items()} for t in timings],
    }


def print_table(result: dict) -> None:
    numbers = (("local s", 9), ("(scoring)", 11), ("remote s", 10), ("(scoring)", 11), ("remote/local", 14))
    print(f"{'round':<7}{'first':<8}" + "".join(f"{name:>{width}}" for name, width in numbers))
    for index, r in enumerate(result["round_results"]):
        print(f"{index + 1:<7}{r['first']:<8}{r['local_wall_s']:>9.1f}{r['local_score_s']:>11.1f}"
              f"{r['remote_wall_s']:>10.1f}{r['remote_score_s']:>11.1f}{r['remote_over_local']:>14.3f}")
    overhead = result["overhead_per_entry_s"]
    rows = [("per drain", f"{result['entries_per_drain']} x 2 x {result['images_per_class']} images"),
            ("remote / local, median", f"{result['remote_over_local_median']} (range "
             f"{result['remote_over_local_range'][0]}-{result['remote_over_local_range'][1]}; target within "
             f"{TARGET:.0%}: {'met' if result['within_target'] else 'missed'})"),
            ("overhead per entry", f"local {overhead['local']} s, remote {overhead['remote']} s (drain less scoring)"),
            ("first job: reference file", f"{result['first_job_references_s']} s (download, hash, link)"),
            ("transfer per entry", f"{result['transfer_per_entry_s']} s (claim + zip download + result post)"),
            ("scoring per entry", f"{result['score_per_entry_s']} s (remote stage: score and images)"),
            ("load average", f"before {result['load_average_before']}, after {result['load_average_after']}"),
            ("machine", result["machine"])]
    print("\n".join(f"{name:<28}{value}" for name, value in rows))
    for index, job in enumerate(result["jobs"]):
        print(f"  remote job {index + 1}: " + ", ".join(f"{k} {v:.3f} s" for k, v in job.items()))


if __name__ == "__main__":
    raise SystemExit(main())
