"""Alembic migrations shipped inside the package and applied programmatically on start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).parent


def alembic_config(engine: Engine, data_dir: Path | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    config.attributes["data_dir"] = data_dir  # stored files a backfill may read (None: the backfill does without)
    return config


def upgrade_to_head(engine: Engine, data_dir: Path | None = None) -> None:
    command.upgrade(alembic_config(engine, data_dir), "head")
