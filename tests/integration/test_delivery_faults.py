"""Delivery under faults, against real peers: a hung target beside a healthy one, a
flapping receiver, a 400 that becomes a dead letter and is retried through the API,
and two dispatchers sharing one database."""

from __future__ import annotations

import random
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from accounts.service import create_api_key, create_user
from accounts.store import AuditRecord
from alerts.adapters.sql import OutboxRecord
from alerts.config import DispatchTarget
from alerts.dispatcher import Dispatcher
from alerts.signing import IDEMPOTENCY_HEADER
from api.app import create_app
from api.ports import HubServices
from shaobing.db import open_database
from tests.databases import database
from tests.factories import make_alert, store
from tests.peers.receiver import LOOPBACK, Receiver

SECRET = "k-0123456789"


class HungServer:
    """Accepts TCP connections and never answers (a target whose process is wedged)."""

    def __init__(self) -> None:
        self.sock = socket.create_server((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)  # kept open, never read

    def close(self) -> None:
        try:  # wakes the accepting thread: a plain close would leave the port listening
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for conn in self.conns:
            conn.close()


class Clock:
    """When each idempotency key was stored and when the receiver accepted it (2xx)."""

    def __init__(self) -> None:
        self.stored: dict[str, float] = {}
        self.accepted: Counter[str] = Counter()
        self.first_ok: dict[str, float] = {}
        self.lock = threading.Lock()

    def ok(self, key: str) -> None:
        with self.lock:
            self.accepted[key] += 1
            self.first_ok.setdefault(key, time.time())

    def latencies(self) -> list[float]:
        return [self.first_ok[k] - self.stored[k] for k in self.first_ok]


def percentiles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return statistics.median(values), cuts[98]


class FlappingReceiver(Receiver):
    """A receiver that answers 503 to a random share of requests. ``status`` is read in
    the handler thread right after ``on_request``, so a thread-local ties the two."""

    def __init__(self, clock: Clock, fail_rate: float) -> None:
        self.local = threading.local()
        self.clock, self.fail_rate = clock, fail_rate
        self.rng = random.Random(7)
        super().__init__(on_request=self._decide)

    def _decide(self, headers: dict[str, str], body: bytes, path: str, method: str) -> None:
        self.local.status = 503 if self.rng.random() < self.fail_rate else 200
        if self.local.status == 200:
            self.clock.ok(headers[IDEMPOTENCY_HEADER])

    @property  # type: ignore[override]
    def status(self) -> int:
        return getattr(self.local, "status", 200)

    @status.setter
    def status(self, value: int) -> None:
        """Ignored: the answer is drawn per request."""


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield sessions
    engine.dispose()


def store_alerts(
    sessions: sessionmaker[Session], n: int, targets: list[str], clock: Clock,
    dispatchers: list[Dispatcher], every_s: float = 0.01,
) -> None:  # fmt: skip
    for i in range(1, n + 1):
        alert = store(sessions, make_alert(i), targets)
        clock.stored[f"{alert.id}:alert.created:1"] = time.time()
        for d in dispatchers:
            d.notify()
        time.sleep(every_s)


def wait_until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def states(sessions: sessionmaker[Session], target: str) -> Counter[str]:
    with sessions() as session:
        q = select(OutboxRecord.state).where(OutboxRecord.target == target)
        return Counter(session.execute(q).scalars())


def test_a_hung_target_delays_only_itself(sessions: sessionmaker[Session]) -> None:
    clock = Clock()
    healthy = FlappingReceiver(clock, fail_rate=0.0).start()
    hung = HungServer()
    targets = [
        DispatchTarget(name="healthy", url=f"{healthy.url}/in", secret=SECRET, timeout_s=1),
        DispatchTarget(name="hung", url=f"http://{LOOPBACK}:{hung.port}/in", secret=SECRET,
                       timeout_s=0.5, backoff_initial_s=0.2, backoff_max_s=0.5),
    ]  # fmt: skip
    dispatcher = Dispatcher(sessions, targets, poll_s=0.2)
    dispatcher.start()
    try:
        store_alerts(sessions, 60, ["healthy", "hung"], clock, [dispatcher], every_s=0.03)
        wait_until(lambda: states(sessions, "healthy")["delivered"] == 60, timeout=15)
    finally:
        dispatcher.stop()
        dispatcher.join(timeout=10)
        healthy.stop()
        hung.close()
    p50, p99 = percentiles(clock.latencies())
    print(f"healthy beside hung: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"hung: {len(hung.conns)} connections, {dispatcher.failures} timeouts")  # fmt: skip
    assert set(clock.accepted) == set(clock.stored) and max(clock.accepted.values()) == 1
    assert p99 < 2.0
    assert len(hung.conns) > 2  # timed out and retried
    assert states(sessions, "hung")["pending"] == 60
    with sessions() as session:
        errors = session.execute(
            select(OutboxRecord.last_error).where(
                OutboxRecord.target == "hung", OutboxRecord.attempts > 0
            )  # fmt: skip
        ).scalars()
        assert all("Timeout" in (e or "") for e in errors)


def test_a_flapping_receiver_gets_each_message_once(sessions: sessionmaker[Session]) -> None:
    clock = Clock()
    rx = FlappingReceiver(clock, fail_rate=0.4).start()
    target = DispatchTarget(name="flappy", url=f"{rx.url}/in", secret=SECRET, timeout_s=1,
                            backoff_initial_s=0.05, backoff_max_s=0.2)  # fmt: skip
    dispatcher = Dispatcher(sessions, [target], poll_s=0.05)
    dispatcher.start()
    try:
        store_alerts(sessions, 40, ["flappy"], clock, [dispatcher])
        wait_until(lambda: states(sessions, "flappy")["delivered"] == 40, timeout=20)
    finally:
        dispatcher.stop()
        dispatcher.join(timeout=10)
        rx.stop()
    p50, p99 = percentiles(clock.latencies())
    print(f"flapping (40% 503): p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"{len(rx.requests)} requests for 40 messages")  # fmt: skip
    assert dispatcher.failures > 0  # it did flap
    assert set(clock.accepted) == set(clock.stored)
    assert set(clock.accepted.values()) == {1}  # exactly once per idempotency key


def admin_client(sessions: sessionmaker[Session]) -> TestClient:
    """The real API app, with a machine admin's API key; no hub services needed."""
    with sessions.begin() as session:
        create_user(session, "ops", "admin")
        key = create_api_key(session, "ops", "tests")
    app = create_app(cast(HubServices, None), sessions)
    return TestClient(app, headers={"X-API-Key": key})


def test_a_400_goes_dead_and_is_retried_through_the_api(
    sessions: sessionmaker[Session], receiver: Receiver
) -> None:
    target = DispatchTarget(name="centre", url=f"{receiver.url}/in", secret=SECRET)
    alert = store(sessions, make_alert(1), ["centre"])
    dispatcher = Dispatcher(sessions, [target])
    receiver.status = 400  # the centre rejects our schema: retrying cannot help
    dispatcher.dispatch_due()
    api = admin_client(sessions)

    page = api.get("/api/deliveries", params={"state": "dead", "target": "centre"}).json()
    assert page["total"] == 1
    dead = page["items"][0]
    assert (dead["alert_id"], dead["last_status"], dead["dead_reason"]) == (
        alert.id,
        400,
        "HTTP 400",
    )
    assert api.get("/api/deliveries", params={"state": "pending"}).json()["total"] == 0

    receiver.status = 200  # fixed on their side
    r = api.post(f"/api/deliveries/{dead['id']}/retry")
    assert r.status_code == 200 and r.json()["state"] == "pending" and r.json()["attempts"] == 0
    assert api.post(f"/api/deliveries/{dead['id']}/retry").status_code == 409  # not dead now
    dispatcher.dispatch_due()
    assert states(sessions, "centre") == {"delivered": 1}
    assert len(receiver.wait_for(2)) == 2

    # Another dead letter, given up.
    receiver.status = 404
    store(sessions, make_alert(2), ["centre"])
    dispatcher.dispatch_due()
    (dead2,) = api.get("/api/deliveries").json()["items"]
    assert api.post(f"/api/deliveries/{dead2['id']}/discard").json()["state"] == "discarded"
    assert api.post("/api/deliveries/999999/discard").status_code == 404
    with sessions() as session:
        q = select(AuditRecord.action).where(AuditRecord.action.like("delivery_%"))
        actions = session.execute(q).scalars().all()
    assert sorted(actions) == ["delivery_discard", "delivery_retry"]
    dispatcher.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Both claim paths: SQLite's conditional UPDATE, PostgreSQL's SKIP LOCKED."""
    with database(request.param, tmp_path) as sessions:
        yield sessions


def test_two_dispatchers_never_send_a_row_twice(shared_db: sessionmaker[Session]) -> None:
    sessions = shared_db
    clock = Clock()
    rx = FlappingReceiver(clock, fail_rate=0.0).start()
    rx.delay = 0.01  # requests overlap between the two
    target = DispatchTarget(name="centre", url=f"{rx.url}/in", secret=SECRET, concurrency=4)
    pair = [Dispatcher(sessions, [target], poll_s=0.05) for _ in range(2)]
    for d in pair:
        d.start()
    try:
        store_alerts(sessions, 80, ["centre"], clock, pair, every_s=0.002)
        wait_until(lambda: states(sessions, "centre")["delivered"] == 80, timeout=20)
    finally:
        for d in pair:
            d.stop()
            d.join(timeout=10)
        rx.stop()
    keys = Counter(h[IDEMPOTENCY_HEADER] for h, _, _ in rx.requests)
    assert set(keys) == set(clock.stored) and set(keys.values()) == {1}
    assert all(d.delivered > 0 for d in pair)  # both took part
    print(f"two dispatchers: {pair[0].delivered} + {pair[1].delivered} deliveries")
