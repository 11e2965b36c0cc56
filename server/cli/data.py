"""`arena data ...`: create competition directories (demo data or a real dataset clone)."""

from __future__ import annotations

import typer

data_app = typer.Typer(help="Create competition data: a procedural demo or a prepared dataset.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
