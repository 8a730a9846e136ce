"""Accounts: the role × permission table, scope rules, password hashing, and the
store + service on SQLite and on a real PostgreSQL server; the ``users`` CLI.

PostgreSQL: ``$SHAOBING_TEST_PG`` or postgresql+psycopg://postgres@127.0.0.1:5432/test;
each test works in its own schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from accounts import passwords
from accounts.domain import (
    PERMISSIONS,
    ROLE_PERMISSIONS,
    ROLES,
    Principal,
    can,
    may_handle,
    sees_alert,
    sees_area,
)
from accounts.service import (
    AccountError,
    NotFoundError,
    UserExistsError,
    audit,
    authenticate,
    create_api_key,
    create_user,
    ensure_initial_admin,
    get_user,
    list_api_keys,
    list_audit,
    logout,
    principal_for_api_key,
    principal_for_token,
    purge_expired_tokens,
    revoke_api_key,
    update_user,
)
from accounts.store import TABLES, ApiKeyRecord, AuthTokenRecord, UserRecord
from core.area import Area
from core.db import Base, make_engine
from shaobing import users_cli
from tests.databases import pg_schema

CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PW = "correct-horse-1"
COUNTY = Area(county="示例县")
CHENGGUAN = Area(county="示例县", township="城关镇")


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at its cheapest: the tests check the logic, not the cost."""
    monkeypatch.setattr(passwords, "HASHER", CHEAP_HASHER)


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'accounts.sqlite'}")
        Base.metadata.create_all(engine, tables=TABLES)
        yield sessionmaker(engine, expire_on_commit=False)
        engine.dispose()
        return
    with pg_schema() as url:
        engine = make_engine(url)
        try:
            Base.metadata.create_all(engine, tables=TABLES)
            yield sessionmaker(engine, expire_on_commit=False)
        finally:
            engine.dispose()


def who(role: str, area: Area | None = None, department: str | None = None) -> Principal:
    return Principal("u", role, area or Area(), department, "token")  # type: ignore[arg-type]


# -- domain: permissions ----------------------------------------------------------

# role -> the permissions it has, written out in full (the spec, not the code's sets)
EXPECTED: dict[str, set[str]] = {
    "admin": set[str](PERMISSIONS),
    "supervisor": set[str](PERMISSIONS) - {"users:manage"},
    "operator": {"cameras:read", "alerts:read", "evidence:read", "alerts:handle",
                 "routing:read"},
    "department": {"cameras:read", "alerts:read", "evidence:read", "alerts:handle"},
    "investigator": {"cameras:read", "alerts:read", "evidence:read", "evidence:export"},
    "viewer": {"cameras:read", "alerts:read"},
}  # fmt: skip


def test_permission_names() -> None:
    assert set(PERMISSIONS) == {
        "cameras:read", "alerts:read", "evidence:read", "alerts:handle", "alerts:reopen",
        "evidence:export", "routing:read", "routing:write", "users:manage", "audit:read",
        "dispatch:manage", "cameras:configure", "cameras:manage", "areas:manage",
    }  # fmt: skip
    assert set(ROLES) == set(EXPECTED) == set(ROLE_PERMISSIONS)


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_role_permission_table(role: str) -> None:
    for permission in PERMISSIONS:
        assert can(who(role), permission) == (permission in EXPECTED[role]), (role, permission)


# -- domain: scope ---------------------------------------------------------------


def test_sees_area() -> None:
    village = Area(county="示例县", township="城关镇", village="东村")
    other = Area(county="示例县", township="河口镇")
    assert sees_area(who("admin", CHENGGUAN), other)  # admin: always, whatever its area
    assert sees_area(who("viewer"), other)  # empty area: the whole county
    township_op = who("operator", CHENGGUAN)
    assert sees_area(township_op, CHENGGUAN) and sees_area(township_op, village)
    assert not sees_area(township_op, other)
    assert not sees_area(township_op, COUNTY)  # larger than its township
    assert not sees_area(township_op, Area())  # an unplaced camera is county business


