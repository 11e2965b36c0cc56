"""Server load benchmark: leaderboard latency under concurrent readers, concurrent uploads, one worker's drain rate.

    python -m bench.server_load                                  # the issue's targets (see defaults below)
    python -m bench.server_load --submissions 2000 --drain 0     # quicker, web tier only

1. Seeds SQLite with --submissions scored submissions of --teams teams in a fresh data dir.
2. Starts `arena serve --no-worker` on a free loopback port; --readers concurrent clients each fetch the public
   leaderboard --requests-per-reader times, back to back on keep-alive connections (target: p99 <= 50 ms at 50
   readers with 10,000 submissions). Three phases: plain JSON; gzip (as browsers ask); plain JSON while a new score
   lands every --score-every seconds (each one makes the server recompute the board).
   Then the HTML phases, the same readers as browsers ask (gzip): the leaderboard page anonymous, and signed in
   (each reader its own team's session); the status fragment of a queued submission polled by as many pages
   (with If-None-Match, as the page's fetch revalidates); and the time from a new score's commit to its showing on
   the HTML board while the readers read it (target: within ARENA_LEADERBOARD_MAX_AGE_SECONDS plus one render);
   and the page of a team with --team-entries submissions.
   Targets at 50 readers and 10,000 entries: HTML board throughput >= 50% of the JSON board's, p99 <= 100 ms.
3. --uploads concurrent uploads of valid zips (--images-per-class per class) by as many teams; checks every accepted
   one is queued afterwards (0: no upload phase).
4. One in-process worker (the real Scorer, settings' device and weights) scores --drain of them: submissions/minute.
Prints a table and writes bench/results/server_load-<time>.json (or --out). Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import platform
import re
import secrets
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image
from sqlalchemy import func, select, update

from server.competition_dir import write_config
from server.config import Settings
from server.db import (
    Database,
    Submission,
    SubmissionStatus,
    bump_board_version,
    utcnow,
)
from server.db.crud import create_team, register_competition
from submissions.client import ArenaClient, SubmitError
from tests.utils.serve import free_port, running_server

REPO = Path(__file__).resolve().parents[1]
SLUG = "bench"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--submissions", type=int, default=10_000)
    parser.add_argument("--teams", type=int, default=250)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--requests-per-reader", type=int, default=300)
    parser.add_argument("--score-every", type=float, default=1.0, help="Seconds between scores in phase 3.")
    parser.add_argument("--new-scores", type=int, default=10,
                        help="Scores the HTML board's readers see land at least (its time to a new score).")
    parser.add_argument("--uploads", type=int, default=20, help="Concurrent uploads (0: skip the upload phase).")
    parser.add_argument("--images-per-class", type=int, default=1000)
    parser.add_argument("--drain", type=int, default=2, help="Submissions the worker scores (0: skip).")
    parser.add_argument("--data-dir", type=Path, default=None, help="Default: a temporary directory.")
    parser.add_argument("--team-entries", type=int, default=500, help="Submissions of the team whose page is read.")
    parser.add_argument("--out", type=Path, default=None,
                        help="Where the JSON result goes. Default: bench/results/server_load-<time>.json.")
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


def seed_scored(database: Database, root: Path, submissions: int, teams: int) -> tuple[float, list[str]]:
    """Insert scored submissions spread over teams (one bulk insert); returns seconds and the teams' tokens."""
    from tests.utils.server_factories import class_result

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    with database.session() as session:
        row = register_competition(session=session, root=root)
        created = [create_team(session=session, competition=row, name=f"team-{i:04d}") for i in range(teams)]
        team_ids = [team.id for team, _ in created]
        now = utcnow()
        rows = []
        for i in range(submissions):
            public, private = rng.uniform(50, 400, size=2)
            per_class = dict.fromkeys(("with_mask", "without_mask"),
                                      class_result(public / 2, private / 2).model_dump(mode="json"))
            rows.append({
                "competition_id": row.id, "team_id": team_ids[i % teams], "sha256": uuid.uuid4().hex * 2,
                "size_bytes": 1, "message": "", "status": SubmissionStatus.scored, "attempts": 1,
                "created_at": now, "updated_at": now, "score_public": public, "score_private": private,
                "score_all": (public + private) / 2, "penalized": False, "class_scores": per_class,
                "selected_final": False,
            })
        session.execute(Submission.__table__.insert(), rows)
        bump_board_version(session, row.id)
    return time.perf_counter() - started, [token for _, token in created]


