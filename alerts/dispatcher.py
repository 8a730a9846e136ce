"""Delivers alerts from the outbox to dispatch targets through connectors.

One outbox row is one message (``alert.created``, ``alert.updated``,
``alert.escalated``) for one target, with its body frozen when it was queued. Rows
are retried with exponential backoff until the target takes them; the state lives in
SQL, so pending deliveries resume after a restart.

Never stalls: each target has its own small thread pool (``concurrency``), so a slow
or dead target delays only itself. No database session is held across network I/O:
rows are claimed in one short transaction (a lease: ``lease_owner``, ``lease_until``),
sent, and the result recorded in another. Two dispatchers on one database never send
the same row at once (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; everywhere: a
conditional UPDATE that only takes a free or expired lease); a killed dispatcher's
rows are taken again once their lease expires. A target gets an alert's messages in
order: a message waits while an earlier one for the same alert and target is pending.

Answers that retrying cannot fix (4xx other than 408/425/429, a template error) and
rows past the target's ``max_attempts`` become ``dead`` letters, listed and retried
through ``/api/deliveries``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from alerts.adapters.sql import AlertRecord, OutboxRecord, to_domain
from alerts.config import DispatchTarget
from alerts.connectors import Connector, Message, Result, make_connector
from alerts.links import EvidenceLinks
from alerts.payload import alert_payload
from core import metrics

log = logging.getLogger(__name__)

USER_AGENT = "Shaobing-Dispatcher/0.3"
#: Lease beyond the target's timeout: the send itself plus recording its result.
LEASE_MARGIN_S = 30.0
#: How often the running dispatcher cancels rows of targets no longer configured.
ORPHAN_CHECK_S = 30.0


def retry_delay(attempts: int, target: DispatchTarget) -> float:
    base = min(target.backoff_max_s, target.backoff_initial_s * (2 ** max(0, attempts - 1)))
    return base * random.uniform(0.8, 1.2)


def lease_s(target: DispatchTarget) -> float:
    return target.timeout_s * 2 + LEASE_MARGIN_S


def legacy_body(alert: AlertRecord, links: EvidenceLinks | None) -> bytes:
    """The body of a row queued before bodies were stored (schema revision 0001)."""
    payload = {"event": "alert.created", "sequence": 1,
               "alert": alert_payload(to_domain(alert, set()), links=links)}  # fmt: skip
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def dispatcher_id() -> str:
    """Unique per dispatcher instance (two in one process must not share leases)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class TargetLane:
    """One target's connector and thread pool, and how many of its rows are in flight."""

    def __init__(self, target: DispatchTarget, connector: Connector) -> None:
        self.target = target
        self.connector = connector
        self.pool = ThreadPoolExecutor(
            target.concurrency, thread_name_prefix=f"dispatch-{target.name}"
        )
        self.in_flight = 0
        self.lock = threading.Lock()

    def free(self) -> int:
        with self.lock:
            return self.target.concurrency - self.in_flight


