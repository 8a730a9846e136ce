"""Upgrade safety on the real databases: a database behind the newest migration is backed
up before it is migrated (SQLite: a copy; PostgreSQL: ``pg_dump -Fc``), and the backup
restores the old revision with its data (the rollback of docs/install-offline.md); the
login throttle's counts live in the database, so two API processes share them."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from accounts.throttle import LoginThrottle, ThrottlePolicy
from accounts.throttle_sql import SqlFailures
from shaobing.db import alembic_config, head_revision, open_database
from tests.databases import pg_schema

OLD = "0009"  # an earlier release's revision (be4542f, the upgrade test's N)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shaobing.db'}"
        return
    with pg_schema() as pg:
        yield pg


def make_old_database(url: str) -> None:
    """A database at revision OLD with a user in it, as the previous release left it."""
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), OLD)
        conn.execute(text("INSERT INTO users (username, display_name, password_hash, role, "
                          "disabled, created_at) VALUES ('zhang', '张', 'x', 'operator', "
                          "false, 1)"))  # fmt: skip
    engine.dispose()


def revision_and_users(url: str) -> tuple[str, list[str]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rev = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        users = list(conn.execute(text("SELECT username FROM users")).scalars())
    engine.dispose()
    return rev, users


def test_an_old_database_is_backed_up_before_it_is_migrated(url: str, tmp_path: Path) -> None:
    make_old_database(url)
    backups = tmp_path / "backup"
    engine, _ = open_database(url, backups)
    engine.dispose()
    assert revision_and_users(url) == (head_revision(), ["zhang"])
    (backup,) = backups.iterdir()
    assert backup.name.startswith(f"shaobing-{OLD}-") and backup.stat().st_mode & 0o077 == 0

    # Rollback: the backup brings back the old revision and its data.
    if url.startswith("sqlite"):
        db = Path(make_url(url).database or "")
        shutil.copy(backup, db)
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    else:
        schema = str(make_url(url).query["options"]).split("=", 1)[1]
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()
        libpq = make_url(url).set(drivername="postgresql").set(query={})
        subprocess.run(["pg_restore", "--dbname", libpq.render_as_string(hide_password=False),
                        str(backup)], check=True, capture_output=True, timeout=120)  # fmt: skip
    assert revision_and_users(url) == (OLD, ["zhang"])


def test_a_database_at_the_newest_revision_is_not_copied_again(url: str, tmp_path: Path) -> None:
    for _ in range(2):  # created, then opened again: nothing to migrate, nothing to back up
        engine, _ = open_database(url, tmp_path / "backup")
        engine.dispose()
    assert not (tmp_path / "backup").exists()


def test_a_failed_backup_stops_the_migration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shaobing.db'}"
    make_old_database(url)
    (tmp_path / "backup").write_text("a file where the folder should be")
    with pytest.raises(Exception, match="no database backup before the migration"):
        open_database(url, tmp_path / "backup")
    assert revision_and_users(url) == (OLD, ["zhang"])  # untouched


def test_two_api_processes_share_the_login_throttle(url: str) -> None:
    policy = ThrottlePolicy(free=2, base_s=1, max_s=60, lockout_after=4, lockout_s=900)
    engine_a, sessions_a = open_database(url)  # two engines: two processes' connections
    engine_b, sessions_b = open_database(url)
    try:
        a = LoginThrottle(policy, policy, store=SqlFailures(sessions_a))
        b = LoginThrottle(policy, policy, store=SqlFailures(sessions_b))
        keys = a.keys("Zhang", "10.0.0.7")
        for _ in range(2):
            a.failed(keys)
            b.failed(keys)
        verdict = b.verdict(keys)  # four failures, two in each process: locked in both
        assert verdict.locked and not verdict.allowed and a.verdict(keys).locked
        assert a.failures("account:zhang") == 4
        b.succeeded("zhang")  # a success clears the account everywhere, not the address
        assert a.failures("account:zhang") == 0 and a.failures("address:10.0.0.7") == 4
        long_name = "x" * 500  # longer than the column: still counted
        a.failed(a.keys(long_name, None))
        assert b.failures(f"account:{long_name}") == 1
    finally:
        engine_a.dispose()
        engine_b.dispose()
