"""Alembic environment: runs on the connection ``shaobing.db`` hands in (or on the URL
of ``sqlalchemy.url`` when run by the ``alembic`` command)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import accounts.store  # noqa: F401 - register the tables on Base.metadata
import alerts.adapters.sql  # noqa: F401
import camera_registry.store  # noqa: F401
import linkage.store  # noqa: F401
import recording.store  # noqa: F401
import tracks.store  # noqa: F401
from core.db import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")  # fmt: skip
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata,
                          render_as_batch=conn.dialect.name == "sqlite")  # fmt: skip
        with context.begin_transaction():
            context.run_migrations()


run()
