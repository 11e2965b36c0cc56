"""Chaos benchmark: a real server (`arena serve --no-worker`) and real `arena worker` processes, broken on purpose.

    python -m bench.chaos                 # 30 uploads, >= 20 worker SIGKILLs mid-scoring, 10 server restarts
    python -m bench.chaos --quick         # 6 uploads, 3 kills, 2 restarts
    python -m bench.chaos --database postgres --models 8   # on PostgreSQL (ARENA_TEST_POSTGRES_URL), 8 of them ONNX
    python -m bench.chaos --remote --kills 10 --cuts 5 --restarts 5   # remote workers (`arena worker --server`)

With --remote the workers are remote workers in a network namespace of their own (a veth pair; root only), that
reach the server only over HTTP; the references are built first by one local worker (remote workers do not build
them). Besides SIGKILLs and server restarts, the namespace's link is cut for 0.5-4 s while workers score and post
(`--cuts`): a cut longer than the lease (ARENA_WORKER_TIMEOUT_SECONDS, 3 s here) loses the job to another worker,
whose result is the one kept; the first worker's late result is refused (409).

Several workers start at once on competitions whose scoring references are not built yet, so they race to build
them (and are SIGKILLed while building); model submissions (`--models`, ONNX generators) are SIGKILLed while their
worker samples them. On PostgreSQL the bench runs in a schema of its own, dropped at the end.

Uploads go in from a thread while the server is SIGKILLed and restarted (an upload cut off by a restart is sent
again, as `arena submit` would be; 409 "duplicate" then means the first try got in). Worker processes are
SIGKILLed while they score, and replaced. Then everything drains. The table and bench/results/chaos.json say:

    lost                  uploaded zips with no submission
    stuck                 submissions still queued or scoring after the drain
    scored twice          submissions that became `scored` twice (from their event history)
    quota wrongly used    quota used beyond one slot per distinct accepted zip (per team, from /api/teams/me)
    valid failed          valid submissions that ended `failed`
    duplicate builds      reference builds created while another build of the same competition was still active
    orphaned processes    sampling processes that outlived their SIGKILLed worker by 5 s, or the bench
    leftover temp folders `arena-sample-*` work folders of dead processes left after the drain
    drain time            from the end of the chaos to an empty queue

Target: all zero but the time (duplicate builds need the database's one-active-build rule, #22 item 5; the bench
counts them either way). To stay affordable on 2 shared CPU cores it scores a tiny competition (2 classes,
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
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from server.db import Database, ReferenceBuild, Submission, SubmissionStatus, WorkerRow
from server.jobs.leases import BUILDS, SUBMISSIONS, JobKind, crashed_workers
from submissions.client import ArenaClient, SubmitError
from submissions.orphans import owner_of, sampling_processes
from submissions.sampling import WORKDIR_PREFIX
from tests.utils import onnx_models, serve
from tests.utils.competition import CLASSES, make_competition, random_images
from tests.utils.inception import install_random_fid_weights

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "chaos-admin-token-0123456789abcdef"
SLUG = "chaos"
TEAMS = 3  # per competition
FINAL = {SubmissionStatus.scored, SubmissionStatus.failed, SubmissionStatus.cancelled}
MAX_WORKER_CRASHES = 4  # the server's default ARENA_MAX_WORKER_CRASHES
KILL_P = 0.7


@dataclass
class Chaos:
    data_dir: Path
    torch_home: Path
    port: int
    database_url: str
    temp_dir: Path  # TMPDIR of every process: the sampling work folders are counted here
    server: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)
    kills: int = 0
    kills_by_phase: dict[str, int] = field(default_factory=lambda: {"scoring": 0, "sampling": 0, "building": 0})
    orphan_suspects: list[int] = field(default_factory=list)  # sampling children of SIGKILLed workers
    restarts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    lab: RemoteLab | None = None  # --remote: the workers' network namespace and tokens
    cuts: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.lab.host_ip if self.lab else '127.0.0.1'}:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ, "PYTHONPATH": str(ROOT), "TORCH_HOME": str(self.torch_home),
            "ARENA_DATA_DIR": str(self.data_dir), "ARENA_ADMIN_TOKEN": ADMIN_TOKEN, "ARENA_DEVICE": "cpu",
            "ARENA_PORT": str(self.port), "ARENA_WORKER_TIMEOUT_SECONDS": "3", "ARENA_WORKER_HEARTBEAT_SECONDS": "0.5",
            "ARENA_WORKER_POLL_SECONDS": "0.2", "ARENA_RETRY_BACKOFF_SECONDS": "0",
            "ARENA_TEAM_CREATION_RATE_LIMIT": "", "ARENA_MAX_WORKER_CRASHES": str(MAX_WORKER_CRASHES),
            "OMP_NUM_THREADS": "1", "ARENA_DATABASE_URL": self.database_url, "TMPDIR": str(self.temp_dir),
            "ARENA_UPLOAD_RATE_LIMIT_TEAM": "", "ARENA_UPLOAD_RATE_LIMIT_CLIENT": "", "ARENA_MODEL_SAMPLE_SETS": "2",
            "ARENA_MODEL_SAMPLING_SECONDS": "600", "ARENA_MODEL_SAMPLING_THREADS": "1",
            "ARENA_MODEL_MEMORY_BYTES": str(2**30), "ARENA_MODEL_DRY_RUN_SECONDS": "300",
            # eager torch: no ONNX export of the network at each cold start (minutes on busy shared cores)
            "ARENA_FID_ENGINE": "torch",
        }

    def remote_env(self) -> dict[str, str]:
        """A remote worker's environment: nothing of the server's (no database, no data dir), its own settings."""
        own = {"ARENA_DEVICE", "ARENA_FID_ENGINE", "ARENA_WORKER_POLL_SECONDS", "OMP_NUM_THREADS", "TMPDIR",
               "PYTHONPATH", "TORCH_HOME"}
        return {k: v for k, v in self.env().items() if not k.startswith("ARENA_") and k != "TORCH_HOME" or k in own}

    def start_server(self) -> None:
        # minutes, not seconds, to start when the cores are shared
        log = self.data_dir / f"server-{self.restarts}.log"
        host = self.lab.host_ip if self.lab else "127.0.0.1"  # remote workers reach it over their veth pair
        self.server, _ = serve.start_server(self.env(), log, "--no-worker", port=self.port, host=host, timeout=300)

    def restart_server(self) -> None:
        assert self.server is not None
        self.server.send_signal(signal.SIGKILL)
        self.server.wait()
        self.restarts += 1
        self.start_server()

    def start_worker(self) -> None:
        log = self.data_dir / f"worker-{len(self.workers)}-{time.monotonic_ns()}.log"
        if self.lab is None:
            self.workers.append(serve.start_arena(self.env(), log, "worker"))
            return
        token = self.lab.tokens[len(self.workers) % len(self.lab.tokens)]
        command = ["ip", "netns", "exec", self.lab.namespace, sys.executable, "-m", "server.cli", "worker",
                   "--server", self.url, "--token", token, "--cache-dir", str(self.lab.cache)]
        with log.open("w") as out:
            self.workers.append(subprocess.Popen(command, cwd=ROOT, env=self.remote_env(), stdout=out,
                                                 stderr=subprocess.STDOUT))

    def cut_link(self, seconds: float) -> None:
        """The remote workers' network is gone for `seconds` (their end of the veth pair stays up)."""
        assert self.lab is not None
        subprocess.run(["ip", "link", "set", self.lab.host_end, "down"], check=True)
        try:
            time.sleep(seconds)
        finally:
            subprocess.run(["ip", "link", "set", self.lab.host_end, "up"], check=True)
            subprocess.run(["ip", "addr", "replace", f"{self.lab.host_ip}/30", "dev", self.lab.host_end], check=True)
        self.cuts += 1

    def kill_worker(self, victim: subprocess.Popen, phase: str) -> None:
        """SIGKILL a worker, remembering the sampling processes it had (they must die with it)."""
        children = [p.pid for p in sampling_processes() if p.parent == victim.pid]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.kills += 1
        self.kills_by_phase[phase] += 1
        self.orphan_suspects += children

    def stop_all(self) -> None:
        for process in [*self.workers, *([self.server] if self.server else [])]:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()


