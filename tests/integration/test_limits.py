"""Nobody unauthenticated exhausts the hub (issue 21): login throttling per account and
per address (back-off, lockout, audited), argon2 work bounded in parallel, request
bodies bounded on every route (413). The API is the real app served by uvicorn."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from accounts import passwords
from accounts.service import create_user
from accounts.store import AuditRecord, LoginFailureRecord
from accounts.throttle import LoginThrottle, ThrottlePolicy
from api.app import create_app
from api.limits import SMALL_BODY, PasswordSlots
from api.schemas import HealthReport
from shaobing.db import open_database
from tests.peers.procs import free_port

PW = "limits-pass-0123"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the throttle (pure) ---------------------------------------------------------------


def test_failures_back_off_exponentially_then_lock() -> None:
    clock = Clock()
    policy = ThrottlePolicy(free=3, base_s=1.0, max_s=8.0, lockout_after=8, lockout_s=600)
    t = LoginThrottle(policy, policy, clock=clock)
    keys = t.keys("Zhang", "10.0.0.1")
    waits = []
    for _ in range(7):
        assert t.verdict(keys).allowed
        t.failed(keys)
        verdict = t.verdict(keys)
        waits.append(verdict.wait_s)
        clock.now += verdict.wait_s
    assert waits == [0, 0, 1, 2, 4, 8, 8]  # free, then doubling up to max_s
    t.failed(keys)
    locked = t.verdict(keys)
    assert locked.locked and locked.wait_s == 600
    clock.now += 599
    assert not t.verdict(keys).allowed
    assert t.verdict(t.keys("zhang", None)).locked  # names compare case-insensitively


def test_a_success_clears_the_account_not_the_address() -> None:
    clock = Clock()
    account = ThrottlePolicy(free=2, base_s=1, max_s=60, lockout_after=5, lockout_s=60)
    address = ThrottlePolicy(free=4, base_s=1, max_s=60, lockout_after=6, lockout_s=60)
    t = LoginThrottle(account, address, clock=clock)
    for name in ("a", "b", "c", "d"):  # spraying one password over accounts
        t.failed(t.keys(name, "10.0.0.9"))
    assert t.verdict(t.keys("e", "10.0.0.9")).wait_s == 1  # the address backs off
    assert t.verdict(t.keys("e", "10.0.0.8")).allowed  # another address does not
    t.failed(t.keys("a", "10.0.0.8"))
    t.succeeded("a")
    assert t.failures("account:a") == 0 and t.failures("address:10.0.0.9") == 4
    clock.now += 3601  # forgotten after an hour
    assert t.failures("address:10.0.0.9") == 0


def test_the_table_is_bounded() -> None:
    t = LoginThrottle(max_keys=10)
    for i in range(100):
        t.failed(t.keys(f"user{i}", None))
    assert len(t.store) == 10  # type: ignore[arg-type]


# -- over the real app -----------------------------------------------------------------


class Services:
    """What /healthz needs (no hub: these routes need none)."""

    def health(self) -> HealthReport:
        return HealthReport(status="ok", cameras={}, dispatch_pending=0)


class SlowHasher(PasswordHasher):
    """A cheap argon2 that takes 0.2 s per check and records how many run at once."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.2)
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.running -= 1


class Server:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.app = create_app(Services(), sessions,  # type: ignore[arg-type]
                              allowed_hosts=["127.0.0.1"], console=False)  # fmt: skip
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)

    def login(self, username: str, password: str = PW) -> httpx.Response:
        body = {"username": username, "password": password}
        return httpx.post(f"{self.base}/api/auth/login", json=body, timeout=30)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> SlowHasher:
    h = SlowHasher()
    monkeypatch.setattr(passwords, "HASHER", h)
    return h


@pytest.fixture
def server(tmp_path: Path, hasher: SlowHasher) -> Iterator[Server]:
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with sessions.begin() as session:
        for name in ("zhang", "li", *(f"user{i}" for i in range(12))):
            create_user(session, name, "viewer", password=PW)
    s = Server(sessions)
    yield s
    s.stop()
    engine.dispose()


def audit_actions(server: Server) -> list[tuple[str, str]]:
    with server.app.state.sessions() as session:
        rows = session.execute(select(AuditRecord.action, AuditRecord.target)).all()
    return [(a, t) for a, t in rows]


