"""The migrations build exactly the tables the models declare (SQLite and PostgreSQL):
a column added to a model without its migration fails here, not in production."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

import accounts.store  # noqa: F401 - registers the tables
import alerts.adapters.sql  # noqa: F401
import camera_registry.areas  # noqa: F401
import camera_registry.store  # noqa: F401
import tracks.store  # noqa: F401
from core.db import Base, make_engine
from shaobing.db import upgrade
from tests.databases import pg_schema

LEGACY = {"schema_version"}  # kept so a pre-Alembic Shaobing refuses the database


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
        yield eng
        eng.dispose()
        return
    with pg_schema() as url:
        eng = make_engine(url)
        yield eng
        eng.dispose()


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    upgrade(engine)
    with engine.connect() as conn:
        # SQLite keeps the declared type of a column but enforces no length, so a migration
        # does not rebuild its tables to widen one: types are compared on PostgreSQL only.
        compare_type = engine.dialect.name != "sqlite"
        context = MigrationContext.configure(conn, opts={"compare_type": compare_type})
        diffs = compare_metadata(context, Base.metadata)
    diffs = [d for d in diffs if not (d[0] == "remove_table" and d[1].name in LEGACY)]
    assert diffs == []