@dataclass
class RemoteLab:
    """A network namespace for remote workers, joined to the host by a veth pair on 10.x.y.0/30."""

    namespace: str
    host_end: str
    host_ip: str
    cache: Path
    tokens: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, cache: Path) -> RemoteLab:
        tag = f"{os.getpid() % 100000:05d}"
        net = f"10.{random.randint(128, 191)}.{random.randint(0, 255)}"
        lab = cls(namespace=f"arena-chaos-{tag}", host_end=f"ach{tag}", host_ip=f"{net}.1", cache=cache)
        inner = f"acn{tag}"
        for command in (["netns", "add", lab.namespace], ["link", "add", lab.host_end, "type", "veth", "peer", "name",
                        inner], ["link", "set", inner, "netns", lab.namespace],
                        ["addr", "add", f"{lab.host_ip}/30", "dev", lab.host_end], ["link", "set", lab.host_end, "up"],
                        ["-n", lab.namespace, "addr", "add", f"{net}.2/30", "dev", inner],
                        ["-n", lab.namespace, "link", "set", inner, "up"], ["-n", lab.namespace, "link", "set", "lo",
                                                                            "up"]):
            subprocess.run(["ip", *command], check=True, capture_output=True)
        return lab

    def remove(self) -> None:
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True)
        subprocess.run(["ip", "link", "del", self.host_end], capture_output=True)


