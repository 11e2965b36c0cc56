"""`arena serve` and `arena worker`: run the server (API, pages, and one scoring worker as its child process) or a
standalone worker.

`arena admin` (server/cli/admin.py) and `arena team` (server/cli/team.py) are the other command groups.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from server.cli.common import DATA_DIR_OPTION, fail, load_settings, open_database

if TYPE_CHECKING:
    from server.config import Settings

log = logging.getLogger("arena.serve")
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    app.command("worker")(worker_command)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "running upgrade" lines on every start are noise


def ensure_demo_competition(settings: Settings) -> None:
    from server.competition_dir import competitions_dir
    from server.data import make_demo_competition

    root = competitions_dir(settings.data_dir) / "demo"
    if not (root / "manifest.json").is_file():
        typer.echo(f"Creating the demo competition in {root} (first start only)...")
        make_demo_competition(root, progress=True)


def arena_command() -> str:
    """How to call this `arena` from the user's shell: plain `arena` when that is on PATH and is this one, otherwise
    its path in this environment (after `make run`, `.venv/bin/arena`: the venv is not activated)."""
    here = Path(sys.executable).parent / "arena"
    on_path = shutil.which("arena")
    if on_path and here.exists() and Path(on_path).resolve() == here.resolve():
        return "arena"
    if here.exists():
        relative = os.path.relpath(here)
        return relative if not relative.startswith("..") else str(here)
    return f"{sys.executable} -m server.cli"


def print_banner(settings: Settings, *, demo: bool, worker_pid: int | None) -> None:
    url = settings.resolved_public_url
    slug = "demo" if demo else "SLUG"
    arena = arena_command()
    secrets_dir = settings.data_dir / "secrets"
    lines = [
        "",
        f"FID Arena is starting on {url}  (API docs: {url}/docs; another port: ARENA_PORT=8080 or --port 8080)",
        f"Organizer (admin) token: {settings.admin_token}" if demo else "Organizer token: ARENA_ADMIN_TOKEN",
        *([f"  (kept in {secrets_dir} with the session key, so restarts keep it and everyone's sign-in; set "
           "ARENA_ADMIN_TOKEN and ARENA_SECRET_KEY for real use)"] if demo else []),
        *([f"The commands below use {arena}: the environment is not activated (or run `source "
           f"{Path(arena).parent}/activate` and type `arena`)."] if arena != "arena" and arena.endswith("/arena")
          else []),
        "Create a team (its token is printed once):",
        f"  curl -X POST {url}/api/competitions/{slug}/teams -H 'Content-Type: application/json' "
        "-d '{\"name\": \"my-team\", \"members\": [\"Ada\"]}'",
        f"  {arena} team create {slug} my-team --member Ada --server {url}",
        "Then submit a zip:",
        f"  {arena} submit FILE.zip --server {url} --competition {slug} --token TEAM_TOKEN --wait",
        "A valid zip in a minute (training images, so the memorization check will flag it):",
        f"  {arena} submission sample --competition {settings.data_dir / 'competitions' / slug} --out sample.zip",
        "Scoring worker: " + (f"process {worker_pid} (`arena worker`; its log follows here too)" if worker_pid
                              else f"off (run `{arena} worker`)"),
        "",
    ]
    typer.echo("\n".join(lines))


def serve_command(
    demo: bool = typer.Option(False, "--demo", help="Create the demo competition on first start; generate an "
                              "admin token if none is set."),
    host: str | None = typer.Option(None, "--host", help="Bind address (default ARENA_HOST or 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port (default ARENA_PORT or 8000)."),
    no_worker: bool = typer.Option(False, "--no-worker", help="API and pages only; run `arena worker` elsewhere."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    """Run the web server (API, pages) and a scoring worker as its child process."""
    import uvicorn

    from server.app import create_app
    from server.config import InsecureSettingsError
    from server.jobs.signals import ForwardSignals
    from server.storage import kept_secret

    configure_logging()
    settings = load_settings(data_dir, host=host, port=port)
    if demo:
        settings = settings.with_demo_secrets(lambda name: kept_secret(settings.data_dir, name))
        ensure_demo_competition(settings)
    else:
        try:
            settings.require_secure()
        except InsecureSettingsError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
    app = create_app(settings, database=open_database(settings))  # migrated and registered before the worker starts
    worker = None if no_worker else WorkerProcess(worker_command_line(settings.data_dir))
    print_banner(settings, demo=demo, worker_pid=worker.pid if worker else None)
    with ForwardSignals(worker.forward_sigterm if worker else None) as signals:
        try:
            uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
        finally:  # uvicorn's own signal has reached the worker by now; otherwise (e.g. the port was taken) send one
            if worker is not None:
                worker.stop(signalled=signals.received > 0)


def worker_command_line(data_dir: Path) -> list[str]:
    """`arena worker` on the server's data dir, by this interpreter (the server's environment gives it the same
    ARENA_* settings, database, device, engine and weights)."""
    return [sys.executable, "-m", "server.cli", "worker", "--data-dir", str(data_dir)]


class WorkerProcess:
    """The scoring worker of `arena serve` as its child process, writing to the same terminal. In its own process
    group, so a Ctrl+C in the terminal reaches the worker once, forwarded by the server (ForwardSignals), not twice
    (which would requeue its job at once). It ends with the server: on Linux the kernel sends it SIGTERM when the
    server dies, even by SIGKILL (PR_SET_PDEATHSIG); elsewhere an orphan is one more ordinary worker until stopped.
    Dying on its own is logged; the API keeps serving and uploads wait in the queue."""

    def __init__(self, command: list[str]) -> None:
        self.stopping = False
        # stdin closed: a read from the terminal by a process outside its foreground group would stop it
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, process_group=0,
                                        preexec_fn=exit_with_parent())
        self.pid = self.process.pid
        threading.Thread(target=self._watch, name="arena-worker-watch", daemon=True).start()

    def forward_sigterm(self) -> None:
        self.stopping = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, *, signalled: bool) -> None:
        """Wait for the worker to finish its job (or give it back) and exit; one SIGTERM unless one was forwarded."""
        if not signalled:
            self.forward_sigterm()
        self.stopping = True
        code = self.process.wait()
        log.info("the scoring worker (process %d) exited with code %d", self.pid, code)

    def _watch(self) -> None:
        code = self.process.wait()
        if not self.stopping:
            log.error("the scoring worker (process %d) exited with code %d while the server runs: the API keeps "
                      "serving and uploads wait in the queue; start `arena worker` to score them", self.pid, code)


def exit_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to send the child SIGTERM when this process dies (None elsewhere). The signal comes
    when the forking thread ends: this is the main thread, which lives as long as the server."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, not in the child
    parent = os.getpid()

    def set_death_signal() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the server died before prctl took effect: no signal would ever come
            os._exit(1)

    return set_death_signal


def worker_command(
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda (default ARENA_DEVICE)."),
    engine: str | None = typer.Option(None, "--engine", help="auto | torch | onnxruntime (default ARENA_FID_ENGINE)."),
    exit_when_idle: bool = typer.Option(False, "--exit-when-idle", help="Stop once the queue is empty."),
    server: str | None = typer.Option(None, "--server", help="A remote worker: the arena's URL (https://...); it "
                                      "needs no database or data dir, only --token."),
    token: str | None = typer.Option(None, "--token", envvar="ARENA_WORKER_TOKEN", help="The worker token of "
                                     "`arena admin workers create NAME` (with --server)."),
    cache_dir: Path = typer.Option(Path("arena-worker-cache"), "--cache-dir", help="With --server: where the "
                                   "downloaded reference statistics, zips and (for reference builds) images are "
                                   "kept."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    """Run a standalone scoring worker (one per GPU; many can share one PostgreSQL database), or with --server a
    remote worker that reaches the arena over HTTP(S) only."""
    from server.jobs.signals import ShutdownSignals
    from server.jobs.worker import Worker

    configure_logging()
    settings = load_settings(data_dir, device=device, fid_engine=engine)
    if server is not None:
        run_remote_worker(settings, server=server, token=token, cache_dir=cache_dir)
        return
    worker = Worker(database=open_database(settings), settings=settings)
    where = settings.resolved_database_url.split("@")[-1]  # never print a password
    typer.echo(f"Worker {worker.worker_id} on {where} (device {settings.device}, engine {settings.fid_engine})")
    done = 0  # stays 0 when a second signal interrupts the reference preparation, before any job
    with ShutdownSignals(worker):
        done = worker.run(exit_when_idle=exit_when_idle, prepare=True)
    typer.echo(f"Worker {worker.worker_id} stopped after {done} submission(s).")


def run_remote_worker(settings: Settings, *, server: str, token: str | None, cache_dir: Path) -> None:
    from server.jobs.remote_worker import ArenaServer, RemoteWorker
    from server.jobs.signals import ShutdownSignals

    if not token:
        fail("--server needs a worker token: --token or ARENA_WORKER_TOKEN (`arena admin workers create NAME` on "
             "the server prints one).")
    cache_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per poll and heartbeat otherwise
    worker = RemoteWorker(server=ArenaServer(server, token), settings=settings, cache_dir=cache_dir)
    typer.echo(f"Remote worker for {server} (device {settings.device}, engine {settings.fid_engine}, cache "
               f"{cache_dir})")
    done = 0
    with ShutdownSignals(worker):
        done = worker.run()
    typer.echo(f"Remote worker {worker.worker_id} stopped after {done} submission(s).")
