"""Chaos benchmark: a real server (`arena serve --no-worker`) and real `arena worker` processes, broken on purpose.

    python -m bench.chaos                 # 30 uploads, >= 20 worker SIGKILLs mid-scoring, 10 server restarts
    python -m bench.chaos --quick         # 6 uploads, 3 kills, 2 restarts

Uploads go in from a thread while the server is SIGKILLed and restarted (an upload cut off by a restart is sent
again, as `arena submit` would be; 409 "duplicate" then means the first try got in). Worker processes are
SIGKILLed while they score, and replaced. Then everything drains. The table and bench/results/chaos.json say:

    lost                  uploaded zips with no submission
    stuck                 submissions still queued or scoring after the drain
    scored twice          submissions with two `scored` events (from their event history)
    quota wrongly used    quota used beyond one slot per distinct accepted zip (per team, from /api/teams/me)
    valid failed          valid submissions that ended `failed`
    drain time            from the end of the chaos to an empty queue

Target: all zero but the time. To stay affordable on 2 shared CPU cores it scores a tiny competition (2 classes,
2 images per class, 4 test images per class) with randomly initialized FID weights, as the unit tests do: the
queue, the workers and the server are what is tested here, not the network.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import select

from server.db import Database, Submission, SubmissionStatus
from server.queue import crashed_workers
from tests.utils.competition import make_competition, random_images
from tests.utils.inception import install_random_fid_weights

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "chaos-admin-token-0123456789abcdef"
SLUG = "chaos"
TEAMS = 3
FINAL = {SubmissionStatus.scored, SubmissionStatus.failed, SubmissionStatus.cancelled}
MAX_WORKER_CRASHES = 4  # the server's default ARENA_MAX_WORKER_CRASHES
KILL_P = 0.7


@dataclass
class Chaos:
    data_dir: Path
    torch_home: Path
    port: int
    server: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)
    kills: int = 0
    restarts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ, "PYTHONPATH": str(ROOT), "TORCH_HOME": str(self.torch_home),
            "ARENA_DATA_DIR": str(self.data_dir), "ARENA_ADMIN_TOKEN": ADMIN_TOKEN, "ARENA_DEVICE": "cpu",
            "ARENA_PORT": str(self.port), "ARENA_WORKER_TIMEOUT_SECONDS": "3", "ARENA_WORKER_HEARTBEAT_SECONDS": "0.5",
            "ARENA_WORKER_POLL_SECONDS": "0.2", "ARENA_RETRY_BACKOFF_SECONDS": "0",
            "ARENA_TEAM_CREATION_RATE_LIMIT": "", "ARENA_MAX_WORKER_CRASHES": str(MAX_WORKER_CRASHES),
            "OMP_NUM_THREADS": "1",
        }

    def start_server(self) -> None:
        self.server = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--no-worker"], cwd=ROOT,
                                       env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300  # minutes, not seconds, when the cores are shared
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("the server did not start within 300 s")

    def restart_server(self) -> None:
        assert self.server is not None
        self.server.send_signal(signal.SIGKILL)
        self.server.wait()
        self.restarts += 1
        self.start_server()

    def start_worker(self) -> None:
        log = (self.data_dir / f"worker-{len(self.workers)}-{time.monotonic_ns()}.log").open("w")
        self.workers.append(subprocess.Popen([sys.executable, "-m", "server.cli", "worker"], cwd=ROOT,
                                             env=self.env(), stdout=log, stderr=subprocess.STDOUT))

    def stop_all(self) -> None:
        for process in [*self.workers, *([self.server] if self.server else [])]:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def submission_zips(count: int) -> list[bytes]:
    from submissions import pack

    zips = []
    for seed in range(count):
        buffer = io.BytesIO()
        pack({cls: random_images(2, 64, seed=seed * 10 + i, brightness=90 + 60 * i)
              for i, cls in enumerate(("with_mask", "without_mask"))}, buffer, ["with_mask", "without_mask"])
        zips.append(buffer.getvalue())
    return zips


def create_teams(chaos: Chaos) -> list[str]:
    tokens = []
    for i in range(TEAMS):
        response = httpx.post(f"{chaos.url}/api/admin/competitions/{SLUG}/teams", json={"name": f"team-{i}"},
                              headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)
        response.raise_for_status()
        tokens.append(response.json()["token"])
    return tokens


def upload_all(chaos: Chaos, zips: list[bytes], tokens: list[str], outcome: dict[str, int]) -> None:
    """Send every zip until the server answers 202 (accepted) or 409 (an earlier, cut-off try got in)."""
    for index, data in enumerate(zips):
        token = tokens[index % len(tokens)]
        while True:
            try:
                response = httpx.post(f"{chaos.url}/api/competitions/{SLUG}/submissions", timeout=30,
                                      headers={"Authorization": f"Bearer {token}"},
                                      files={"file": ("s.zip", data, "application/zip")})
            except httpx.HTTPError:
                outcome["retried"] += 1
                time.sleep(0.3)
                continue
            if response.status_code in (202, 409):
                outcome[str(response.status_code)] += 1
                break
            if response.status_code >= 500:
                outcome["5xx"] += 1
                time.sleep(0.3)
                continue
            raise RuntimeError(f"upload {index}: {response.status_code} {response.text}")
        time.sleep(random.uniform(0.0, 0.4))


def restart_during_uploads(chaos: Chaos, restarts: int, uploading: threading.Thread) -> None:
    while chaos.restarts < restarts:
        time.sleep(random.uniform(0.3, 1.2) if uploading.is_alive() else 0.3)
        chaos.restart_server()


def scoring_jobs(database: Database) -> dict[int, tuple[int, int]]:
    """Our workers' jobs right now: worker pid -> (submission id, workers it has crashed so far)."""
    with database.sessionmaker() as session:
        held = session.scalars(select(Submission).where(Submission.status == SubmissionStatus.scoring)).all()
        # Worker ids are host-pid-random.
        return {int(s.worker_id.split("-")[-2]): (s.id, len(crashed_workers(s))) for s in held if s.worker_id}


