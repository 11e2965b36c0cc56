"""What a remote worker pays for the network: claim, download, post against scoring, and its drain against a local one.

    python -m bench.remote_transfer                         # 3 entries of 2 x 1,000 images per worker kind
    python -m bench.remote_transfer --images 200 --entries 2   # a quick look

A real `arena serve --no-worker` on 127.0.0.1; one local worker (`server.jobs.worker.Worker`, the database and data dir)
drains `--entries` uploads, then one remote worker (`server.jobs.remote_worker.RemoteWorker`, HTTP only, an empty cache)
drains as many others, both with one Scorer (torch engine, CPU, randomly initialized FID weights: the network's cost
is the real one's, its numbers are not). The remote worker's first job also fetches the reference file (~400 MB,
whatever the image count) and loads it; its stages are timed per job: claim, references, input, score, post.
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
from pathlib import Path

import httpx

from tests.utils.competition import make_competition, random_images
from tests.utils.inception import install_random_fid_weights
from tests.utils.serve import free_port, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "remote-transfer-admin-token-0123456789"


def upload_entries(url: str, slug: str, count: int, images: int, seed: int) -> list[int]:
    from submissions import pack

    ids = []
    with httpx.Client(base_url=url, timeout=300) as client:
        team = client.post(f"/api/admin/competitions/{slug}/teams", json={"name": f"team-{seed}"},
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()["token"]
        for index in range(count):
            buffer = io.BytesIO()
            pack({cls: random_images(images, 64, seed=seed * 1000 + index * 10 + i, brightness=90 + 60 * i)
                  for i, cls in enumerate(("with_mask", "without_mask"))}, buffer, ["with_mask", "without_mask"])
            response = client.post(f"/api/competitions/{slug}/submissions", headers={"Authorization": f"Bearer {team}"},
                                   files={"file": ("s.zip", buffer.getvalue(), "application/zip")})
            response.raise_for_status()
            ids.append(response.json()["id"])
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000, help="images per class of an entry")
    parser.add_argument("--entries", type=int, default=3, help="entries each worker drains")
    parser.add_argument("--test-images", type=int, default=200, help="held-out images per class (references)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "remote_transfer.json")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so `finally` stops the server started here
    with tempfile.TemporaryDirectory(prefix="arena-remote-bench-") as tmp:
        data_dir, torch_home = Path(tmp) / "data", Path(tmp) / "torch"
        make_competition(data_dir / "competitions" / "bench", slug="bench", train_per_class=args.test_images,
                         test_per_class=args.test_images, images_per_class=args.images, daily_limit=1000)
        install_random_fid_weights(torch_home)
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TORCH_HOME": str(torch_home), "ARENA_DATA_DIR": str(data_dir),
               "ARENA_ADMIN_TOKEN": ADMIN_TOKEN, "ARENA_PORT": str(port), "ARENA_DEVICE": "cpu",
               "ARENA_FID_ENGINE": "torch", "ARENA_UPLOAD_RATE_LIMIT_TEAM": "", "ARENA_UPLOAD_RATE_LIMIT_CLIENT": ""}
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
    result["machine"] = f"{os.cpu_count()} cores, {platform.python_version()}, {platform.machine()}"
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
    scorer = make_scorer(settings)
    local = Worker(database=database, settings=settings, scorer=scorer)
    local.run(exit_when_idle=True, prepare=True)  # builds the references (not timed)
    upload_entries(url, "bench", args.entries, args.images, seed=1)
    started = time.perf_counter()
    local_jobs = local.run(exit_when_idle=True)
    local_s = time.perf_counter() - started
    with database.sessionmaker() as session:
        token = create_worker_token(session=session, name="bench")[1]
    upload_entries(url, "bench", args.entries, args.images, seed=2)
    remote = RemoteWorker(server=ArenaServer(url, token), settings=settings, cache_dir=tmp / "worker-cache",
                          scorer=scorer)
    started = time.perf_counter()
    remote_jobs = remote.run(max_jobs=args.entries)
    remote_s = time.perf_counter() - started
    remote.stop.set()
    database.dispose()
    assert local_jobs == remote_jobs == args.entries, (local_jobs, remote_jobs)
    later = remote.timings[1:] or remote.timings
    transfer = [t["claim"] + t["input"] + t["post"] for t in later]
    return {"images_per_class": args.images, "entries": args.entries, "test_images_per_class": args.test_images,
            "local_drain_s": round(local_s, 2), "remote_drain_s": round(remote_s, 2),
            "remote_over_local": round(remote_s / local_s, 3),
            "first_job_references_s": round(remote.timings[0]["references"], 2),
            "transfer_per_entry_s": round(statistics.mean(transfer), 3),
            "score_per_entry_s": round(statistics.mean(t["score"] for t in later), 2),
            "jobs": [{k: round(v, 3) for k, v in t.items()} for t in remote.timings]}


def print_table(result: dict) -> None:
    rows = [("entries per worker", f"{result['entries']} x 2 x {result['images_per_class']} images"),
            ("local drain", f"{result['local_drain_s']} s"), ("remote drain", f"{result['remote_drain_s']} s"),
            ("remote / local", result["remote_over_local"]),
            ("first job: reference file", f"{result['first_job_references_s']} s (download, hash, link)"),
            ("transfer per entry", f"{result['transfer_per_entry_s']} s (claim + zip download + result post)"),
            ("scoring per entry", f"{result['score_per_entry_s']} s"), ("machine", result["machine"])]
    print("\n".join(f"{name:<28}{value}" for name, value in rows))
    for index, job in enumerate(result["jobs"]):
        print(f"  job {index + 1}: " + ", ".join(f"{k} {v:.3f} s" for k, v in job.items()))


if __name__ == "__main__":
    raise SystemExit(main())
