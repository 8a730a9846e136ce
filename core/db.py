"""The SQL declarative base every package's tables are declared on, and the engine.

Tables live next to the code that owns them (``camera_registry.store``,
``alerts.adapters.sql``, ``accounts.store``); Alembic (``migrations/``) creates and
upgrades them. This module imports none of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for in-memory and URI-style databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def create_private_file(path: Path) -> None:
    """Create an empty file readable by its owner only (0600) if there is none.

    The database holds users' password hashes, audit and evidence paths: SQLite would
    create it with the umask's mode (often world-readable). Its -wal and -shm files
    take the main file's mode (SQLite copies it), so they are private too. An existing
    file keeps the mode the operator gave it.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys, and a
    new database file is created 0600."""
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None and path.parent.is_dir():
            create_private_file(path)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)
