"""Alembic environment: runs on the engine handed over by server.db.migrations.upgrade_to_head."""

from __future__ import annotations

from alembic import context

from server.db.models import Base

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite can't ALTER most things in place
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