class Dispatcher(threading.Thread):
    def __init__(
        self,
        sessions: sessionmaker[Session],
        targets: list[DispatchTarget],
        *,
        links: EvidenceLinks | None = None,
        poll_s: float = 1.0,
        batch: int = 20,
    ) -> None:
        super().__init__(name="dispatcher", daemon=True)
        self.sessions = sessions
        self.targets = {t.name: t for t in targets}
        self.links = links
        self.poll_s = poll_s
        self.batch = batch
        self.id = dispatcher_id()
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.client = httpx.Client(headers={"User-Agent": USER_AGENT}, follow_redirects=False)
        self.lanes = {t.name: TargetLane(t, make_connector(t, self.client))
                      for t in targets if t.enabled}  # fmt: skip
        self._status_pool = ThreadPoolExecutor(1, thread_name_prefix="camera-status")
        self.delivered = 0
        self.failures = 0
        self.dead = 0
        self._counts = threading.Lock()
        self._orphans_checked = float("-inf")
        bind = sessions.kw.get("bind")
        self._postgres = bind is not None and bind.dialect.name == "postgresql"

    # -- lifecycle ---------------------------------------------------------------------

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()

    def camera_status(self, camera_id: str, status: dict[str, Any]) -> None:
        """Hand a camera's new state to the targets that publish states (MQTT, retained);
        never waits. One thread sends them all, in order: the last state stays retained."""
        for lane in self.lanes.values():
            publish = getattr(lane.connector, "publish_status", None)
            if publish is not None:
                try:
                    self._status_pool.submit(publish, camera_id, status)
                except RuntimeError:  # shutting down
                    return

    def notify(self, *_: object) -> None:
        """Called when a new alert is stored: deliver without waiting for the next poll."""
        self.wake.set()

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                try:
                    busy = self.pump()
                except Exception:  # noqa: BLE001 - keep delivering whatever happens
                    log.exception("dispatcher pass failed")
                    busy = False
                if not busy:
                    self.wake.wait(self.poll_s)
                    self.wake.clear()
        finally:
            self.close()

    def close(self) -> None:
        """Wait for messages in flight (each bounded by its timeout), then let go."""
        self._status_pool.shutdown(wait=True)
        for lane in self.lanes.values():
            lane.pool.shutdown(wait=True, cancel_futures=True)
            lane.connector.close()
        self.client.close()

    # -- one pass ----------------------------------------------------------------------

    def pump(self) -> bool:
        """Claim due rows for every target with a free worker and hand them over without
        waiting; True if some target filled all its free workers (more may be due)."""
        if time.monotonic() - self._orphans_checked > ORPHAN_CHECK_S:
            self.cancel_orphans()  # a write: not on every pass (each completion wakes one)
            self._orphans_checked = time.monotonic()
        full = False
        for lane in self.lanes.values():
            free = lane.free()
            if free <= 0:
                continue
            messages = self.claim(lane.target, free)
            for message in messages:
                self._submit(lane, message, on_done=lambda: self.wake.set())
            full = full or len(messages) == free
        return full

    def dispatch_due(self) -> bool:
        """Claim and send every due row once (up to ``batch`` per target), waiting for
        the answers; True if a full batch was found. For tests and one-shot use."""
        self.cancel_orphans()
        futures: list[Future[None]] = []
        full = False
        for lane in self.lanes.values():
            messages = self.claim(lane.target, self.batch)
            futures += [self._submit(lane, m) for m in messages]
            full = full or len(messages) == self.batch
        wait(futures)
        return full

    def _submit(
        self, lane: TargetLane, message: Message, on_done: Callable[[], None] | None = None
    ) -> Future[None]:
        with lane.lock:
            lane.in_flight += 1

        def deliver() -> None:
            try:
                self.deliver(lane, message)
            finally:
                with lane.lock:
                    lane.in_flight -= 1
                if on_done:
                    on_done()

        return lane.pool.submit(deliver)

    # -- claiming ----------------------------------------------------------------------

    def cancel_orphans(self) -> None:
        """Rows for targets no longer configured (or disabled) are never sent."""
        with self.sessions() as session:
            session.execute(
                update(OutboxRecord)
                .where(
                    OutboxRecord.state == "pending", OutboxRecord.target.not_in(list(self.lanes))
                )
                .values(state="cancelled", last_error="target no longer exists or is disabled")
            )
            session.commit()

    def claim(self, target: DispatchTarget, limit: int) -> list[Message]:
        """Lease up to ``limit`` due rows of ``target`` in one short transaction."""
        now = time.time()
        with self.sessions() as session:
            query = self._due(target.name, now, limit)
            if self._postgres:
                query = query.with_for_update(skip_locked=True, of=OutboxRecord)
            ids = list(session.execute(query).scalars())
            if not self._postgres:
                # End the read: a write in the same SQLite transaction would fail outright
                # if another dispatcher wrote meanwhile; a fresh one waits for the lock.
                session.commit()
            claimed = [i for i in ids if self._take(session, i, now, now + lease_s(target))]
            session.commit()
            return [m for i in claimed if (m := self._message(session, i)) is not None]

    def _due(self, target: str, now: float, limit: int):  # type: ignore[no-untyped-def]
        earlier = aliased(OutboxRecord)
        blocked = (
            select(earlier.id)
            .where(
                earlier.alert_id == OutboxRecord.alert_id,
                earlier.target == OutboxRecord.target,
                earlier.state == "pending",
                earlier.seq < OutboxRecord.seq,
            )
            .exists()
        )
        return (
            select(OutboxRecord.id)
            .where(
                OutboxRecord.target == target,
                OutboxRecord.state == "pending",
                OutboxRecord.next_attempt_at <= now,
                or_(OutboxRecord.lease_until.is_(None), OutboxRecord.lease_until < now),
                ~blocked,
            )
            .order_by(OutboxRecord.next_attempt_at, OutboxRecord.id)
            .limit(limit)
        )

    def _take(self, session: Session, row_id: int, now: float, until: float) -> bool:
        """The conditional UPDATE that makes a claim exclusive: it matches only while the
        row is pending and its lease free or expired (another dispatcher may have won)."""
        result = session.execute(
            update(OutboxRecord)
            .where(
                OutboxRecord.id == row_id,
                OutboxRecord.state == "pending",
                or_(OutboxRecord.lease_until.is_(None), OutboxRecord.lease_until < now),
            )
            .values(lease_owner=self.id, lease_until=until)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]

    def _message(self, session: Session, row_id: int) -> Message | None:
        row = session.get(OutboxRecord, row_id)
        assert row is not None
        alert = session.get(AlertRecord, row.alert_id)
        if alert is None:
            session.commit()
            session.execute(
                update(OutboxRecord).where(OutboxRecord.id == row_id)
                .values(state="cancelled", last_error="alert no longer exists",
                        lease_owner=None, lease_until=None)
            )  # fmt: skip
            session.commit()
            return None
        body = row.body.encode() if row.body else legacy_body(alert, self.links)
        return Message(
            row_id=row.id, alert_id=row.alert_id, target=row.target, event=row.event,
            seq=row.seq, idempotency_key=row.idempotency_key or f"{alert.id}:alert.created:1",
            body=body, attempts=row.attempts,
        )  # fmt: skip

    # -- sending and recording -----------------------------------------------------------

    def deliver(self, lane: TargetLane, message: Message) -> None:
        try:
            result = lane.connector.send(message)
        except Exception as exc:  # noqa: BLE001 - a connector bug is a failed attempt
            log.exception("connector %s failed", lane.target.name)
            result = Result(ok=False, error=f"{type(exc).__name__}: {exc}")
        try:
            self.record(lane.target, message, result)
        except Exception:  # noqa: BLE001 - the lease expires and the row is sent again
            log.exception("recording delivery of outbox row %d failed", message.row_id)

    def record(self, target: DispatchTarget, message: Message, result: Result) -> None:
        """Store the answer, only while this dispatcher still holds the lease.

        One UPDATE, no read first: on SQLite a read-then-write transaction fails outright
        when another dispatcher wrote in between, where a lone write waits its turn."""
        now = time.time()
        attempts = message.attempts + 1  # nobody else writes the row while we lease it
        values: dict[str, object] = {"attempts": attempts, "last_status": result.status,
                                     "lease_owner": None, "lease_until": None}  # fmt: skip
        if result.ok:
            values |= {"state": "delivered", "delivered_at": now, "last_error": None}
            outcome = "delivered"
        elif not result.retryable or attempts >= target.max_attempts:
            reason = result.error if not result.retryable else (
                f"{attempts} attempts; last: {result.error}")  # fmt: skip
            values |= {"state": "dead", "dead_at": now, "dead_reason": reason,
                       "last_error": result.error}  # fmt: skip
            outcome = "dead"
            log.error("alert %s %s #%d to %s is dead: %s", message.alert_id, message.event,
                      message.seq, target.name, reason)  # fmt: skip
        else:
            delay = retry_delay(attempts, target)
            values |= {"next_attempt_at": now + delay, "last_error": result.error}
            outcome = "failures"
            log.warning("alert %s to %s failed (%s); attempt %d, retry in %.1f s",
                        message.alert_id, target.name, result.error, attempts, delay)  # fmt: skip
        with self.sessions() as session:
            done = session.execute(
                update(OutboxRecord)
                .where(
                    OutboxRecord.id == message.row_id,
                    OutboxRecord.lease_owner == self.id,
                    OutboxRecord.state == "pending",
                )  # fmt: skip
                .values(**values)
            )
            session.commit()
        if done.rowcount != 1:  # type: ignore[attr-defined]
            log.warning("outbox row %d: lease lost before its result was stored", message.row_id)
            return
        self._count(outcome)
        metrics.DELIVERIES.labels(target.name, outcome).inc()
        if result.ok and message.event == "alert.created":
            metrics.observe_latency("delivered", _created_at(message.body), now)

    def _count(self, name: str) -> None:
        with self._counts:
            setattr(self, name, getattr(self, name) + 1)


def _created_at(body: bytes) -> float | None:
    """The alert's ``created_at`` (when its rule fired) in a queued body, if readable."""
    try:
        value = json.loads(body)["alert"]["created_at"]
        return float(value) if isinstance(value, int | float) else None
    except (ValueError, KeyError, TypeError):
        return None
