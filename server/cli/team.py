"""`arena team ...`: team commands against a running server, over the one HTTP client (`ArenaClient`), as teams do.

The token comes from --token, then $ARENA_TOKEN, then the one `arena login` saved for this server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

from server.cli.common import fail

if TYPE_CHECKING:
    from submissions.client import ArenaClient

team_app = typer.Typer(help="Team commands against a running server (create a team, show quota, new token).",
                       no_args_is_help=True)

SERVER_OPTION = typer.Option("http://127.0.0.1:8000", "--server", envvar="ARENA_SERVER", help="Server URL.")
TOKEN_OPTION = typer.Option(None, "--token", help="Your team token (else $ARENA_TOKEN or `arena login`).")


def register(app: typer.Typer) -> None:
    app.add_typer(team_app, name="team")


def _team_client(server: str, token: str | None) -> ArenaClient:
    from submissions.client import ArenaClient, resolve_token

    resolved = resolve_token(server, token)
    if not resolved:
        fail("No team token: pass --token, set ARENA_TOKEN, or run `arena login --server URL --token T`.")
    return ArenaClient(server, resolved, timeout=30)


def _call(action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The client's answer, or the error it explains (status, what happened, what to do) and exit 1."""
    from submissions.report import SubmissionError

    try:
        return action()
    except SubmissionError as exc:
        fail(str(exc))


@team_app.command("create")
def team_create(slug: str, name: str, member: list[str] = typer.Option([], "--member", "-m", help="Repeat."),
                server: str = SERVER_OPTION,
                admin_token: str | None = typer.Option(None, "--admin-token", envvar="ARENA_ADMIN_TOKEN",
                                                       help="Needed where self-registration is closed.")) -> None:
    """Register a team and print its token (shown this once)."""
    from submissions.client import ArenaClient

    team = _call(lambda: ArenaClient(server, admin_token, timeout=30).create_team(slug, name, member))
    typer.echo(f"Team '{team['name']}' registered in '{team['competition']}'.")
    typer.echo(f"Token (shown once, keep it secret): {team['token']}")
    typer.echo(f"Submit with: {team['submit_hint'].split('   or   ')[0]}")


@team_app.command("me")
def team_me(server: str = SERVER_OPTION, token: str | None = TOKEN_OPTION) -> None:
    """Show your team and today's remaining quota."""
    client = _team_client(server, token)
    typer.echo(json.dumps(_call(client.me), indent=2))


@team_app.command("rotate-token")
def team_rotate_token(server: str = SERVER_OPTION, token: str | None = TOKEN_OPTION) -> None:
    """Replace your team token (the old one stops working at once)."""
    client = _team_client(server, token)
    team = _call(client.rotate_token)
    typer.echo(f"New token (shown once): {team['token']}")
    typer.echo("Run `arena login --server URL --token NEW_TOKEN` if you saved the old one.")