def queue_empty(database: Database) -> bool:
    with database.sessionmaker() as session:
        return session.scalar(select(Submission.id).where(Submission.status.notin_(list(FINAL))).limit(1)) is None


def kill_workers_mid_scoring(chaos: Chaos, database: Database, kills: int, workers: int,
                             uploading: threading.Thread) -> None:
    """SIGKILL workers while they score, at random: each job a worker claims is killed with probability KILL_P,
    except a job one crash short of the poison-pill limit (a valid submission must survive the chaos; the poison
    pill itself is tested in tests/server/test_queue.py)."""
    judged: set[tuple[int, int]] = set()  # (worker pid, submission id): one coin toss per claim
    deadline = time.monotonic() + 300 + 120 * kills  # a worker start (torch, references) takes long on busy cores
    while chaos.kills < kills and time.monotonic() < deadline:
        chaos.workers = [w for w in chaos.workers if w.poll() is None]
        while len(chaos.workers) < workers:
            chaos.start_worker()
        jobs = scoring_jobs(database)
        fresh = [(w, jobs[w.pid]) for w in chaos.workers if w.pid in jobs and (w.pid, jobs[w.pid][0]) not in judged]
        if not fresh:
            if not uploading.is_alive() and queue_empty(database):
                break  # nothing left to kill a worker over
            time.sleep(0.05)
            continue
        victim, (submission_id, crashes) = random.choice(fresh)
        judged.add((victim.pid, submission_id))
        if crashes + 1 >= MAX_WORKER_CRASHES or random.random() > KILL_P:
            continue
        time.sleep(random.uniform(0.0, 0.5))  # somewhere inside the job
        if scoring_jobs(database).get(victim.pid, (None,))[0] == submission_id:
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            chaos.kills += 1


