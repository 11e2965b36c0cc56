"""What the server's command groups share: the data dir option, settings, the database, and failing with a message."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from server.config import Settings
    from server.db import Database

DATA_DIR_OPTION = typer.Option(None, "--data-dir", envvar="ARENA_DATA_DIR", help="Data dir (default ./arena-data).")


def load_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    from server.config import get_settings

    settings = get_settings()
    updates = {k: v for k, v in {"data_dir": data_dir, **overrides}.items() if v is not None}
    return settings.model_copy(update=updates) if updates else settings


def open_database(settings: Settings) -> Database:
    from server.db import Database
    from server.db.crud import sync_competitions

    database = Database(settings.resolved_database_url)
    database.migrate(settings.data_dir)
    with database.session() as session:
        sync_competitions(session=session, data_dir=settings.data_dir)
    return database


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