def test_sees_alert() -> None:
    elsewhere = Area(county="示例县", township="河口镇")
    dept = who("department", CHENGGUAN, department="police")
    # A department sees what was routed, dispatched or escalated to it, anywhere...
    assert sees_alert(dept, elsewhere, ["centre", "police"], None)
    # ...and what is assigned to its user; nothing else, even inside its area.
    assert sees_alert(dept, elsewhere, ["fire"], "u")
    assert not sees_alert(dept, CHENGGUAN, ["fire"], "someone-else")
    assert not sees_alert(dept, CHENGGUAN, [], None)
    # Without a department: the area decides.
    op = who("operator", CHENGGUAN)
    assert sees_alert(op, Area(county="示例县", township="城关镇", grid=None), [], None)
    assert not sees_alert(op, elsewhere, ["police"], None)
    assert sees_alert(who("admin", CHENGGUAN, "police"), elsewhere, [], None)
    assert sees_alert(who("supervisor"), elsewhere, [], None)


def test_may_handle() -> None:
    op = who("operator", CHENGGUAN)
    for action in ("acknowledge", "dispatch", "start", "resolve", "false_alarm"):
        assert may_handle(op, action, [], None, CHENGGUAN)
        assert not may_handle(op, action, [], None, Area(county="示例县", township="河口镇"))
        assert not may_handle(who("viewer"), action, [], None, CHENGGUAN)
        assert not may_handle(who("investigator"), action, [], None, CHENGGUAN)
    assert not may_handle(op, "reopen", [], None, CHENGGUAN)  # needs alerts:reopen
    assert may_handle(who("supervisor"), "reopen", [], None, CHENGGUAN)
    dept = who("department", department="police")
    assert may_handle(dept, "start", ["police"], None, Area())
    assert not may_handle(dept, "start", ["fire"], None, Area())
    with pytest.raises(ValueError, match="unknown alert action 'close'"):
        may_handle(op, "close", [], None, CHENGGUAN)


# -- passwords -------------------------------------------------------------------


def test_password_hashing() -> None:
    digest = passwords.hash_password(PW)
    assert digest.startswith("$argon2id$") and PW not in digest
    assert passwords.verify_password(digest, PW)
    assert not passwords.verify_password(digest, PW + "x")
    assert not passwords.verify_password("not-a-hash", PW)
    assert not passwords.needs_rehash(digest)
    with pytest.raises(passwords.PasswordPolicyError, match="at least 8"):
        passwords.hash_password("short7!")
    with pytest.raises(ValueError, match="too long"):
        passwords.hash_password("x" * (passwords.MAX_LENGTH + 1))
    assert len(passwords.generate_password()) >= 16


def test_needs_rehash_when_parameters_change(monkeypatch: pytest.MonkeyPatch) -> None:
    digest = passwords.hash_password(PW)
    assert PasswordHasher().check_needs_rehash(digest)  # the production default is stronger
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher(time_cost=2, memory_cost=16,
                                                            parallelism=1))  # fmt: skip
    assert passwords.needs_rehash(digest) and passwords.verify_password(digest, PW)


# -- service: users --------------------------------------------------------------