def build_references_locally(chaos: Chaos) -> None:
    """One local worker builds every competition's references (remote workers only score), then exits."""
    subprocess.run([sys.executable, "-m", "server.cli", "worker", "--exit-when-idle"], cwd=ROOT, env=chaos.env(),
                   check=True, capture_output=True, timeout=900)


def worker_tokens(chaos: Chaos, count: int) -> list[str]:
    tokens = []
    for index in range(count):
        output = subprocess.run([sys.executable, "-m", "server.cli", "admin", "workers", "create", f"lab-{index}"],
                                cwd=ROOT, env=chaos.env(), check=True, capture_output=True, text=True).stdout
        tokens.append(output.split("(shown once): ")[1].split()[0])
    return tokens


def cut_links_while_scoring(chaos: Chaos, database: Database, cuts: int, uploading: threading.Thread) -> None:
    """Cut the namespace's link `cuts` times, each time a remote worker holds a job (scoring, then posting)."""
    deadline = time.monotonic() + 300 + 60 * cuts
    while chaos.cuts < cuts and time.monotonic() < deadline:
        if not held_jobs(database, SUBMISSIONS):
            if not uploading.is_alive() and queue_empty(database):
                return
            time.sleep(0.05)
            continue
        time.sleep(random.uniform(0.0, 1.0))  # somewhere in the job: the download, the scoring or the post
        with chaos.lock:
            chaos.cut_link(random.uniform(0.5, 4.0))


def submission_zips(count: int) -> list[bytes]:
    from submissions import pack

    zips = []
    for seed in range(count):
        buffer = io.BytesIO()
        pack({cls: random_images(2, 64, seed=seed * 10 + i, brightness=90 + 60 * i)
              for i, cls in enumerate(("with_mask", "without_mask"))}, buffer, ["with_mask", "without_mask"])
        zips.append(buffer.getvalue())
    return zips


def model_files(count: int, folder: Path) -> list[bytes]:
    """Small valid ONNX generators, each a distinct file (a metadata entry tells them apart)."""
    models = []
    for index in range(count):
        path = onnx_models.generator(folder / f"m{index}.onnx", metadata={
            "latent_size": str(onnx_models.LATENT), "classes": json.dumps(CLASSES), "variant": str(index)})
        models.append(path.read_bytes())
    return models


def slugs(competitions: int) -> list[str]:
    return [SLUG] + [f"{SLUG}-{i}" for i in range(2, competitions + 1)]


def create_teams(chaos: Chaos, competitions: list[str]) -> list[tuple[str, str]]:
    """(competition, token) of TEAMS teams per competition."""
    organizer = ArenaClient(chaos.url, ADMIN_TOKEN, timeout=30)
    return [(slug, organizer.admin_create_team(slug, f"team-{i}", [], is_baseline=False)["token"])
            for slug in competitions for i in range(TEAMS)]


def upload_all(chaos: Chaos, files: list[bytes], teams: list[tuple[str, str]], outcome: dict[str, int]) -> None:
    """Send every file until the server answers 202 (accepted) or 409 (an earlier, cut-off try got in)."""
    for index, data in enumerate(files):
        slug, token = teams[index % len(teams)]
        team = ArenaClient(chaos.url, token, timeout=300)
        name = "s.zip" if data[:2] == b"PK" else "m.onnx"
        while True:
            try:
                team.upload_bytes(data, name, slug)
                outcome["202"] += 1
                break
            except SubmitError as refused:
                if refused.status_code == 409:
                    outcome["409"] += 1
                    break
                if refused.status_code is not None and refused.status_code < 500:
                    raise RuntimeError(f"upload {index}: {refused}") from refused
                outcome["retried" if refused.status_code is None else "5xx"] += 1  # None: the server was down
                time.sleep(0.3)
        time.sleep(random.uniform(0.0, 0.4))