def drain(chaos: Chaos, database: Database, workers: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        chaos.workers = [w for w in chaos.workers if w.poll() is None]
        while len(chaos.workers) < workers:
            chaos.start_worker()
        if queue_empty(database):
            break
        time.sleep(0.2)
    return time.monotonic() - started


def report(chaos: Chaos, database: Database, zips: list[bytes], tokens: list[str]) -> dict[str, object]:
    import hashlib

    hashes = {hashlib.sha256(z).hexdigest() for z in zips}
    with database.sessionmaker() as session:
        rows = session.scalars(select(Submission)).all()
        stored = {s.sha256 for s in rows}
        scored_twice = sum(1 for s in rows if [e.to_status for e in s.events].count("scored") > 1)
        stuck = sum(1 for s in rows if s.status not in FINAL)
        failed = [(s.id, s.error) for s in rows if s.status == SubmissionStatus.failed]
        accepted_per_team: dict[int, set[str]] = {}
        for s in rows:
            if s.status in (SubmissionStatus.queued, SubmissionStatus.scoring, SubmissionStatus.scored):
                accepted_per_team.setdefault(s.team_id, set()).add(s.sha256)
    quota_wrong = 0
    for token in tokens:
        me = httpx.get(f"{chaos.url}/api/teams/me", headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
        quota_wrong += abs(me["quota"]["used"] - len(accepted_per_team.get(me["id"], set())))
    return {"lost": len(hashes - stored), "stuck": stuck, "scored_twice": scored_twice,
            "quota_wrongly_used": quota_wrong, "valid_failed": len(failed), "failures": failed,
            "submissions": len(rows)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=30)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="6 uploads, 3 kills, 2 restarts")
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "chaos.json")
    args = parser.parse_args()
    if args.quick:
        args.submissions, args.kills, args.restarts = 6, 3, 2
    random.seed(12)
    with tempfile.TemporaryDirectory(prefix="arena-chaos-") as tmp:
        data_dir, torch_home = Path(tmp) / "data", Path(tmp) / "torch"
        make_competition(data_dir / "competitions" / SLUG, slug=SLUG, train_per_class=4, test_per_class=4,
                         images_per_class=2, daily_limit=1000)
        install_random_fid_weights(torch_home)
        chaos = Chaos(data_dir=data_dir, torch_home=torch_home, port=free_port())
        zips = submission_zips(args.submissions)
        started = time.monotonic()
        try:
            chaos.start_server()
            # Build the scoring references once (a worker on an empty queue prepares them and exits), so the chaos
            # workers only load them.
            subprocess.run([sys.executable, "-m", "server.cli", "worker", "--exit-when-idle"], cwd=ROOT,
                           env=chaos.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            database = Database(f"sqlite:///{data_dir / 'arena.db'}")
            tokens = create_teams(chaos)
            outcome = {"202": 0, "409": 0, "retried": 0, "5xx": 0}
            uploading = threading.Thread(target=upload_all, args=(chaos, zips, tokens, outcome))
            uploading.start()
            restarting = threading.Thread(target=restart_during_uploads, args=(chaos, args.restarts, uploading))
            restarting.start()
            kill_workers_mid_scoring(chaos, database, args.kills, args.workers, uploading)
            uploading.join()
            restarting.join()
            chaos_s = time.monotonic() - started
            drain_s = drain(chaos, database, args.workers, args.drain_timeout)
            result = report(chaos, database, zips, tokens)
        finally:
            chaos.stop_all()
    result = {**result, "drain_s": round(drain_s, 1), "chaos_s": round(chaos_s, 1), "worker_kills": chaos.kills,
              "server_restarts": chaos.restarts, "uploads": outcome, "args": {k: str(v) for k, v in vars(args).items()},
              "machine": f"{os.cpu_count()} cores, {platform.python_version()}, {platform.machine()}"}
    print(f"{'lost':<22}{result['lost']}\n{'stuck':<22}{result['stuck']}\n{'scored twice':<22}{result['scored_twice']}"
          f"\n{'quota wrongly used':<22}{result['quota_wrongly_used']}\n{'valid failed':<22}{result['valid_failed']}"
          f"\n{'drain time':<22}{drain_s:.1f} s\n{'worker SIGKILLs':<22}{chaos.kills}"
          f"\n{'server restarts':<22}{chaos.restarts}\n{'uploads':<22}{outcome}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    bad = sum(int(result[k]) for k in ("lost", "stuck", "scored_twice", "quota_wrongly_used", "valid_failed"))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
