"""`arena serve` and `arena worker`: run the server (API, pages, one embedded worker) or a standalone worker.

`arena admin` (server/cli/admin.py) and `arena team` (server/cli/team.py) are the other command groups.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from server.cli.common import DATA_DIR_OPTION, load_settings, open_database

if TYPE_CHECKING:
    from server.config import Settings
    from server.worker import Worker


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    app.command("worker")(worker_command)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "running upgrade" lines on every start are noise


def ensure_demo_competition(settings: Settings) -> None:
    from server.competition import competitions_dir
    from server.data import make_demo_competition

    root = competitions_dir(settings.data_dir) / "demo"
    if not (root / "manifest.json").is_file():
        typer.echo(f"Creating the demo competition in {root} (first start only)...")
        make_demo_competition(root, progress=True)


def print_banner(settings: Settings, *, demo: bool, worker: bool) -> None:
    url = settings.resolved_public_url
    slug = "demo" if demo else "SLUG"
    lines = [
        "",
        f"FID Arena is starting on {url}  (API docs: {url}/docs)",
        f"Organizer (admin) token: {settings.admin_token}" if demo else "Organizer token: ARENA_ADMIN_TOKEN",
        "Create a team (its token is printed once):",
        f"  curl -X POST {url}/api/competitions/{slug}/teams -H 'Content-Type: application/json' "
        "-d '{\"name\": \"my-team\", \"members\": [\"Ada\"]}'",
        f"  arena team create {slug} my-team --member Ada --server {url}",
        "Then submit a zip:",
        f"  arena submit FILE.zip --server {url} --competition {slug} --token TEAM_TOKEN --wait",
        "A valid zip in a minute (training images, so the memorization check will flag it):",
        f"  arena submission sample --competition {settings.data_dir / 'competitions' / slug} --out sample.zip",
        "Embedded scoring worker: " + ("on" if worker else "off (run `arena worker`)"),
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
    """Run the web server (API, pages) with an embedded scoring worker."""
    import uvicorn

    from server.app import create_app
    from server.config import InsecureSettingsError
    from server.worker import ShutdownSignals, Worker

    configure_logging()
    settings = load_settings(data_dir, host=host, port=port)
    if demo:
        settings = settings.with_demo_admin_token()
        ensure_demo_competition(settings)
    else:
        try:
            settings.require_secure()
        except InsecureSettingsError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
    database = open_database(settings)
    app = create_app(settings, database=database)
    worker = None if no_worker else Worker(database=database, settings=settings)
    thread = None
    if worker is not None:
        thread = threading.Thread(target=_embedded_worker, args=(worker,), name="arena-worker", daemon=True)
        thread.start()
    print_banner(settings, demo=demo, worker=worker is not None)
    with ShutdownSignals(worker) as shutdown:
        # uvicorn takes over SIGTERM/SIGINT while it serves and raises the signal again once it has shut down: that
        # is the worker's first signal (finish the job within the grace period); one more requeues the job now.
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
        if thread is not None:
            shutdown.stop("the server stopped")  # nothing new when uvicorn's signal has started the stop already
            thread.join()


def _embedded_worker(worker: Worker) -> None:
    try:
        worker.run(prepare=True)
    except Exception as exc:  # e.g. missing FID weights: the message names the fix
        logging.getLogger("arena.worker").error(
            "the embedded scoring worker stopped (the API keeps serving; uploads wait in the queue): %s", exc)


def worker_command(
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda (default ARENA_DEVICE)."),
    engine: str | None = typer.Option(None, "--engine", help="auto | torch | onnxruntime (default ARENA_FID_ENGINE)."),
    exit_when_idle: bool = typer.Option(False, "--exit-when-idle", help="Stop once the queue is empty."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    """Run a standalone scoring worker (one per GPU; many can share one PostgreSQL database)."""
    from server.worker import ShutdownSignals, Worker

    configure_logging()
    settings = load_settings(data_dir, device=device, fid_engine=engine)
    worker = Worker(database=open_database(settings), settings=settings)
    where = settings.resolved_database_url.split("@")[-1]  # never print a password
    typer.echo(f"Worker {worker.worker_id} on {where} (device {settings.device}, engine {settings.fid_engine})")
    done = 0  # stays 0 when a second signal interrupts the reference preparation, before any job
    with ShutdownSignals(worker):
        done = worker.run(exit_when_idle=exit_when_idle, prepare=True)
    typer.echo(f"Worker {worker.worker_id} stopped after {done} submission(s).")