def restart_during_uploads(chaos: Chaos, restarts: int, uploading: threading.Thread) -> None:
    while chaos.restarts < restarts:
        time.sleep(random.uniform(0.3, 1.2) if uploading.is_alive() else 0.3)
        chaos.restart_server()


def held_jobs(database: Database, kind: JobKind) -> dict[int, tuple[int, int]]:
    """Our workers' jobs of this kind right now: worker pid -> (job id, workers it has crashed so far)."""
    with database.sessionmaker() as session:
        held = session.scalars(select(kind.table).where(kind.table.status == kind.running)).all()
        return {worker_pid(session, job.worker_id): (job.id, len(crashed_workers(job))) for job in held
                if job.worker_id}


def worker_pid(session: Any, worker_id: str) -> int:
    """The process id a worker registered with (a remote worker's too: its namespace shares the host's pids)."""
    worker = session.get(WorkerRow, worker_id)
    return worker.pid if worker is not None else -1


def queue_empty(database: Database) -> bool:
    with database.sessionmaker() as session:
        waiting = session.scalar(select(Submission.id).where(Submission.status.notin_(list(FINAL))).limit(1))
        building = session.scalar(select(ReferenceBuild.id).where(ReferenceBuild.status.in_(["queued", "building"]))
                                  .limit(1))
        return waiting is None and building is None


