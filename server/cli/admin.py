"""`arena admin ...`: organizer commands on the server's database directly (the same ARENA_DATABASE_URL / data dir
as the server), so an organizer on the server machine needs no token."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from server.cli.common import DATA_DIR_OPTION, fail, load_settings, open_database

if TYPE_CHECKING:
    from server.config import Settings
    from server.db import Database

admin_app = typer.Typer(help="Organizer commands on the server's database (no token needed).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(admin_app, name="admin")


def _admin_database(data_dir: Path | None) -> tuple[Settings, Database]:
    settings = load_settings(data_dir)
    return settings, open_database(settings)


def _run(action: Any) -> Any:
    from server.errors import ArenaError

    try:
        return action()
    except ArenaError as exc:
        fail(exc.message)


@admin_app.command("register")
def admin_register(root: Path = typer.Argument(..., help="A prepared competition directory."),
                   data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """Register a competition directory that lives outside {data_dir}/competitions/."""
    from server.competition_dir import CompetitionError
    from server.db.crud import register_competition
    from server.jobs.reference_builds import request_first_build

    _, database = _admin_database(data_dir)
    with database.session() as session:
        try:
            row = register_competition(session=session, root=root)
        except CompetitionError as exc:
            fail(str(exc))
        build = request_first_build(session=session, competition=row, reason="registered with arena admin register")
        typer.echo(f"Registered '{row.slug}' from {row.root}; reference build {build.id}: {build.status} "
                   f"(`arena admin references {row.slug} --status`)")


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
    yes: bool = typer.Option(False, "--yes", "-y", help="With --all: do not ask for confirmation."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    """Queue submissions again (after a scorer or reference change); quotas are not touched."""
    from server.db import utcnow
    from server.db.crud import get_competition
    from server.jobs.queue import rescore, rescore_competition
    from server.organizer.settings import rescore_consequence

    _, database = _admin_database(data_dir)
    with database.session() as session:
        if all_:
            if not competition:
                fail("--all needs --competition SLUG")
            slug = competition
            row = _run(lambda: get_competition(session=session, slug=slug))
            _confirm(*rescore_consequence(session=session, competition=row, now=utcnow()), yes=yes)
            ids = rescore_competition(session=session, competition_id=row.id, reason=reason)
            typer.echo(f"Queued {len(ids)} submission(s) of '{row.slug}' again.")
        elif submission_id is not None:
            submission = _run(lambda: rescore(session=session, submission_id=submission_id, reason=reason))
            typer.echo(f"Submission {submission.id}: {submission.status}")
        else:
            fail("give a SUBMISSION_ID, or --all --competition SLUG")


@admin_app.command("cancel")
def admin_cancel(submission_id: int, reason: str = typer.Option("", "--reason"),
                 data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """Cancel a queued or scoring submission (the team's quota slot is given back)."""
    from server.jobs.queue import cancel

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
            fail("give a SUBMISSION_ID or --team TEAM_ID")


def _confirm(consequence: str, warning: str | None, *, yes: bool) -> None:
    """Say what the command will do (and warn); go on only when the organizer agrees or passed --yes."""
    typer.echo(consequence)
    if warning:
        typer.echo(f"Warning: {warning}", err=True)
    if not yes and not typer.confirm("Go on?", default=False):
        raise typer.Exit(1)


@admin_app.command("reveal")
def admin_reveal(
    slug: str,
    hide: bool = typer.Option(False, "--undo", "--hide", help="Hide the private board again (revealed by mistake)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    """Reveal the private leaderboard to teams and visitors (asks first; recorded in the settings history)."""
    import getpass

    from server.db import utcnow
    from server.db.crud import get_competition, reveal_private_board
    from server.organizer.settings import reveal_consequence

    _, database = _admin_database(data_dir)
    with database.session() as session:
        row = _run(lambda: get_competition(session=session, slug=slug))
        _confirm(*reveal_consequence(competition=row, revealed=not hide, now=utcnow()), yes=yes)
        reveal_private_board(session=session, competition=row, revealed=not hide,
                             actor=f"arena admin reveal ({getpass.getuser()})")
        typer.echo(f"Private board of '{slug}': {'hidden' if hide else 'revealed'}")


@admin_app.command("settings")
def admin_settings(
    slug: str,
    title: str | None = typer.Option(None, "--title"),
    description: str | None = typer.Option(None, "--description", help="Markdown."),
    rules: str | None = typer.Option(None, "--rules", help="Markdown: the rules teams agree to."),
    deadline: str | None = typer.Option(None, "--deadline", help="YYYY-MM-DD HH:MM in UTC; '' for none."),
    daily_limit: int | None = typer.Option(None, "--daily-limit", help="Accepted submissions per team per UTC day."),
    final_selection_limit: int | None = typer.Option(None, "--final-selection-limit", help="0: best counts."),
    self_registration: bool | None = typer.Option(None, "--self-registration/--no-self-registration"),
    status: str | None = typer.Option(None, "--status", help="open | closed | archived"),
    submission_kinds: str | None = typer.Option(None, "--submission-kinds", help="images | model | both: what "
                                                "teams upload (a zip of PNGs, an ONNX generator the server samples)."),
    images_per_class: int | None = typer.Option(None, "--images-per-class", help="Refused once entries exist."),
    memorization_eps: str | None = typer.Option(None, "--memorization-eps", help="'auto' or a number; refused "
                                                "once entries exist."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    """Show or change a competition's settings (the settings page's rules: validated, recorded, atomic)."""
    import getpass

    from server.competition_dir import load_competition
    from server.db import utcnow
    from server.db.crud import get_competition
    from server.organizer.settings import parse_deadline, save_warnings, setting_history, update_settings

    changes: dict[str, Any] = {key: value for key, value in {
        "title": title, "description": description, "team_rules": rules, "daily_limit": daily_limit,
        "final_selection_limit": final_selection_limit, "self_registration": self_registration, "status": status,
        "submission_kinds": submission_kinds, "images_per_class": images_per_class,
        "memorization_eps": memorization_eps}.items() if value is not None}
    _, database = _admin_database(data_dir)
    with database.session() as session:
        row = _run(lambda: get_competition(session=session, slug=slug))
        if deadline is not None:
            changes["deadline"] = _run(lambda: parse_deadline(deadline))
        actor = f"arena admin settings ({getpass.getuser()})"
        changed = _run(lambda: update_settings(session=session, competition=row, changes=changes, actor=actor))
        for change in changed:
            typer.echo(f"{change.field}: {change.old!r} -> {change.new!r}")
        for warning in save_warnings(changed, utcnow()):
            typer.echo(f"Warning: {warning}", err=True)
        config = load_competition(row).config
        typer.echo(config.model_dump_json(indent=2, exclude={"classes"}))
        history = setting_history(session=session, competition=row, limit=10)
        for item in history:
            typer.echo(f"{item.created_at:%Y-%m-%d %H:%M} UTC  {item.actor}  {item.field}: {item.old_value} -> "
                       f"{item.new_value}")


@admin_app.command("announce")
def admin_announce(slug: str, message: str, data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """Post a short Markdown message shown on every page of the competition."""
    import getpass

    from server.db.crud import get_competition
    from server.organizer.settings import announce

    _, database = _admin_database(data_dir)
    with database.session() as session:
        row = _run(lambda: get_competition(session=session, slug=slug))
        item = _run(lambda: announce(session=session, competition=row, message=message,
                                     actor=f"arena admin announce ({getpass.getuser()})"))
        typer.echo(f"Announcement {item.id} posted on the pages of '{slug}'.")


@admin_app.command("references")
def admin_references(
    slug: str,
    show: bool = typer.Option(False, "--status", help="Only show the latest build; queue nothing."),
    wait: bool = typer.Option(False, "--wait", help="Print progress until the build ends; exit 1 if it fails."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    """Queue a build of the competition's scoring references for a worker (never built here) and show it."""
    import getpass
    import time

    from server.db import ReferenceBuild
    from server.db.crud import get_competition
    from server.jobs.reference_builds import latest_build, request_build

    _, database = _admin_database(data_dir)
    with database.session() as session:
        row = _run(lambda: get_competition(session=session, slug=slug))
        build = latest_build(session=session, competition=row) if show else request_build(
            session=session, competition=row, reason=f"requested by arena admin references ({getpass.getuser()})")
        if build is None:
            fail(f"'{slug}' has no reference build yet; run `arena admin references {slug}` to queue one")
        build_id, last = build.id, ""
        while True:
            session.expire_all()
            build = session.get_one(ReferenceBuild, build_id)
            line = describe_build(build)
            if line != last:
                typer.echo(line)
                last = line
            if not wait or build.status in ("done", "failed"):
                break
            time.sleep(2)
    if wait and build.status == "failed":
        raise typer.Exit(1)


def describe_build(build: Any) -> str:
    """One line: build id, status, images done per class, worker and engine, outcome."""
    classes = (build.progress or {}).get("classes", {})
    per_class = ", ".join(f"{cls} {c['done']}/{c['total']}" for cls, c in classes.items())
    worker = f"; worker {build.worker_id} ({build.engine})" if build.worker_id else ""
    outcome = f"; {build.outcome}" if build.outcome else ""
    return (f"Reference build {build.id}: {build.status}, {build.images_done}/{build.images_total} images "
            f"({per_class}){worker}{outcome}")


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
    from server.boards.ranking import all_scores_csv, leaderboard, leaderboard_csv
    from server.db.crud import get_competition

    _, database = _admin_database(data_dir)
    with database.session() as session:
        row = _run(lambda: get_competition(session=session, slug=slug))
        if board == "all":
            text = all_scores_csv(session=session, competition=row)
        elif board in ("public", "private"):
            result = leaderboard(session=session, competition=row, board=board, is_admin=True)  # type: ignore[arg-type]
            text = leaderboard_csv(result) if fmt == "csv" else result.model_dump_json(indent=2)
        else:
            fail("--board must be public, private or all")
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        typer.echo(f"Wrote {out}")


workers_app = typer.Typer(help="Scoring workers, and the tokens of remote ones (`arena worker --server URL "
                          "--token TOKEN`).", invoke_without_command=True)
admin_app.add_typer(workers_app, name="workers")


@workers_app.callback()
def admin_workers(context: typer.Context, data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """Without a command: the workers and worker tokens (as `list`)."""
    if context.invoked_subcommand is None:
        admin_workers_list(data_dir)


@workers_app.command("list")
def admin_workers_list(data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """Registered workers (local and remote) with their last heartbeat, then the remote workers' tokens."""
    from server.jobs.leases import list_workers
    from server.jobs.worker_tokens import list_worker_tokens

    _, database = _admin_database(data_dir)
    with database.session() as session:
        for w in list_workers(session=session):
            state = "stopped" if w.stopped_at else f"job {w.current_submission_id or '-'}"
            where = f"  from {w.address}" if w.address else ""
            typer.echo(f"{w.id}  {w.device}{where}  last heartbeat {w.last_heartbeat:%H:%M:%S}  {state}")
        for token in list_worker_tokens(session=session):
            state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
            typer.echo(f"token {token.name}  created {token.created_at:%Y-%m-%d %H:%M}  {state}")


@workers_app.command("create")
def admin_workers_create(name: str = typer.Argument(..., help="A name for the worker machine, e.g. lab-gpu-1."),
                         data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """A token for a remote worker (printed once; only its hash is kept)."""
    from server.jobs.worker_tokens import create_worker_token

    settings, database = _admin_database(data_dir)
    with database.session() as session:
        _, token = _run(lambda: create_worker_token(session=session, name=name))
    typer.echo(f"Worker token '{name}' (shown once): {token}")
    typer.echo(f"On the GPU machine: ARENA_WORKER_TOKEN={token} arena worker --server {settings.resolved_public_url}"
               " --device cuda")


@workers_app.command("revoke")
def admin_workers_revoke(name: str, data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """Revoke a worker token: its workers can do nothing more, and their jobs go back to the queue now."""
    from server.jobs.worker_tokens import revoke_worker_token

    _, database = _admin_database(data_dir)
    with database.session() as session:
        released = _run(lambda: revoke_worker_token(session=session, name=name))
    jobs = ", ".join(map(str, released)) or "none"
    typer.echo(f"Revoked worker token '{name}'; jobs it held, back in the queue: {jobs}")
