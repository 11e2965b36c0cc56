"""`arena serve`, `arena worker`, `arena admin ...` and `arena team ...`: run the server and manage a competition.

`arena admin` works on the database directly (the same ARENA_DATABASE_URL / data dir as the server), so an organizer
on the server machine needs no token; `arena team` talks to a running server over HTTP, as teams do.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from server.config import Settings
    from server.db import Database
    from server.worker import Worker

admin_app = typer.Typer(help="Organizer commands on the server's database (no token needed).", no_args_is_help=True)
team_app = typer.Typer(help="Team commands against a running server (create a team, show quota, new token).",
                       no_args_is_help=True)

DATA_DIR_OPTION = typer.Option(None, "--data-dir", envvar="ARENA_DATA_DIR", help="Data dir (default ./arena-data).")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    app.command("worker")(worker_command)
    app.add_typer(admin_app, name="admin")
    app.add_typer(team_app, name="team")


def load_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    from server.config import get_settings

    settings = get_settings()
    updates = {k: v for k, v in {"data_dir": data_dir, **overrides}.items() if v is not None}
    return settings.model_copy(update=updates) if updates else settings


def open_database(settings: Settings) -> Database:
    from server.db import Database
    from server.db.crud import sync_competitions

    database = Database(settings.resolved_database_url)
    database.migrate()
    with database.session() as session:
        sync_competitions(session=session, data_dir=settings.data_dir)
    return database


# -- serve and worker ----------------------------------------------------------------------------------------------


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "running upgrade" lines on every start are noise


def ensure_demo_competition(settings: Settings) -> None:
    from server.data import make_demo_competition
    from server.db.crud import competitions_dir

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

    from server.api import create_app
    from server.config import InsecureSettingsError
    from server.worker import Worker

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
    # uvicorn re-raises SIGTERM/SIGINT once it has shut down; ignoring them here lets the worker finish or requeue
    # its job below instead of the process dying with it.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    if worker is not None and thread is not None:
        _stop_embedded(worker, thread, settings.worker_shutdown_grace_seconds)


def _embedded_worker(worker: Worker) -> None:
    try:
        worker.run(prepare=True)
    except Exception as exc:  # e.g. missing FID weights: the message names the fix
        logging.getLogger("arena.worker").error(
            "the embedded scoring worker stopped (the API keeps serving; uploads wait in the queue): %s", exc)


def _stop_embedded(worker: Worker, thread: threading.Thread, grace: float) -> None:
    """Let the current job finish (up to the grace period, or until the next SIGTERM/SIGINT), else requeue it."""
    from server.worker import WorkerInterrupted

    worker.stop.set()

    def give_up(*_: Any) -> None:
        raise WorkerInterrupted()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, give_up)
    if worker.current is not None:
        typer.echo(f"Finishing submission {worker.current} (up to {grace:.0f} s; Ctrl+C again to requeue it now)...")
    try:
        thread.join(timeout=grace)
    except WorkerInterrupted:
        pass
    if thread.is_alive():
        worker.abandon_current("server stopped before the job finished; back in the queue")


def worker_command(
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda (default ARENA_DEVICE)."),
    engine: str | None = typer.Option(None, "--engine", help="auto | torch | onnxruntime (default ARENA_FID_ENGINE)."),
    exit_when_idle: bool = typer.Option(False, "--exit-when-idle", help="Stop once the queue is empty."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    """Run a standalone scoring worker (one per GPU; many can share one PostgreSQL database)."""
    from server.worker import Worker, install_signal_handlers

    configure_logging()
    settings = load_settings(data_dir, device=device, fid_engine=engine)
    worker = Worker(database=open_database(settings), settings=settings)
    install_signal_handlers(worker)
    where = settings.resolved_database_url.split("@")[-1]  # never print a password
    typer.echo(f"Worker {worker.worker_id} on {where} (device {settings.device}, engine {settings.fid_engine})")
    done = worker.run(exit_when_idle=exit_when_idle, prepare=True)
    signal.setitimer(signal.ITIMER_REAL, 0)  # a pending grace-period alarm must not fire during exit
    typer.echo(f"Worker {worker.worker_id} stopped after {done} submission(s).")


# -- admin ---------------------------------------------------------------------------------------------------------


def _admin_database(data_dir: Path | None) -> tuple[Settings, Database]:
    settings = load_settings(data_dir)
    return settings, open_database(settings)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _run(action: Any) -> Any:
    from server.errors import ArenaError

    try:
        return action()
    except ArenaError as exc:
        _fail(exc.message)


@admin_app.command("register")
def admin_register(root: Path = typer.Argument(..., help="A prepared competition directory."),
                   data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """Register a competition directory that lives outside {data_dir}/competitions/."""
    from server.competition import CompetitionError
    from server.db.crud import register_competition

    _, database = _admin_database(data_dir)
    with database.session() as session:
        try:
            row = register_competition(session=session, root=root)
        except CompetitionError as exc:
            _fail(str(exc))
        typer.echo(f"Registered '{row.slug}' from {row.root}")


@admin_app.command("submissions")
def admin_submissions(
    competition: str | None = typer.Option(None, "--competition", "-c", help="Only this competition (slug)."),
    status: str | None = typer.Option(None, "--status", help="queued | scoring | scored | failed | cancelled"),
    limit: int = typer.Option(50, "--limit"),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    """List submissions, newest first."""
    from rich.console import Console
    from rich.table import Table

    from server.db.crud import get_competition, list_submissions

    _, database = _admin_database(data_dir)
    with database.session() as session:
        row = _run(lambda: get_competition(session=session, slug=competition)) if competition else None
        rows, count = list_submissions(session=session, competition=row, status=status, limit=limit)
        table = Table(title=f"{len(rows)} of {count} submissions")
        for column in ("id", "team", "status", "attempts", "public", "private", "created (UTC)", "note"):
            table.add_column(column)
        for s in rows:
            note = s.error or ("disqualified" if s.disqualified_at else "") or ("final" if s.selected_final else "")
            table.add_row(str(s.id), s.team.name, s.status, str(s.attempts), _fmt(s.score_public),
                          _fmt(s.score_private), f"{s.created_at:%Y-%m-%d %H:%M}", note)
        Console().print(table)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


@admin_app.command("rescore")
def admin_rescore(
    submission_id: int | None = typer.Argument(None, help="One submission; or use --all with --competition."),
    all_: bool = typer.Option(False, "--all", help="Every scored or failed submission of --competition."),
    competition: str | None = typer.Option(None, "--competition", "-c"),
    reason: str = typer.Option("", "--reason", help="Recorded in each submission's history."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    """Queue submissions again (after a scorer or reference change); quotas are not touched."""
    from server.db.crud import get_competition
    from server.queue import rescore, rescore_competition

    _, database = _admin_database(data_dir)
    with database.session() as session:
        if all_:
            if not competition:
                _fail("--all needs --competition SLUG")
            slug = competition
            row = _run(lambda: get_competition(session=session, slug=slug))
            ids = rescore_competition(session=session, competition_id=row.id, reason=reason)
            typer.echo(f"Queued {len(ids)} submission(s) of '{row.slug}' again.")
        elif submission_id is not None:
            submission = _run(lambda: rescore(session=session, submission_id=submission_id, reason=reason))
            typer.echo(f"Submission {submission.id}: {submission.status}")
        else:
            _fail("give a SUBMISSION_ID, or --all --competition SLUG")


@admin_app.command("cancel")
def admin_cancel(submission_id: int, reason: str = typer.Option("", "--reason"),
                 data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """Cancel a queued or scoring submission (the team's quota slot is given back)."""
    from server.queue import cancel

    _, database = _admin_database(data_dir)
    with database.session() as session:
        submission = _run(lambda: cancel(session=session, submission_id=submission_id, reason=reason))
        typer.echo(f"Submission {submission.id}: {submission.status}")


@admin_app.command("disqualify")
def admin_disqualify(
    submission_id: int | None = typer.Argument(None, help="A submission to remove from the boards."),
    team_id: int | None = typer.Option(None, "--team", help="Disqualify a whole team instead."),
    reason: str = typer.Option(..., "--reason", help="Shown to the team."),
    undo: bool = typer.Option(False, "--undo", help="Restore instead."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    """Remove a submission or a team from the leaderboards (or restore it with --undo)."""
    from server.db.crud import disqualify_submission, disqualify_team

    _, database = _admin_database(data_dir)
    with database.session() as session:
        if team_id is not None:
            team = _run(lambda: disqualify_team(session=session, team_id=team_id, reason=reason, disqualified=not undo))
            typer.echo(f"Team {team.id} '{team.name}': {'restored' if undo else 'disqualified'}")
        elif submission_id is not None:
            submission = _run(lambda: disqualify_submission(session=session, submission_id=submission_id,
                                                            reason=reason, disqualified=not undo))
            typer.echo(f"Submission {submission.id}: {'restored' if undo else 'disqualified'}")
        else:
            _fail("give a SUBMISSION_ID or --team TEAM_ID")


@admin_app.command("reveal")
def admin_reveal(slug: str, hide: bool = typer.Option(False, "--hide", help="Hide the private board again."),
                 data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """Reveal the private leaderboard to teams and visitors."""
    from server.db.crud import get_competition, reveal_private_board

    _, database = _admin_database(data_dir)
    with database.session() as session:
        row = _run(lambda: get_competition(session=session, slug=slug))
        reveal_private_board(session=session, competition=row, revealed=not hide)
        typer.echo(f"Private board of '{slug}': {'hidden' if hide else 'revealed'}")


@admin_app.command("create-team")
def admin_create_team(
    slug: str, name: str, member: list[str] = typer.Option([], "--member", "-m", help="Repeat per member."),
    baseline: bool = typer.Option(False, "--baseline", help="A reference entry: shown, marked, not ranked."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    """Create a team and print its token (shown this once)."""
    from server.db.crud import create_team, get_competition

    _, database = _admin_database(data_dir)
    with database.session() as session:
        row = _run(lambda: get_competition(session=session, slug=slug))
        team, token = _run(lambda: create_team(session=session, competition=row, name=name, members=member,
                                               is_baseline=baseline))
        typer.echo(f"Team {team.id} '{team.name}' created{' (baseline)' if baseline else ''}.")
        typer.echo(f"Token (shown once, keep it secret): {token}")


@admin_app.command("export")
def admin_export(
    slug: str,
    board: str = typer.Option("public", "--board", help="public | private | all (every submission's scores)."),
    fmt: str = typer.Option("csv", "--format", help="csv | json (json: public/private boards only)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="File to write (default: stdout)."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    """Export a leaderboard (public or private, even before the reveal) or all scores."""
    from server.db.crud import get_competition
    from server.ranking import all_scores_csv, leaderboard, leaderboard_csv

    _, database = _admin_database(data_dir)
    with database.session() as session:
        row = _run(lambda: get_competition(session=session, slug=slug))
        if board == "all":
            text = all_scores_csv(session=session, competition=row)
        elif board in ("public", "private"):
            result = leaderboard(session=session, competition=row, board=board, is_admin=True)  # type: ignore[arg-type]
            text = leaderboard_csv(result) if fmt == "csv" else result.model_dump_json(indent=2)
        else:
            _fail("--board must be public, private or all")
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        typer.echo(f"Wrote {out}")


@admin_app.command("workers")
def admin_workers(data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """Registered workers and their last heartbeat."""
    from server.queue import list_workers

    _, database = _admin_database(data_dir)
    with database.session() as session:
        for w in list_workers(session=session):
            state = "stopped" if w.stopped_at else f"job {w.current_submission_id or '-'}"
            typer.echo(f"{w.id}  {w.device}  last heartbeat {w.last_heartbeat:%H:%M:%S}  {state}")


# -- team (HTTP) ---------------------------------------------------------------------------------------------------

SERVER_OPTION = typer.Option("http://127.0.0.1:8000", "--server", envvar="ARENA_SERVER", help="Server URL.")
TOKEN_OPTION = typer.Option(..., "--token", envvar="ARENA_TOKEN", help="Your team token.")


def _request(method: str, url: str, token: str | None = None, body: Any = None) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, url, json=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach {url}: {exc}. Is `arena serve` running there?")
    payload = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code >= 400:
        _fail(payload.get("error", {}).get("message") or f"HTTP {response.status_code}")
    return payload


@team_app.command("create")
def team_create(slug: str, name: str, member: list[str] = typer.Option([], "--member", "-m", help="Repeat."),
                server: str = SERVER_OPTION,
                admin_token: str | None = typer.Option(None, "--admin-token", envvar="ARENA_ADMIN_TOKEN",
                                                       help="Needed where self-registration is closed.")) -> None:
    """Register a team and print its token (shown this once)."""
    team = _request("POST", f"{server.rstrip('/')}/api/competitions/{slug}/teams", admin_token,
                    {"name": name, "members": member})
    typer.echo(f"Team '{team['name']}' registered in '{team['competition']}'.")
    typer.echo(f"Token (shown once, keep it secret): {team['token']}")
    typer.echo(f"Submit with: {team['submit_hint'].split('   or   ')[0]}")


@team_app.command("me")
def team_me(server: str = SERVER_OPTION, token: str = TOKEN_OPTION) -> None:
    """Show your team and today's remaining quota."""
    typer.echo(json.dumps(_request("GET", f"{server.rstrip('/')}/api/teams/me", token), indent=2))


@team_app.command("rotate-token")
def team_rotate_token(server: str = SERVER_OPTION, token: str = TOKEN_OPTION) -> None:
    """Replace your team token (the old one stops working at once)."""
    team = _request("POST", f"{server.rstrip('/')}/api/teams/me/token", token)
    typer.echo(f"New token (shown once): {team['token']}")
