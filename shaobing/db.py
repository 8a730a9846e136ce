"""Opening the database: create or upgrade it with Alembic (``migrations/``).

* a new database is created at the newest revision;
* a database made by Shaobing's hand-written schema versions (a ``schema_version``
  row, no ``alembic_version``) is brought to version 2 the old way, stamped with the
  baseline revision and upgraded in place, its data kept;
* a database from a newer Shaobing (a revision or schema version this one does not
  know) is refused with :class:`SchemaError` before anything is touched;
* before an existing database is migrated, it is copied to ``backup_dir`` (when given):
  SQLite with its online backup API, PostgreSQL with ``pg_dump -Fc``; no backup, no
  migration (docs/install-offline.md: upgrade and rollback).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import Engine, make_url
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


def backup_database(engine: Engine, backup_dir: Path, revision: str) -> Path:
    """A full copy of the database at ``revision`` in ``backup_dir`` (made private):
    ``shaobing-<revision>-<time>.db`` (SQLite) or ``.dump`` (PostgreSQL, ``pg_dump -Fc``;
    restore with ``pg_restore --clean``). SchemaError if it cannot be made."""
    from core.secrets import make_private_dir

    url = engine.url
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        make_private_dir(backup_dir)
    except OSError as exc:
        raise SchemaError(f"no database backup before the migration: {backup_dir}: {exc}") from None
    if url.get_backend_name() == "sqlite":
        target = backup_dir / f"shaobing-{revision}-{stamp}.db"
        raw = engine.raw_connection()
        try:
            dest = sqlite3.connect(target)
            try:
                raw.driver_connection.backup(dest)  # type: ignore[union-attr]
            finally:
                dest.close()
        except sqlite3.Error as exc:
            target.unlink(missing_ok=True)
            raise SchemaError(f"no database backup before the migration: {target}: {exc}") from None
        finally:
            raw.close()
    else:
        target = backup_dir / f"shaobing-{revision}-{stamp}.dump"
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            raise SchemaError(
                "no database backup before the migration: pg_dump not found (install the "
                "PostgreSQL client, e.g. postgresql-client, or back up and migrate by hand)"
            )
        # libpq's URL without the driver; the password in the environment, not argv.
        libpq = make_url(url).set(drivername="postgresql", password=None)
        schemas = [
            f"--schema={opt.split('=', 1)[1]}"
            for opt in str(url.query.get("options", "")).split()
            if opt.startswith("-csearch_path=")
        ]  # a database in its own schema (search_path): that schema only
        env = dict(os.environ)
        if url.password is not None:
            env["PGPASSWORD"] = str(url.password)
        done = subprocess.run(
            [pg_dump, "-Fc", "-f", str(target), *schemas, "--dbname",
             libpq.render_as_string(hide_password=False)],
            env=env, capture_output=True, text=True, timeout=3600, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            target.unlink(missing_ok=True)
            raise SchemaError(
                f"no database backup before the migration: pg_dump: {done.stderr.strip()[-300:]}"
            )
    target.chmod(0o600)
    log.info("database backed up before the migration from %s: %s", revision, target)
    return target


def upgrade(engine: Engine, backup_dir: Path | None = None) -> None:
    """Create or upgrade the schema to the newest revision (refusing newer databases);
    an existing database behind the newest revision is first backed up to ``backup_dir``
    (when given)."""
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
        if backup_dir is not None and before is not None and before != script.get_current_head():
            conn.commit()  # end the read transaction: the backup reads a quiet database
            backup_database(engine, backup_dir, before)
        command.upgrade(alembic_config(conn), "head")
        conn.commit()
        after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        log.info("database schema upgraded %s → %s", before or "(empty)", after)


def open_database(url: str, backup_dir: Path | None = None) -> tuple[Engine, sessionmaker[Session]]:
    """An engine and session factory for ``url``, the schema at the newest revision (an
    older schema backed up to ``backup_dir`` first, when given)."""
    engine = make_engine(url)
    try:
        upgrade(engine, backup_dir)
    except Exception:
        engine.dispose()
        raise
    return engine, sessionmaker(engine, expire_on_commit=False)