async def get_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One keep-alive HTTP/1.1 GET; returns the status. A raw client: httpx costs more CPU than the server does."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next((int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")), 0)
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def read_many(port: int, readers: int, per_reader: int, path: str | list[str],
                    headers_of: list[str] | None = None, extra_headers: str = "",
                    min_seconds: float = 0) -> dict[str, Any]:
    """`readers` keep-alive clients reading `path` back to back (reader i reads `path[i]` when it is a list), each
    `per_reader` times and on until `min_seconds` have passed; reader i adds `headers_of[i]` to its requests."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def reader_task(i: int) -> None:
        own = headers_of[i] if headers_of else ""
        target = path[i] if isinstance(path, list) else path
        request = (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_headers}{own}"
                   "Connection: keep-alive\r\n\r\n").encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            done = 0
            while done < per_reader or time.perf_counter() < started + min_seconds:
                done += 1
                t0 = time.perf_counter()
                status = await get_once(reader, writer, request)
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(reader_task(i) for i in range(readers)))
    wall = time.perf_counter() - started
    return {"requests": len(latencies), "errors": sum(n for status, n in statuses.items() if status not in (200, 304)),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}, "wall_s": wall,
            "p50_ms": percentile(latencies, 50) * 1000, "p95_ms": percentile(latencies, 95) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000, "max_ms": max(latencies) * 1000,
            "requests_per_second": len(latencies) / wall}


async def read_leaderboard(port: int, readers: int, per_reader: int, extra_headers: str = "") -> dict[str, Any]:
    path = f"/api/competitions/{SLUG}/leaderboard"
    first = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=120)
    result = await read_many(port, readers, per_reader, path, extra_headers=extra_headers)
    return {"entries": len(first.json()["entries"]), "response_kb": len(first.content) / 1000, **result}


def first_request_ms(port: int) -> float:
    """The first read after start: computes the board."""
    started = time.perf_counter()
    httpx.get(f"http://127.0.0.1:{port}/api/competitions/{SLUG}/leaderboard", timeout=120).raise_for_status()
    return (time.perf_counter() - started) * 1000


class ScoresLanding:
    """A thread that adds one scored submission every `every` seconds, as a worker would (phase 3)."""

    def __init__(self, database: Database, every: float, *, unique: bool = False) -> None:
        self.database, self.every, self.count = database, every, 0
        # unique: each score a distinct value (10.00, 9.99, ...) of the next team, so each stays on the board;
        # (score, commit time) waits in `pending` until the watcher sees it
        self.unique = unique
        self.pending: list[tuple[float, float]] = []
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
        with self.database.session() as session:
            teams = session.scalar(select(func.count(Submission.team_id.distinct()))) or 1
        while not self.stop.wait(self.every):
            with self.database.session() as session:
                # unique: the next team each time, round the teams again on a small board (each new score is
                # still its team's best, so it shows)
                offset = self.count % teams if self.unique else 0
                competition_id, team_id = session.execute(select(Submission.competition_id, Submission.team_id)
                                                          .distinct().order_by(Submission.team_id)
                                                          .offset(offset).limit(1)).one()
                score = 10.0 - 0.01 * self.count if self.unique else 60.0
                session.add(Submission(competition_id=competition_id, team_id=team_id, sha256=uuid.uuid4().hex * 2,
                                       size_bytes=1, message="", status=SubmissionStatus.scored, attempts=1,
                                       score_public=score, score_private=score, score_all=score, penalized=False,
                                       class_scores={}, selected_final=False, created_at=utcnow(),
                                       updated_at=utcnow()))
                bump_board_version(session, competition_id)
            if self.unique:
                self.pending.append((score, time.monotonic()))
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


HTML_BOARD = f"/c/{SLUG}/leaderboard"
BROWSER = "Accept: text/html\r\nAccept-Encoding: gzip, deflate\r\n"


def sign_in(base: str, token: str, path: str = "/signin") -> str:
    """A browser's sign-in with a team token (or the admin token at /admin/signin): the session cookie, as a
    request header line."""
    with httpx.Client(base_url=base, timeout=60) as client:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
        assert csrf, "the sign-in page has no CSRF token"
        signed = client.post(path, data={"token": token, "csrf_token": csrf.group(1)})
        assert signed.status_code == 303, f"sign-in at {path} refused: {signed.status_code}"
        client.get(signed.headers["location"])  # as a browser follows it: shows the flash, so later pages do not
        return f"Cookie: arena_session={client.cookies['arena_session']}\r\n"


def queue_for_polling(database: Database, count: int) -> list[int]:
    """One queued submission for each of the first `count` teams: the pages that poll their status."""
    with database.session() as session:
        competition_id = session.execute(select(Submission.competition_id).limit(1)).scalar_one()
        teams = session.execute(select(Submission.team_id).distinct().order_by(Submission.team_id).limit(count))
        queued = [Submission(competition_id=competition_id, team_id=team_id, sha256=uuid.uuid4().hex * 2,
                             size_bytes=1, message="", status=SubmissionStatus.queued, attempts=0,
                             created_at=utcnow(), updated_at=utcnow(), selected_final=False)
                  for team_id in teams.scalars()]
        session.add_all(queued)
        session.commit()
        return [submission.id for submission in queued]


def cancel(database: Database, ids: list[int]) -> None:
    """Take the pollers' submissions out of the queue again (the drain must not pick them: they have no zip)."""
    with database.session() as session:
        session.execute(update(Submission).where(Submission.id.in_(ids)).values(status=SubmissionStatus.cancelled))
        session.commit()


