"""Database engine and schema versioning (SQLAlchemy 2; SQLite or PostgreSQL)."""

from __future__ import annotations

import logging

from sqlalchemy import Integer, String, create_engine, event, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

log = logging.getLogger(__name__)

# Bump when the schema changes and add the step to MIGRATIONS.
SCHEMA_VERSION = 2
# version -> SQL statements that bring a database from version-1 to it
MIGRATIONS: dict[int, list[str]] = {
    2: ["ALTER TABLE alerts ADD COLUMN details_json TEXT"],  # rule-specific trace details
}


class Base(DeclarativeBase):
    pass


class SchemaVersion(Base):
    __tablename__ = "schema_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    component: Mapped[str] = mapped_column(String(32), default="shaobing")


class SchemaError(RuntimeError):
    pass


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def init_schema(engine: Engine) -> sessionmaker[Session]:
    """Create missing tables, check/upgrade the schema version; return a session factory."""
    # Import the table modules so their tables are registered on Base.metadata.
    import alerts.store  # noqa: F401
    import camera_registry.store  # noqa: F401

    existing = set(inspect(engine).get_table_names())
    Base.metadata.create_all(engine)
    factory = sessionmaker(engine, expire_on_commit=False)
    if "schema_version" not in existing and "alerts" in existing:
        raise SchemaError("database has Shaobing tables but no schema_version row")
    with factory.begin() as session:
        row = session.execute(select(SchemaVersion)).scalar_one_or_none()
        if row is None:
            session.add(SchemaVersion(id=1, version=SCHEMA_VERSION))
        elif row.version > SCHEMA_VERSION:
            raise SchemaError(
                f"database schema version {row.version} is newer than this Shaobing "
                f"({SCHEMA_VERSION}); upgrade Shaobing"
            )
        elif row.version < SCHEMA_VERSION:
            for version in range(row.version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS.get(version, []):
                    session.execute(text(statement))
                log.info("database schema migrated to version %d", version)
            row.version = SCHEMA_VERSION
    return factory