def kill_workers_mid_job(chaos: Chaos, database: Database, kills: int, workers: int,
                         uploading: threading.Thread) -> None:
    """SIGKILL workers while they work, at random: each job a worker claims (a submission or a reference build) is
    killed with probability KILL_P, except a job one crash short of the poison-pill limit (a valid submission must
    survive the chaos; the poison pill itself is tested in tests/server/jobs/test_queue.py). A model submission's worker
    is killed once its sampling process runs. Reference builds take at most a quarter of the kills."""
    judged: set[tuple[int, str, int]] = set()  # (worker pid, kind, id): one coin toss per claim
    deadline = time.monotonic() + 300 + 120 * kills  # a worker start (torch, references) takes long on busy cores
    while chaos.kills < kills and time.monotonic() < deadline:
        chaos.workers = [w for w in chaos.workers if w.poll() is None]
        while len(chaos.workers) < workers:
            chaos.start_worker()
        jobs = {("submission", pid): job for pid, job in held_jobs(database, SUBMISSIONS).items()}
        jobs |= {("build", pid): job for pid, job in held_jobs(database, BUILDS).items()}
        fresh = [(w, kind, jobs[kind, w.pid]) for w in chaos.workers for kind in ("submission", "build")
                 if (kind, w.pid) in jobs and (w.pid, kind, jobs[kind, w.pid][0]) not in judged]
        if not fresh:
            if not uploading.is_alive() and queue_empty(database):
                break  # nothing left to kill a worker over
            time.sleep(0.05)
            continue
        victim, kind, (job_id, crashes) = random.choice(fresh)
        judged.add((victim.pid, kind, job_id))
        builds_done = kind == "build" and chaos.kills_by_phase["building"] >= max(1, kills // 4)  # leave the rest
        if builds_done or crashes + 1 >= MAX_WORKER_CRASHES or random.random() > KILL_P:
            continue
        model = kind == "submission" and is_model_job(chaos, database, job_id)
        phase = "building" if kind == "build" else wait_for_sampling(victim, 10.0) if model else "scoring"
        if phase == "scoring":
            time.sleep(random.uniform(0.0, 0.5))  # somewhere inside the job
        still = held_jobs(database, BUILDS if kind == "build" else SUBMISSIONS).get(victim.pid, (None,))[0]
        if still == job_id and victim.poll() is None:
            chaos.kill_worker(victim, phase)


def is_model_job(chaos: Chaos, database: Database, submission_id: int) -> bool:
    from server.storage import model_path

    with database.sessionmaker() as session:
        return model_path(chaos.data_dir, session.get_one(Submission, submission_id).sha256).exists()


def wait_for_sampling(victim: subprocess.Popen, seconds: float) -> str:
    """"sampling" once the worker runs a model's sampling process (within `seconds`), else "scoring"."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(p.parent == victim.pid for p in sampling_processes()):
            return "sampling"
        time.sleep(0.02)
    return "scoring"


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


def report(chaos: Chaos, database: Database, files: list[bytes], teams: list[tuple[str, str]]) -> dict[str, Any]:
    import hashlib

    hashes = {hashlib.sha256(f).hexdigest() for f in files}
    with database.sessionmaker() as session:
        rows = session.scalars(select(Submission)).all()
        stored = {s.sha256 for s in rows}
        # Transitions into `scored` (a refused late result is noted as scored -> scored, which is no second score).
        scored_twice = sum(1 for s in rows if sum(e.to_status == "scored" != e.from_status for e in s.events) > 1)
        stuck = sum(1 for s in rows if s.status not in FINAL)
        failed = [(s.id, s.error) for s in rows if s.status == SubmissionStatus.failed]
        accepted_per_team: dict[int, set[str]] = {}
        for s in rows:
            if s.status in (SubmissionStatus.queued, SubmissionStatus.scoring, SubmissionStatus.scored):
                accepted_per_team.setdefault(s.team_id, set()).add(s.sha256)
        builds = session.scalars(select(ReferenceBuild)).all()
    quota_wrong = 0
    for _, token in teams:
        me = ArenaClient(chaos.url, token, timeout=30).me()
        quota_wrong += abs(me["quota"]["used"] - len(accepted_per_team.get(me["id"], set())))
    return {"lost": len(hashes - stored), "stuck": stuck, "scored_twice": scored_twice,
            "quota_wrongly_used": quota_wrong, "valid_failed": len(failed), "failures": failed,
            "duplicate_builds": duplicate_builds(builds), "builds": len(builds),
            "orphaned_processes": sum(1 for pid in chaos.orphan_suspects if running(pid)),
            "leftover_temp_folders": leftover_folders(chaos.temp_dir), "submissions": len(rows),
            "models": sum(1 for f in files if f[:2] != b"PK")}


def duplicate_builds(builds: Sequence[ReferenceBuild]) -> int:
    """Builds created while another build of the same competition was still queued or building."""
    def overlaps(build: ReferenceBuild, other: ReferenceBuild) -> bool:
        return (other.id != build.id and other.competition_id == build.competition_id
                and other.created_at <= build.created_at
                and (other.finished_at is None or build.created_at < other.finished_at))

    return sum(1 for build in builds if any(overlaps(build, other) for other in builds))


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def leftover_folders(temp_dir: Path) -> int:
    """Sampling work folders whose owner is dead (the next worker start must have removed them)."""
    return sum(1 for folder in temp_dir.glob(f"{WORKDIR_PREFIX}*") if not running(owner_of(folder) or 0))


def with_postgres_schema(base_url: str) -> tuple[str, Callable[[], None]]:
    """A schema of the bench's own on the PostgreSQL server of `base_url`: (its URL, drop it)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    schema = f"arena_chaos_{os.getpid()}"
    engine = create_engine(base_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with engine.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()

    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=30, help="uploads in all, models included")
    parser.add_argument("--models", type=int, default=0, help="how many of the uploads are ONNX models")
    parser.add_argument("--competitions", type=int, default=1, help="competitions (each one reference build)")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="workers, all started at once")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get("ARENA_TEST_POSTGRES_URL", ""),
                        help="the server for --database postgres (default: ARENA_TEST_POSTGRES_URL)")
    parser.add_argument("--quick", action="store_true", help="6 uploads, 3 kills, 2 restarts")
    parser.add_argument("--remote", action="store_true", help="remote workers in a network namespace (root)")
    parser.add_argument("--cuts", type=int, default=5, help="--remote: cuts of the namespace's link")
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "chaos.json")
    args = parser.parse_args()
    if args.quick:
        args.submissions, args.kills, args.restarts = 6, 3, 2
    if args.database == "postgres" and not args.postgres_url:
        parser.error("--database postgres needs --postgres-url or ARENA_TEST_POSTGRES_URL")
    random.seed(12)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so `finally` stops every process started here
    drop_schema: Callable[[], None] | None = None
    with tempfile.TemporaryDirectory(prefix="arena-chaos-") as tmp:
        data_dir, torch_home, temp_dir = Path(tmp) / "data", Path(tmp) / "torch", Path(tmp) / "tmp"
        temp_dir.mkdir()
        competitions = slugs(args.competitions)
        for slug in competitions:
            make_competition(data_dir / "competitions" / slug, slug=slug, train_per_class=12, test_per_class=12,
                             images_per_class=2, daily_limit=1000, submission_kinds="both")
        install_random_fid_weights(torch_home)
        database_url = f"sqlite:///{data_dir / 'arena.db'}"
        if args.database == "postgres":
            database_url, drop_schema = with_postgres_schema(args.postgres_url)
        chaos = Chaos(data_dir=data_dir, torch_home=torch_home, port=serve.free_port(), database_url=database_url,
                      temp_dir=temp_dir, lab=RemoteLab.create(Path(tmp) / "lab-cache") if args.remote else None)
        files = submission_zips(args.submissions - args.models) + model_files(args.models, Path(tmp))
        random.shuffle(files)
        started = time.monotonic()
        try:
            chaos.start_server()
            database = Database(database_url)
            teams = create_teams(chaos, competitions)
            if chaos.lab is not None:
                build_references_locally(chaos)
                chaos.lab.tokens = worker_tokens(chaos, args.workers)
            # Every worker at once, on references nobody has built: they race to build them (duplicate builds).
            for _ in range(args.workers):
                chaos.start_worker()
            outcome = {"202": 0, "409": 0, "retried": 0, "5xx": 0}
            uploading = threading.Thread(target=upload_all, args=(chaos, files, teams, outcome))
            uploading.start()
            restarting = threading.Thread(target=restart_during_uploads, args=(chaos, args.restarts, uploading))
            restarting.start()
            cutting = threading.Thread(target=cut_links_while_scoring,
                                       args=(chaos, database, args.cuts if chaos.lab else 0, uploading))
            cutting.start()
            kill_workers_mid_job(chaos, database, args.kills, args.workers, uploading)
            uploading.join()
            restarting.join()
            cutting.join()
            chaos_s = time.monotonic() - started
            drain_s = drain(chaos, database, args.workers, args.drain_timeout)
            time.sleep(5)  # the orphan rule: a SIGKILLed worker's sampler must be gone within seconds
            result = report(chaos, database, files, teams)
            database.dispose()
        finally:
            chaos.stop_all()
            if chaos.lab is not None:
                chaos.lab.remove()
            if drop_schema is not None:
                drop_schema()
        time.sleep(2)
        left_running = [p.pid for p in sampling_processes() if Path(p.out).is_relative_to(temp_dir)]
    result = {**result, "orphaned_processes": int(result["orphaned_processes"]) + len(left_running),
              "drain_s": round(drain_s, 1), "chaos_s": round(chaos_s, 1), "worker_kills": chaos.kills,
              "kills_by_phase": chaos.kills_by_phase, "server_restarts": chaos.restarts, "uploads": outcome,
              "link_cuts": chaos.cuts, "remote": args.remote,
              "args": {k: str(v) for k, v in vars(args).items() if k != "postgres_url"},
              "machine": f"{os.cpu_count()} cores, {platform.python_version()}, {platform.machine()}"}
    rows = [("lost", result["lost"]), ("stuck", result["stuck"]), ("scored twice", result["scored_twice"]),
            ("quota wrongly used", result["quota_wrongly_used"]), ("valid failed", result["valid_failed"]),
            ("duplicate builds", f"{result['duplicate_builds']} (of {result['builds']} builds)"),
            ("orphaned processes", result["orphaned_processes"]),
            ("leftover temp folders", result["leftover_temp_folders"]), ("drain time", f"{drain_s:.1f} s"),
            ("worker SIGKILLs", f"{chaos.kills} {chaos.kills_by_phase}"), ("server restarts", chaos.restarts),
            ("link cuts", chaos.cuts), ("workers", "remote (network namespace)" if args.remote else "local"),
            ("uploads", f"{outcome} ({result['models']} models)"), ("database", args.database)]
    print("\n".join(f"{name:<24}{value}" for name, value in rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    zero = ("lost", "stuck", "scored_twice", "quota_wrongly_used", "valid_failed", "duplicate_builds",
            "orphaned_processes", "leftover_temp_folders")
    return 1 if sum(int(result[k]) for k in zero) else 0


if __name__ == "__main__":
    raise SystemExit(main())
