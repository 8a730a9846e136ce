"""Opening the database: create or upgrade it with Alembic (``migrations/``).

* a new database is created at the newest revision;
* a database made by Shaobing's hand-written schema versions (a ``schema_version``
  row, no ``alembic_version``) is brought to version 2 the old way, stamped with the
  baseline revision and upgraded in place, its data kept;
* a database from a newer Shaobing (a revision or schema version this one does not
  know) is refused with :class:`SchemaError` before anything is touched.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
#: The last hand-written schema version, which the baseline revision reproduces.
LEGACY_VERSION = 2
LEGACY_STEPS = {2: ["ALTER TABLE alerts ADD COLUMN details_json TEXT"]}


class SchemaError(RuntimeError):
    pass


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _adopt_legacy(conn: Connection) -> None:
    """Bring a pre-Alembic database to version 2 and stamp it as the baseline."""
    version = conn.execute(text("SELECT version FROM schema_version")).scalar()
    if version is None:
        raise SchemaError("database has a schema_version table but no version row")
    if version > LEGACY_VERSION:
        raise SchemaError(
            f"database schema version {version} is newer than this Shaobing knows; upgrade Shaobing"
        )
    for step in range(int(version) + 1, LEGACY_VERSION + 1):
        for statement in LEGACY_STEPS.get(step, []):
            conn.execute(text(statement))
    conn.commit()
    command.stamp(alembic_config(conn), "0001")
    conn.commit()
    log.info("database from schema version %d adopted by the migrations (baseline 0001)", version)


def upgrade(engine: Engine) -> None:
    """Create or upgrade the schema to the newest revision (refusing newer databases)."""
    script = ScriptDirectory.from_config(alembic_config())
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        current = MigrationContext.configure(conn).get_current_revision()
        if current is not None:
            try:
                script.get_revision(current)
            except Exception:  # noqa: BLE001 - alembic raises several kinds here
                raise SchemaError(
                    f"database is at revision {current}, which this Shaobing does not know "
                    "(made by a newer version?); upgrade Shaobing"
                ) from None
        elif "schema_version" in tables:
            _adopt_legacy(conn)
        elif "alerts" in tables or "cameras" in tables:
            raise SchemaError("database has Shaobing tables but no schema version")
        before = MigrationContext.configure(conn).get_current_revision()
        command.upgrade(alembic_config(conn), "head")
        conn.commit()
        after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        log.info("database schema upgraded %s → %s", before or "(empty)", after)


def open_database(url: str) -> tuple[Engine, sessionmaker[Session]]:
    """An engine and session factory for ``url``, the schema at the newest revision."""
    engine = make_engine(url)
    try:
        upgrade(engine)
    except Exception:
        engine.dispose()
        raise
    return engine, sessionmaker(engine, expire_on_commit=False)
