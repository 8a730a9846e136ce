"""Databases for tests: SQLite in a temporary folder, or a fresh schema of the real
PostgreSQL at ``$SHAOBING_TEST_PG`` (default postgresql+psycopg://postgres@127.0.0.1:5432/test;
the test script starts the server when it is down)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from shaobing.db import open_database

PG_URL = os.environ.get("SHAOBING_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def pg_schema() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL schema (its own ``search_path``), dropped after."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        pytest.fail(f"PostgreSQL at {PG_URL} is not reachable ({exc}); start it (see .ci/run)",
                    pytrace=False)  # fmt: skip
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextmanager
def database(kind: str, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A migrated database of ``kind`` (``sqlite`` or ``postgresql``), disposed after."""
    if kind == "sqlite":
        engine, factory = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
        try:
            yield factory
        finally:
            engine.dispose()
        return
    with pg_schema() as url:
        engine, factory = open_database(url)
        try:
            yield factory
        finally:
            engine.dispose()