def test_wrong_passwords_back_off_then_lock_the_account_audited(server: Server) -> None:
    clock = Clock()
    server.app.state.login_throttle = LoginThrottle(clock=clock)
    answers = []
    for _ in range(12):
        r = server.login("zhang", "wrong-password")
        answers.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
        clock.now += 61  # past any back-off, never past the lockout
    assert answers[:10] == [401] * 10 and answers[10:] == [429, 429], answers
    r = server.login("zhang")  # even the right password, while locked
    assert r.status_code == 429 and "locked" in r.json()["detail"]
    assert ("login_locked", "account:zhang") in audit_actions(server)
    assert server.login("li").status_code == 200  # another account is not affected
    clock.now += 901
    assert server.login("zhang").status_code == 200  # the lockout ends


def test_the_hubs_throttle_keeps_its_counts_in_the_database(server: Server) -> None:
    """The app's own throttle (not a test clock): counts in ``login_failures`` on the same
    SQLite as the login's writes (one writer at a time: no login waits on the other)."""
    throttle = server.app.state.login_throttle
    assert server.login("zhang", "wrong-password").status_code == 401
    assert server.login("zhang", "wrong-password").status_code == 401
    assert throttle.failures("account:zhang") == 2
    assert server.login("zhang").status_code == 200  # the right password: the count cleared
    assert throttle.failures("account:zhang") == 0
    assert throttle.failures("address:127.0.0.1") == 2  # not the address's
    with server.app.state.sessions() as session:
        keys = set(session.scalars(select(LoginFailureRecord.key)))
    assert keys == {"address:127.0.0.1"}


def test_back_off_answers_429_without_checking_the_password(
    server: Server, hasher: SlowHasher
) -> None:
    for _ in range(3):
        assert server.login("zhang", "wrong-password").status_code == 401
    started = time.monotonic()
    r = server.login("zhang")
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert hasher.running == 0 and time.monotonic() - started < 5


def test_one_address_spraying_many_accounts_is_throttled(server: Server) -> None:
    codes = [server.login(f"user{i}", "wrong-password").status_code for i in range(12)]
    assert codes[:10] == [401] * 10 and 429 in codes[10:], codes


def test_password_checks_run_a_few_at_a_time_and_the_api_keeps_answering(
    server: Server, hasher: SlowHasher
) -> None:
    server.app.state.password_slots = PasswordSlots(2)
    server.app.state.login_throttle = LoginThrottle(
        ThrottlePolicy(free=100, base_s=1, max_s=1, lockout_after=1000, lockout_s=1),
        ThrottlePolicy(free=100, base_s=1, max_s=1, lockout_after=1000, lockout_s=1),
    )
    health: list[int] = []
    with ThreadPoolExecutor(24) as pool:
        logins = [pool.submit(server.login, f"user{i % 12}") for i in range(20)]
        time.sleep(0.5)
        for _ in range(5):
            health.append(httpx.get(f"{server.base}/healthz", timeout=5).status_code)
        codes = [f.result().status_code for f in logins]
    assert codes == [200] * 20
    assert hasher.most == 2  # never more than the slots at once
    assert health == [200] * 5  # /healthz answered meanwhile (within its 5 s timeout)


@pytest.mark.parametrize("path,method", [("/api/auth/login", "POST"), ("/api/feedback", "POST")])
def test_small_routes_refuse_large_bodies_unauthenticated(
    server: Server, path: str, method: str
) -> None:
    r = httpx.request(method, f"{server.base}{path}", content=b"x" * (SMALL_BODY + 1),
                      headers={"Content-Type": "application/json"}, timeout=10)  # fmt: skip
    assert r.status_code == 413, r.text


def test_every_route_refuses_a_body_over_the_limit_declared_or_chunked(server: Server) -> None:
    big = b"x" * (1024 * 1024 + 1)
    for path in ("/api/cameras/x/analytics", "/api/users", "/api/alerts/x/actions"):
        r = httpx.post(f"{server.base}{path}", content=big, timeout=10)
        assert r.status_code == 413, (path, r.status_code)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(64):
            yield b"y" * 65536

    r = httpx.post(f"{server.base}/api/auth/login", content=chunks(), timeout=10)
    assert r.status_code == 413
    r = httpx.put(f"{server.base}/api/cameras/x/analytics", content=chunks(), timeout=10)
    assert r.status_code == 413
    # A body within the limit goes on to authentication as before.
    r = httpx.put(f"{server.base}/api/cameras/x/analytics", json={"zones": []}, timeout=10)
    assert r.status_code == 401