def test_create_user_and_validation(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        create_user(s, "zhang.san@cg", "operator", password=PW, area=CHENGGUAN,
                    display_name="张三")  # fmt: skip
    with sessions() as s:
        user = get_user(s, "zhang.san@cg")
        assert (user.role, user.area(), user.display_name) == ("operator", CHENGGUAN, "张三")
        assert user.password_hash and user.password_hash.startswith("$argon2id$")
        assert not user.disabled and user.last_login_at is None
        with pytest.raises(UserExistsError, match="taken"):
            create_user(s, "Zhang.San@CG", "viewer", password=PW)  # case-insensitive
        bad: list[tuple[dict[str, object], str]] = [
            ({"username": ""}, "invalid username"),
            ({"username": "a" * 65}, "invalid username"),
            ({"username": "张三"}, "invalid username"),
            ({"username": "a b"}, "invalid username"),
            ({"role": "root"}, "unknown role 'root'"),
            ({"display_name": "名" * 101}, "display name too long"),
            ({"department_id": "d" * 65}, "department id"),
            ({"password": "1234567"}, "at least 8"),
            ({"area": Area(township="城关镇")}, "without the levels above"),
            ({"role": "department"}, "needs a department id"),
        ]
        for change, message in bad:
            args: dict[str, object] = {"username": "ok", "role": "viewer", **change}
            with pytest.raises(AccountError, match=message):
                create_user(s, **args)  # type: ignore[arg-type]
        with pytest.raises(ValueError):  # the area's own length limit
            create_user(s, "ok", "viewer", area=Area.model_construct(county="县" * 65))
        s.rollback()
        assert get_user(s, "zhang.san@cg")  # the failures left the table as it was
        with pytest.raises(NotFoundError):
            get_user(s, "nobody")


def test_update_user(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        create_user(s, "root", "admin", password=PW)
        create_user(s, "li", "department", password=PW, department_id="police")
    with sessions.begin() as s:
        update_user(s, "li", display_name="李四")  # department_id UNSET: kept
        assert get_user(s, "li").department_id == "police"
        with pytest.raises(AccountError, match="needs a department"):
            update_user(s, "li", department_id=None)
        update_user(s, "li", role="operator", department_id=None, area=CHENGGUAN)
    with sessions() as s:
        li = get_user(s, "li")
        assert (li.role, li.department_id, li.area(), li.display_name) == (
            "operator", None, CHENGGUAN, "李四")  # fmt: skip
        with pytest.raises(AccountError, match="last enabled admin"):
            update_user(s, "root", disabled=True)
        with pytest.raises(AccountError, match="last enabled admin"):
            update_user(s, "root", role="supervisor")
        with pytest.raises(NotFoundError):
            update_user(s, "nobody", role="viewer")


# -- service: login tokens -------------------------------------------------------


def test_login_token_lifecycle(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        create_user(s, "wang", "operator", password=PW, area=CHENGGUAN,
                    department_id="centre")  # fmt: skip
    with sessions.begin() as s:
        assert authenticate(s, "wang", "wrong-password") is None
        assert authenticate(s, "nobody", PW) is None
        assert authenticate(s, "bad name!", PW) is None
        result = authenticate(s, "wang", PW, ttl_s=3600, now=1000.0)
        assert result is not None
        token, principal = result
    assert principal == Principal("wang", "operator", CHENGGUAN, "centre", "token")
    assert token.startswith("sbt_") and len(token) > 40
    with sessions() as s:
        assert get_user(s, "wang").last_login_at == 1000.0
        stored = s.scalars(select(AuthTokenRecord)).one()
        assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert stored.expires_at == 4600.0
        assert principal_for_token(s, token, now=4599.0) == principal
        assert principal_for_token(s, token, via="session", now=4599.0).via == "session"  # type: ignore[union-attr]
        assert principal_for_token(s, token, now=4600.0) is None  # expired
        assert principal_for_token(s, token + "x", now=1.0) is None
        assert principal_for_token(s, "sb_" + token[4:], now=1.0) is None
        assert purge_expired_tokens(s, now=4600.0) == 1
        s.rollback()
    with sessions.begin() as s:
        assert logout(s, token)
        assert principal_for_token(s, token, now=1001.0) is None
        assert not logout(s, token)


def test_disable_and_password_change_end_sessions(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        create_user(s, "chen", "viewer", password=PW)
        first = authenticate(s, "chen", PW)
        second = authenticate(s, "chen", PW)
    assert first and second
    with sessions.begin() as s:
        update_user(s, "chen", password="new-password-2")
    with sessions.begin() as s:
        assert principal_for_token(s, first[0]) is None
        assert authenticate(s, "chen", PW) is None
        third = authenticate(s, "chen", "new-password-2")
        assert third is not None
        update_user(s, "chen", disabled=True)
    with sessions.begin() as s:
        assert principal_for_token(s, third[0]) is None
        assert authenticate(s, "chen", "new-password-2") is None  # disabled
        update_user(s, "chen", disabled=False)
        assert authenticate(s, "chen", "new-password-2") is not None


def test_login_upgrades_an_outdated_hash(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    with sessions.begin() as s:
        old = create_user(s, "zhao", "viewer", password=PW).password_hash
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    monkeypatch.setattr(passwords, "HASHER", stronger)
    with sessions.begin() as s:
        assert authenticate(s, "zhao", PW) is not None
    with sessions() as s:
        new = get_user(s, "zhao").password_hash
        assert new and new != old and not stronger.check_needs_rehash(new)
        assert stronger.verify(new, PW)


def test_initial_admin(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        password = ensure_initial_admin(s)
    assert password is not None and len(password) >= 16
    with sessions.begin() as s:
        assert ensure_initial_admin(s) is None  # there is a user now
        result = authenticate(s, "admin", password)
        assert result is not None and result[1].role == "admin"


def test_initial_admin_given_password(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s, pytest.raises(AccountError, match="at least 8"):
        ensure_initial_admin(s, "short")
    with sessions.begin() as s:
        assert ensure_initial_admin(s, "chosen-pass-1") == "chosen-pass-1"
        assert authenticate(s, "admin", "chosen-pass-1") is not None


# -- service: API keys -----------------------------------------------------------


def test_api_key_stored_only_as_hash(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        create_user(s, "vms-bridge", "viewer", area=COUNTY)  # a machine user: no password
        key = create_api_key(s, "vms-bridge", "VMS bridge", now=500.0)
    assert key.startswith("sb_") and len(key) >= 40
    with sessions() as s:
        (record,) = list_api_keys(s, "vms-bridge")
        assert record.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert key.startswith(record.prefix) and len(record.prefix) < len(key) // 3
        # The key appears in no column of any row, in no form but its hash.
        for row in s.execute(text("SELECT * FROM api_keys")):
            assert all(key not in str(value) for value in row)
        assert authenticate(s, "vms-bridge", key) is None  # no password login


def test_api_key_lifecycle(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        create_user(s, "sun", "investigator", password=PW, area=CHENGGUAN)
        key = create_api_key(s, "sun", "export script")
        other = create_api_key(s, "sun", "second")
        with pytest.raises(AccountError, match="name"):
            create_api_key(s, "sun", "n" * 101)
        with pytest.raises(NotFoundError):
            create_api_key(s, "nobody", "x")
    with sessions.begin() as s:
        principal = principal_for_api_key(s, key, now=2000.0)
        assert principal == Principal("sun", "investigator", CHENGGUAN, None, "api_key")
        assert principal_for_api_key(s, key + "x") is None
        assert principal_for_api_key(s, "sbt_" + key[3:]) is None
    with sessions.begin() as s:
        record = s.scalars(select(ApiKeyRecord).where(ApiKeyRecord.name == "export script")).one()
        assert record.last_used_at == 2000.0
        principal_for_api_key(s, key, now=2030.0)  # within a minute: no write
        assert record.last_used_at == 2000.0
        principal_for_api_key(s, key, now=2060.0)
        assert record.last_used_at == 2060.0
        revoke_api_key(s, record.id)
        revoke_api_key(s, record.id)  # idempotent
        with pytest.raises(NotFoundError):
            revoke_api_key(s, 10_000)
    with sessions.begin() as s:
        assert principal_for_api_key(s, key) is None
        assert principal_for_api_key(s, other) is not None
        update_user(s, "sun", disabled=True)
        assert principal_for_api_key(s, other) is None


# -- service: audit --------------------------------------------------------------


def test_audit_log(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        for i in range(5):
            audit(s, "root" if i % 2 else "zhou", "login" if i < 3 else "user_update",
                  f"user-{i}", detail=f"d{i}", ip="127.0.0.1", now=100.0 + i)  # fmt: skip
        audit(s, "x" * 80, "login", "t" * 300, ip="f" * 80, now=200.0)  # cut, never fails
        with pytest.raises(ValueError, match="audit action"):
            audit(s, "root", "a" * 33, "t")
    with sessions() as s:
        rows, total = list_audit(s, limit=3, offset=0)
        assert total == 6 and [r.ts for r in rows] == [200.0, 104.0, 103.0]
        assert len(rows[0].actor) == 64 and len(rows[0].target) == 200 and len(rows[0].ip) == 64  # type: ignore[arg-type]
        rows, total = list_audit(s, limit=10, offset=1, action="login")
        assert total == 4 and [r.target for r in rows] == ["user-2", "user-1", "user-0"]
        rows, total = list_audit(s, limit=10, offset=0, action="login", actor="zhou")
        assert total == 2 and [r.detail for r in rows] == ["d2", "d0"]


# -- the users CLI ---------------------------------------------------------------


def cli(sessions: sessionmaker[Session], *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="shaobing")
    users_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return users_cli.run(parser.parse_args(list(argv)), sessions)


@pytest.fixture
def sqlite_sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.sqlite'}")
    Base.metadata.create_all(engine, tables=TABLES)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def test_cli_users(
    sqlite_sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sessions = sqlite_sessions
    monkeypatch.setenv("WANG_PW", PW)
    assert cli(sessions, "users", "add", "wang", "--role", "operator", "--area", "示例县/城关镇",
               "--display-name", "王五", "--password-env", "WANG_PW") == 0  # fmt: skip
    assert "added wang (operator, 示例县 / 城关镇)" in capsys.readouterr().out
    # Not a terminal and no --password-env: a generated password, printed once.
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert cli(sessions, "users", "add", "li", "--role", "department",
               "--department", "police") == 0  # fmt: skip
    generated = capsys.readouterr().out.split("password (shown once): ")[1].strip()
    with sessions() as s:
        assert authenticate(s, "li", generated) is not None
        assert authenticate(s, "wang", PW) is not None
    assert cli(sessions, "users", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["li\tdepartment\t(all)\tpolice\t-\tenabled",
                     "wang\toperator\t示例县 / 城关镇\t-\t王五\tenabled"]  # fmt: skip
    assert cli(sessions, "users", "api-key", "wang", "--name", "script") == 0
    key = capsys.readouterr().out.split("(shown once): ")[1].strip()
    with sessions() as s:
        assert principal_for_api_key(s, key) is not None
    # On a terminal: asked twice.
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    answers = iter(["new-password-9", "new-password-9"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert cli(sessions, "users", "passwd", "wang") == 0
    with sessions() as s:
        assert authenticate(s, "wang", "new-password-9") is not None
        _, total = list_audit(s, limit=10, offset=0, actor="cli")
        assert total == 4  # two users, one key, one password


def test_cli_errors(
    sqlite_sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sessions = sqlite_sessions
    monkeypatch.setenv("PW", PW)
    assert cli(sessions, "users", "passwd", "nobody", "--password-env", "PW") == 1
    assert "no user 'nobody'" in capsys.readouterr().err
    assert cli(sessions, "users", "add", "a", "--role", "viewer", "--area", "县//村",
               "--password-env", "PW") == 2  # fmt: skip
    assert "non-empty parts" in capsys.readouterr().err
    assert cli(sessions, "users", "add", "a", "--role", "viewer", "--password-env", "UNSET_X") == 2
    assert "UNSET_X is not set" in capsys.readouterr().err
    monkeypatch.setenv("SHORT", "short")
    assert cli(sessions, "users", "add", "a", "--role", "viewer", "--password-env", "SHORT") == 2
    assert "at least 8" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    answers = iter(["password-one", "password-two"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert cli(sessions, "users", "add", "a", "--role", "viewer") == 2
    assert "differ" in capsys.readouterr().err
    with sessions() as s:
        assert s.scalars(select(UserRecord)).all() == []
    with pytest.raises(SystemExit):
        cli(sessions, "users", "add", "a", "--role", "root")


def test_cli_a_whole_county_user_is_explicit(
    sqlite_sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """issue 21/23: without --area a user sees the whole county: --county-wide says so."""
    sessions = sqlite_sessions
    monkeypatch.setenv("PW", PW)
    assert cli(sessions, "users", "add", "li", "--role", "investigator",
               "--password-env", "PW") == 2  # fmt: skip
    assert "--county-wide" in capsys.readouterr().err
    with sessions() as s:
        assert s.scalars(select(UserRecord)).all() == []  # nothing stored
    assert cli(sessions, "users", "add", "li", "--role", "investigator", "--county-wide",
               "--password-env", "PW") == 0  # fmt: skip
    assert "added li (investigator, (all))" in capsys.readouterr().out
    # A department account without an area is its department's, never the county's.
    assert cli(sessions, "users", "add", "d", "--role", "department", "--department", "p",
               "--county-wide", "--password-env", "PW") == 2  # fmt: skip
    assert "cannot see the whole county" in capsys.readouterr().err
