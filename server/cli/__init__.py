"""The `arena` command: one Typer app; each area of the product contributes its commands.

Heavy imports (torch, the scoring engine, the web app) happen inside command bodies so `arena --help` stays fast.
"""

from __future__ import annotations

import typer

from server import __version__

app = typer.Typer(
    name="arena",
    help="FID Arena: run image-generation competitions scored by FID.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fid-arena {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """FID Arena: run image-generation competitions scored by FID."""


def _register() -> None:
    # Each area registers its own commands; the order here is the order in `arena --help`.
    from baselines import cli as baselines_cli
    from server.cli import admin, data, score, serve, team
    from submissions import cli as submissions_cli

    for module in (data, serve, admin, team, score, submissions_cli, baselines_cli):
        module.register(app)


_register()


def main() -> None:
    app()
