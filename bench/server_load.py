"""Server load benchmark: leaderboard latency under concurrent readers, concurrent uploads, one worker's drain rate.

    python -m bench.server_load                                  # the issue's targets (see defaults below)
    python -m bench.server_load --submissions 2000 --drain 0     # quicker, web tier only

1. Seeds SQLite with --submissions scored submissions of --teams teams in a fresh data dir.
2. Starts `arena serve --no-worker` on a free loopback port; --readers concurrent clients each fetch the public
   leaderboard --requests-per-reader times, back to back on keep-alive connections (target: p99 <= 50 ms at 50
   readers with 10,000 submissions). Three phases: plain JSON; gzip (as browsers ask); plain JSON while a new score
   lands every --score-every seconds (each one makes the server recompute the board).
3. --uploads concurrent uploads of valid zips (--images-per-class per class) by as many teams; checks every accepted
   one is queued afterwards.
4. One in-process worker (the real Scorer, settings' device and weights) scores --drain of them: submissions/minute.
Prints a table and writes bench/results/server_load-<time>.json. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image
from sqlalchemy import select

from server.competition import write_config
from server.config import Settings
from server.db import (
    Database,
    Submission,
    SubmissionStatus,
    bump_board_version,
    utcnow,
)
from server.db.crud import create_team, register_competition

REPO = Path(__file__).resolve().parents[1]
SLUG = "bench"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--submissions", type=int, default=10_000)
    parser.add_argument("--teams", type=int, default=250)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--requests-per-reader", type=int, default=300)
    parser.add_argument("--score-every", type=float, default=1.0, help="Seconds between scores in phase 3.")
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--images-per-class", type=int, default=1000)
    parser.add_argument("--drain", type=int, default=2, help="Submissions the worker scores (0: skip).")
    parser.add_argument("--data-dir", type=Path, default=None, help="Default: a temporary directory.")
    return parser.parse_args()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def make_competition(data_dir: Path, images_per_class: int) -> Path:
    from server.data import make_demo_competition

    competition = make_demo_competition(data_dir / "competitions" / SLUG, slug=SLUG, train_per_class=100,
                                        test_per_class=100, images_per_class=images_per_class, progress=True)
    # Many uploads per team in one day: the quota is not what this benchmark measures.
    write_config(competition.root, competition.config.model_copy(update={"daily_limit": 1000}))
    return competition.root


def seed_scored(database: Database, root: Path, submissions: int, teams: int) -> float:
    """Insert scored submissions spread over teams (one bulk insert); returns seconds."""
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    with database.session() as session:
        row = register_competition(session=session, root=root)
        team_ids = [create_team(session=session, competition=row, name=f"team-{i:04d}")[0].id for i in range(teams)]
        now = utcnow()
        rows = []
        for i in range(submissions):
            public, private = rng.uniform(50, 400, size=2)
            per_class = {cls: {"fid_public": public / 2, "fid_private": private / 2, "penalized": False}
                         for cls in ("with_mask", "without_mask")}
            rows.append({
                "competition_id": row.id, "team_id": team_ids[i % teams], "sha256": uuid.uuid4().hex * 2,
                "size_bytes": 1, "message": "", "status": SubmissionStatus.scored, "attempts": 1,
                "created_at": now, "updated_at": now, "score_public": public, "score_private": private,
                "score_all": (public + private) / 2, "penalized": False, "class_scores": per_class,
                "selected_final": False,
            })
        session.execute(Submission.__table__.insert(), rows)
        bump_board_version(session, row.id)
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(data_dir: Path, port: int, admin_token: str) -> subprocess.Popen:
    env = {**os.environ, "ARENA_DATA_DIR": str(data_dir), "ARENA_ADMIN_TOKEN": admin_token}
    process = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--no-worker", "--port", str(port)],
                               cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
        if process.poll() is not None:
            raise RuntimeError(f"arena serve exited: {process.stderr.read() if process.stderr else ''}")
    process.kill()
    raise RuntimeError("arena serve did not answer /healthz within 120 s")


async def get_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One keep-alive HTTP/1.1 GET; returns the status. A raw client: httpx costs more CPU than the server does."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def read_leaderboard(port: int, readers: int, per_reader: int, extra_headers: str = "") -> dict[str, Any]:
    path = f"/api/competitions/{SLUG}/leaderboard"
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_headers}Connection: keep-alive\r\n\r\n".encode()
    first = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=120)
    latencies: list[float] = []
    errors = 0

    async def reader_task() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(per_reader):
                t0 = time.perf_counter()
                status = await get_once(reader, writer, request)
                latencies.append(time.perf_counter() - t0)
                errors += status != 200
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(reader_task() for _ in range(readers)))
    wall = time.perf_counter() - started
    return {"entries": len(first.json()["entries"]), "response_kb": len(first.content) / 1000,
            "requests": len(latencies), "errors": errors, "wall_s": wall,
            "p50_ms": percentile(latencies, 50) * 1000, "p95_ms": percentile(latencies, 95) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000, "max_ms": max(latencies) * 1000,
            "requests_per_second": len(latencies) / wall}


def first_request_ms(port: int) -> float:
    """The first read after start: computes the board."""
    started = time.perf_counter()
    httpx.get(f"http://127.0.0.1:{port}/api/competitions/{SLUG}/leaderboard", timeout=120).raise_for_status()
    return (time.perf_counter() - started) * 1000


class ScoresLanding:
    """A thread that adds one scored submission every `every` seconds, as a worker would (phase 3)."""

    def __init__(self, database: Database, every: float) -> None:
        self.database, self.every, self.count = database, every, 0
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ScoresLanding:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        if self.error is not None:
            raise RuntimeError("adding scores during the reads failed") from self.error

    def _run(self) -> None:
        try:
            self._add_scores()
        except BaseException as error:  # reported by __exit__ in the main thread
            self.error = error

    def _add_scores(self) -> None:
        while not self.stop.wait(self.every):
            with self.database.session() as session:
                competition_id, team_id = session.execute(select(Submission.competition_id, Submission.team_id)
                                                          .limit(1)).one()
                session.add(Submission(competition_id=competition_id, team_id=team_id, sha256=uuid.uuid4().hex * 2,
                                       size_bytes=1, message="", status=SubmissionStatus.scored, attempts=1,
                                       score_public=60.0, score_private=60.0, score_all=60.0, penalized=False,
                                       class_scores={}, selected_final=False, created_at=utcnow(),
                                       updated_at=utcnow()))
                bump_board_version(session, competition_id)
            self.count += 1


def read_phases(port: int, database: Database, args: argparse.Namespace) -> dict[str, Any]:
    phases: dict[str, Any] = {"cold_first_request_ms": first_request_ms(port)}
    phases["plain"] = asyncio.run(read_leaderboard(port, args.readers, args.requests_per_reader))
    phases["gzip"] = asyncio.run(read_leaderboard(port, args.readers, args.requests_per_reader,
                                                  "Accept-Encoding: gzip\r\n"))
    with ScoresLanding(database, args.score_every) as landing:
        phases["scoring"] = asyncio.run(read_leaderboard(port, args.readers, args.requests_per_reader))
    phases["scoring"]["scores_landed"] = landing.count
    return phases


def smooth_images(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.normal(128, 40, size=(count, 8, 8)).clip(0, 255).astype(np.uint8)
    return np.stack([np.asarray(Image.fromarray(c).resize((64, 64), Image.Resampling.BICUBIC)) for c in coarse])


def make_zips(count: int, images_per_class: int) -> list[bytes]:
    from submissions import pack

    zips = []
    for i in range(count):
        buffer = io.BytesIO()
        pack({"with_mask": smooth_images(images_per_class, 2 * i), "without_mask": smooth_images(images_per_class,
                                                                                              2 * i + 1)},
             buffer, ["with_mask", "without_mask"])
        zips.append(buffer.getvalue())
    return zips


async def upload_all(base: str, admin_token: str, zips: list[bytes]) -> dict[str, Any]:
    admin = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(timeout=600) as client:
        tokens = []
        for i in range(len(zips)):
            response = await client.post(f"{base}/api/admin/competitions/{SLUG}/teams", headers=admin,
                                         json={"name": f"uploader-{i:02d}"})
            tokens.append(response.json()["token"])

        async def upload(token: str, data: bytes) -> tuple[int, float, dict[str, Any]]:
            t0 = time.perf_counter()
            response = await client.post(f"{base}/api/competitions/{SLUG}/submissions",
                                         headers={"Authorization": f"Bearer {token}"},
                                         files={"file": ("submission.zip", data, "application/zip")})
            return response.status_code, time.perf_counter() - t0, response.json()

        started = time.perf_counter()
        results = await asyncio.gather(*(upload(t, z) for t, z in zip(tokens, zips, strict=True)))
        wall = time.perf_counter() - started
        accepted = {body["id"] for status, _, body in results if status == 202}
        queued = await client.get(f"{base}/api/admin/submissions", headers=admin,
                                  params={"competition": SLUG, "status": "queued", "limit": 1000})
        in_queue = {s["id"] for s in queued.json()["data"]}
    latencies = [seconds for _, seconds, _ in results]
    return {"uploads": len(zips), "zip_mb": statistics.mean(len(z) for z in zips) / 1e6, "accepted": len(accepted),
            "status_codes": sorted({status for status, _, _ in results}), "all_queued": accepted <= in_queue,
            "wall_s": wall, "p50_s": percentile(latencies, 50), "max_s": max(latencies)}


def drain(data_dir: Path, count: int) -> dict[str, Any]:
    from server.worker import Worker

    settings = Settings(data_dir=data_dir)
    worker = Worker(database=Database(settings.resolved_database_url), settings=settings)
    started = time.perf_counter()
    worker.prepare_references()
    prepared = time.perf_counter() - started
    started = time.perf_counter()
    done = worker.run(exit_when_idle=True, max_jobs=count)
    seconds = time.perf_counter() - started
    return {"scored": done, "device": worker.scorer.device, "references_s": prepared, "wall_s": seconds,
            "seconds_per_submission": seconds / max(done, 1), "submissions_per_minute": 60 * done / seconds}


def main() -> None:
    args = parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="arena-bench-"))
    settings = Settings(data_dir=data_dir)
    root = make_competition(data_dir, args.images_per_class)
    database = Database(settings.resolved_database_url)
    database.migrate()
    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                              "args": {k: str(v) for k, v in vars(args).items()}}
    result["seed_s"] = seed_scored(database, root, args.submissions, args.teams)
    admin_token = secrets.token_urlsafe(24)
    port = free_port()
    server = start_server(data_dir, port, admin_token)
    base = f"http://127.0.0.1:{port}"
    try:
        result["leaderboard"] = read_phases(port, database, args)
        zips = make_zips(args.uploads, args.images_per_class)
        result["uploads"] = asyncio.run(upload_all(base, admin_token, zips))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    if args.drain:
        result["drain"] = drain(data_dir, args.drain)
    report(result, args)
    if args.data_dir is None:
        shutil.rmtree(data_dir, ignore_errors=True)


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    board, uploads = result["leaderboard"], result["uploads"]
    table = Table(title=f"server load ({result['machine']['cpus']} CPUs)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    seeded = f"{args.submissions:,} / {args.teams:,} ({result['seed_s']:.1f} s)"
    table.add_row("seeded scored submissions / teams", seeded)
    plain = board["plain"]
    table.add_row("leaderboard first request (computes the board)",
                  f"{board['cold_first_request_ms']:.0f} ms ({plain['entries']} teams, {plain['response_kb']:.0f} kB)")
    landed = board["scoring"]["scores_landed"]
    phases = {"plain": "JSON", "gzip": "gzip", "scoring": f"JSON, {landed} new scores, 1 per {args.score_every:g} s"}
    for phase, label in phases.items():
        read = board[phase]
        table.add_row(f"leaderboard p50 / p95 / p99 / max at {args.readers} readers ({label})",
                      f"{read['p50_ms']:.1f} / {read['p95_ms']:.1f} / {read['p99_ms']:.1f} / {read['max_ms']:.0f} ms, "
                      f"{read['requests_per_second']:.0f} req/s, {read['errors']} errors")
    table.add_row(f"{uploads['uploads']} concurrent uploads ({uploads['zip_mb']:.1f} MB each)",
                  f"{uploads['accepted']} accepted, codes {uploads['status_codes']}, all queued: "
                  f"{uploads['all_queued']}")
    table.add_row("upload wall / p50 / max", f"{uploads['wall_s']:.1f} / {uploads['p50_s']:.1f} / "
                  f"{uploads['max_s']:.1f} s")
    if "drain" in result:
        drained = result["drain"]
        table.add_row(f"worker drain ({drained['device']})", f"{drained['scored']} in {drained['wall_s']:.1f} s = "
                      f"{drained['seconds_per_submission']:.1f} s each ({drained['submissions_per_minute']:.2f}/min)")
        table.add_row("worker reference preparation", f"{drained['references_s']:.1f} s")
    Console().print(table)
    out = REPO / "bench" / "results" / f"server_load-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
