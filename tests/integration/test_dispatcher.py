"""The dispatcher against a real HTTP receiver: errors, timeouts, retries, one delivery."""

from __future__ import annotations

import time
from pathlib import Path

from alerts.adapters.sql import OutboxRecord, SqlUnitOfWork
from alerts.config import DispatchTarget
from alerts.dispatcher import Dispatcher
from alerts.domain.model import Alert
from alerts.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify
from core.area import Area
from shaobing.db import open_database
from tests.factories import store
from tests.peers.receiver import Receiver

SECRET = "k-0123456789"


def make_alert() -> Alert:
    return Alert(
        id="11111111-2222-3333-4444-555555555555", camera_id="cam", camera_name="村口",
        rule="r", type="intrusion", severity="high", created_at=1.0,
        started_at=0.5, object_class="person", track_ids=[3], zone="fence", area=Area(),
        measured=2.0, threshold=2.0, unit="s", explanation="person in zone", confidence=0.9,
    )  # fmt: skip


def outbox_row(sessions) -> OutboxRecord:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return session.query(OutboxRecord).one()  # type: ignore[no-any-return]


def test_errors_and_timeouts_are_retried_until_delivered_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    target = DispatchTarget(name="centre", url=f"{receiver.url}/in", secret=SECRET,
                            timeout_s=0.5, backoff_initial_s=0.2, backoff_max_s=0.3)  # fmt: skip
    store(sessions, make_alert(), ["centre"])
    dispatcher = Dispatcher(sessions, [target])

    receiver.status = 503  # the centre's API is failing
    dispatcher.dispatch_due()
    row = outbox_row(sessions)
    assert (row.state, row.attempts, row.last_status) == ("pending", 1, 503)
    assert row.next_attempt_at > time.time()
    dispatcher.dispatch_due()  # not due yet: no second request
    assert len(receiver.requests) == 1

    time.sleep(0.4)
    receiver.status, receiver.delay = 200, 1.5  # answers too slowly
    dispatcher.dispatch_due()
    row = outbox_row(sessions)
    assert row.state == "pending" and row.attempts == 2 and "Timeout" in (row.last_error or "")

    time.sleep(0.4)
    receiver.delay = 0.0
    dispatcher.dispatch_due()
    row = outbox_row(sessions)
    assert row.state == "delivered" and row.attempts == 3 and row.delivered_at is not None

    # A restarted dispatcher finds nothing left to send.
    Dispatcher(sessions, [target]).dispatch_due()
    requests = receiver.wait_for(3, timeout=5)
    assert len(requests) == 3
    bodies = {body for _, body, _ in requests}
    assert len(bodies) == 1  # every retry is the same signed body
    for headers, body, path in requests:
        assert path == "/in"
        assert headers[IDEMPOTENCY_HEADER] == (
            "11111111-2222-3333-4444-555555555555:alert.created:1"
        )
        assert verify(body, SECRET, headers[SIGNATURE_HEADER])
    assert "村口".encode() in bodies.pop()
    dispatcher.client.close()
    engine.dispose()


def test_an_expired_lease_is_claimed_again(tmp_path: Path, receiver: Receiver) -> None:
    """A dispatcher killed mid-send leaves its lease; another takes the row once it
    expires, not before."""
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    target = DispatchTarget(name="centre", url=f"{receiver.url}/in", secret=SECRET)
    store(sessions, make_alert(), ["centre"])
    killed = Dispatcher(sessions, [target])
    assert len(killed.claim(target, 10)) == 1  # claimed, then "killed" before sending
    survivor = Dispatcher(sessions, [target])
    assert survivor.claim(target, 10) == []  # the lease still holds
    with sessions.begin() as session:
        session.query(OutboxRecord).update({"lease_until": time.time() - 1})
    survivor.dispatch_due()
    row = outbox_row(sessions)
    assert (row.state, row.attempts, row.lease_owner) == ("delivered", 1, None)
    assert len(receiver.wait_for(1)) == 1
    for d in (killed, survivor):
        d.close()
    engine.dispose()


def test_messages_of_an_alert_keep_their_order(tmp_path: Path, receiver: Receiver) -> None:
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    target = DispatchTarget(name="centre", url=f"{receiver.url}/in", secret=SECRET,
                            backoff_initial_s=0.05, backoff_max_s=0.05)  # fmt: skip
    alert = store(sessions, make_alert(), ["centre"])
    with SqlUnitOfWork(sessions) as uow:
        loaded = uow.alerts.get(alert.id)
        assert loaded is not None
        loaded.apply("acknowledge", actor="op", at=2.0)
        uow.commit()
    dispatcher = Dispatcher(sessions, [target])
    receiver.status = 503
    dispatcher.dispatch_due()  # only #1 is tried: #2 waits behind it
    assert len(receiver.requests) == 1
    receiver.status = 200
    time.sleep(0.1)
    dispatcher.dispatch_due()
    dispatcher.dispatch_due()
    keys = [h[IDEMPOTENCY_HEADER] for h, _, _ in receiver.wait_for(3)]
    assert [k.rsplit(":", 1)[1] for k in keys] == ["1", "1", "2"]
    dispatcher.close()
    engine.dispose()


def test_past_max_attempts_a_message_is_dead(tmp_path: Path, receiver: Receiver) -> None:
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    target = DispatchTarget(name="centre", url=f"{receiver.url}/in", secret=SECRET,
                            max_attempts=2, backoff_initial_s=0.01, backoff_max_s=0.01)  # fmt: skip
    store(sessions, make_alert(), ["centre"])
    dispatcher = Dispatcher(sessions, [target])
    receiver.status = 500
    for _ in range(3):
        dispatcher.dispatch_due()
        time.sleep(0.05)
    row = outbox_row(sessions)
    assert (row.state, row.attempts, row.last_status) == ("dead", 2, 500)
    assert row.dead_at is not None and row.dead_reason == "2 attempts; last: HTTP 500"
    assert len(receiver.requests) == 2
    dispatcher.close()
    engine.dispose()