async def poll_status(port: int, ids: list[int], cookies: list[str], per_reader: int) -> dict[str, Any]:
    """Each page polls its own submission's status fragment, revalidating with the ETag it got first."""
    etags = []
    for submission_id, cookie in zip(ids, cookies, strict=True):
        name, _, value = cookie.strip().partition(": ")[2].partition("=")
        response = httpx.get(f"http://127.0.0.1:{port}/submissions/{submission_id}/status", cookies={name: value})
        response.raise_for_status()
        etags.append(response.headers["etag"])
    paths = [f"/submissions/{submission_id}/status" for submission_id in ids]
    revalidate = [f"{cookie}If-None-Match: {etag}\r\n" for cookie, etag in zip(cookies, etags, strict=True)]
    return await read_many(port, len(ids), per_reader, paths, headers_of=revalidate, extra_headers=BROWSER)


async def watch_new_scores(port: int, landing: ScoresLanding, stop: asyncio.Event) -> dict[str, Any]:
    """Seconds from each new score's commit to the first HTML board that shows it (polled every 20 ms); once the
    readers are done, the scores still pending get 10 s more, then count as missed."""
    delays: list[float] = []
    last: set[tuple[float, float]] | None = None
    deadline = math.inf
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        while True:
            if stop.is_set() and last is None:
                last, deadline = set(landing.pending), time.monotonic() + 10
            if last is not None and (not last & set(landing.pending) or time.monotonic() > deadline):
                break
            waiting = list(landing.pending)
            if waiting:
                page = (await client.get(HTML_BOARD)).text
                for score, committed in waiting:
                    if f">{score:.2f}<" in page:
                        delays.append(time.monotonic() - committed)
                        landing.pending.remove((score, committed))
            await asyncio.sleep(0.02)
    return {"seen_after_s": delays, "missed": len((last or set()) & set(landing.pending))}


async def read_html_while_scoring(port: int, args: argparse.Namespace, landing: ScoresLanding) -> dict[str, Any]:
    stop = asyncio.Event()
    watcher = asyncio.ensure_future(watch_new_scores(port, landing, stop))
    # As long as the scores take to land: a fast machine reads its requests in a few seconds.
    result = await read_many(port, args.readers, args.requests_per_reader, HTML_BOARD, extra_headers=BROWSER,
                             min_seconds=args.new_scores * args.score_every + 0.5)
    stop.set()
    result["visible_after"] = await watcher
    return result


def team_page_phase(port: int, database: Database, cookie: str, entries: int) -> dict[str, Any]:
    """A team with `entries` submissions reads its own page: the first read (renders), then repeated reads."""
    with database.session() as session:
        team_id, competition_id = session.execute(select(Submission.team_id, Submission.competition_id)
                                                  .order_by(Submission.team_id).limit(1)).one()
        have = session.scalar(select(func.count(Submission.id)).where(Submission.team_id == team_id)) or 0
        now = utcnow()
        session.execute(Submission.__table__.insert(), [
            {"competition_id": competition_id, "team_id": team_id, "sha256": uuid.uuid4().hex * 2, "size_bytes": 1,
             "message": "", "status": SubmissionStatus.scored, "attempts": 1, "created_at": now, "updated_at": now,
             "score_public": 300.0 + i, "score_private": 300.0, "score_all": 300.0, "penalized": False,
             "class_scores": {}, "selected_final": False} for i in range(max(0, entries - have))])
        session.commit()
    name, value = cookie.split(": ", 1)[1].strip().split("=", 1)
    timings: list[float] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", cookies={name: value}, timeout=60) as client:
        for _ in range(21):
            started = time.perf_counter()
            page = client.get(f"/teams/{team_id}", headers={"Accept-Encoding": "gzip"})
            page.raise_for_status()
            timings.append(time.perf_counter() - started)
        last = client.get(f"/teams/{team_id}", params={"page": entries // 50})
    return {"entries": entries, "first_ms": timings[0] * 1000, "repeat_p50_ms": percentile(timings[1:], 50) * 1000,
            "page_kb": len(page.content) / 1000, "last_page_status": last.status_code}


def first_html_request_ms(port: int) -> float:
    """The first read of the page after start: computes the board (if no one read it yet) and renders the page."""
    started = time.perf_counter()
    httpx.get(f"http://127.0.0.1:{port}{HTML_BOARD}", timeout=120).raise_for_status()
    return (time.perf_counter() - started) * 1000


def render_ms(base: str, admin_token: str) -> float:
    """One render of the board page: the organizer's first read (teams' pages are rendered ahead of readers)."""
    cookie = sign_in(base, admin_token, "/admin/signin").split(": ", 1)[1].strip().split("=", 1)
    started = time.perf_counter()
    httpx.get(f"{base}{HTML_BOARD}", cookies={cookie[0]: cookie[1]}, timeout=120).raise_for_status()
    return (time.perf_counter() - started) * 1000


def html_phases(port: int, database: Database, tokens: list[str], admin_token: str,
                args: argparse.Namespace) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    phases: dict[str, Any] = {"first_request_ms": first_html_request_ms(port), "render_ms": render_ms(base,
                                                                                                     admin_token)}
    page = httpx.get(f"{base}{HTML_BOARD}", headers={"Accept-Encoding": "gzip"}, timeout=120)
    phases["page_kb"], phases["page_gzip_kb"] = len(page.content) / 1000, int(page.headers["content-length"]) / 1000
    cookies = [sign_in(base, token) for token in tokens[:args.readers]]
    phases["anonymous"] = asyncio.run(read_many(port, args.readers, args.requests_per_reader, HTML_BOARD,
                                                extra_headers=BROWSER))
    phases["signed_in"] = asyncio.run(read_many(port, args.readers, args.requests_per_reader, HTML_BOARD,
                                                headers_of=cookies, extra_headers=BROWSER))
    polled = queue_for_polling(database, args.readers)
    try:
        phases["status"] = asyncio.run(poll_status(port, polled, cookies, args.requests_per_reader))
    finally:
        cancel(database, polled)
    with ScoresLanding(database, args.score_every, unique=True) as landing:
        phases["scoring"] = asyncio.run(read_html_while_scoring(port, args, landing))
    phases["scoring"]["scores_landed"] = landing.count
    phases["team_page"] = team_page_phase(port, database, cookies[0], args.team_entries)
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


def upload_all(base: str, admin_token: str, zips: list[bytes]) -> dict[str, Any]:
    organizer = ArenaClient(base, admin_token, timeout=600)
    teams = [ArenaClient(base, organizer.admin_create_team(SLUG, f"uploader-{i:02d}", [], is_baseline=False)["token"],
                         http=organizer.http) for i in range(len(zips))]

    def upload(team: ArenaClient, data: bytes) -> tuple[int | None, float, int | None]:
        """(HTTP status, seconds, the accepted submission's id)."""
        t0 = time.perf_counter()
        try:
            status, accepted = 202, team.upload_bytes(data, "submission.zip", SLUG)["id"]
        except SubmitError as refused:
            status, accepted = refused.status_code, None
        return status, time.perf_counter() - t0, accepted

    started = time.perf_counter()
    with ThreadPoolExecutor(len(zips)) as uploads:
        results = list(uploads.map(upload, teams, zips))
    wall = time.perf_counter() - started
    accepted = {submission_id for _, _, submission_id in results if submission_id is not None}
    in_queue = {s["id"] for s in organizer.admin_submissions(SLUG, status="queued", limit=1000)}
    latencies = [seconds for _, seconds, _ in results]
    return {"uploads": len(zips), "zip_mb": statistics.mean(len(z) for z in zips) / 1e6, "accepted": len(accepted),
            "status_codes": sorted({str(status) for status, _, _ in results}), "all_queued": accepted <= in_queue,
            "wall_s": wall, "p50_s": percentile(latencies, 50), "max_s": max(latencies)}


def drain(data_dir: Path, count: int) -> dict[str, Any]:
    from server.jobs.worker import Worker

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
    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                          "load_average_before": os.getloadavg()},
                              "leaderboard_max_age_s": settings.leaderboard_max_age_seconds,
                              "args": {k: str(v) for k, v in vars(args).items()}}
    result["seed_s"], tokens = seed_scored(database, root, args.submissions, args.teams)
    admin_token = secrets.token_urlsafe(24)
    port = free_port()
    env = {**os.environ, "ARENA_DATA_DIR": str(data_dir), "ARENA_ADMIN_TOKEN": admin_token}
    with running_server(env, data_dir / "server.log", "--no-worker", port=port) as base:
        result["leaderboard"] = read_phases(port, database, args)
        result["html"] = html_phases(port, database, tokens, admin_token, args)
        if args.uploads:
            zips = make_zips(args.uploads, args.images_per_class)
            result["uploads"] = upload_all(base, admin_token, zips)
    if args.drain:
        result["drain"] = drain(data_dir, args.drain)
    report(result, args)
    if args.data_dir is None:
        shutil.rmtree(data_dir, ignore_errors=True)


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    board = result["leaderboard"]
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
    html = result["html"]
    table.add_row(f"HTML board page ({args.teams} teams)",
                  f"{html['page_kb']:.0f} kB, {html['page_gzip_kb']:.0f} kB gzipped; "
                  f"first read {html['first_request_ms']:.0f} ms, one render {html['render_ms']:.0f} ms")
    best_json = max(board["plain"]["requests_per_second"], board["gzip"]["requests_per_second"])
    phases = {"anonymous": "HTML board, anonymous", "signed_in": "HTML board, signed in (own session each)",
              "scoring": f"HTML board, {html['scoring']['scores_landed']} new scores",
              "status": "status fragment polled (If-None-Match)"}
    for phase, label in phases.items():
        read = html[phase]
        ratio = f", {read['requests_per_second'] / best_json:.0%} of JSON" if phase != "status" else ""
        table.add_row(f"{label}: p50 / p95 / p99 / max at {args.readers} readers",
                      f"{read['p50_ms']:.1f} / {read['p95_ms']:.1f} / {read['p99_ms']:.1f} / {read['max_ms']:.0f} ms, "
                      f"{read['requests_per_second']:.0f} req/s{ratio}, {read['errors']} errors {read['statuses']}")
    seen, missed = html["scoring"]["visible_after"]["seen_after_s"], html["scoring"]["visible_after"]["missed"]
    bound = result["leaderboard_max_age_s"] + html["render_ms"] / 1000
    table.add_row("new score visible on the HTML board after (max / median)",
                  f"{max(seen, default=float('nan')):.2f} / {statistics.median(seen) if seen else float('nan'):.2f} s "
                  f"of {len(seen)}, {missed} never seen; bound max age + one render = {bound:.2f} s")
    team = html["team_page"]
    table.add_row(f"team page of a team with {team['entries']} submissions (50 a page)",
                  f"first {team['first_ms']:.0f} ms, then p50 {team['repeat_p50_ms']:.1f} ms "
                  f"({team['page_kb']:.0f} kB); last page: {team['last_page_status']}")
    load = result["machine"]["load_average_before"]
    table.add_row("load average before the run (1 / 5 / 15 min)", f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    if "uploads" in result:
        uploads = result["uploads"]
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
    out = args.out or REPO / "bench" / "results" / f"server_load-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
