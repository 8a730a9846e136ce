"""Delivers alerts from the outbox to dispatch targets over HTTP.

Each outbox row is retried with exponential backoff until the target answers
2xx. The row's state lives in SQL, so pending deliveries resume after a
restart. One row is one message (``alert.created``, ``alert.updated``,
``alert.escalated``) for one target, with its body frozen when it was queued.
Every request carries ``Idempotency-Key: <alert id>:<event>:<sequence>`` so a
receiver can drop the duplicate that a crash between "sent" and "marked
delivered" can cause without dropping later updates, and
``X-Shaobing-Signature: sha256=<HMAC of the body>``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased, sessionmaker

from alerts.adapters.sql import AlertRecord, OutboxRecord, to_domain
from alerts.config import DispatchTarget
from alerts.links import EvidenceLinks
from alerts.payload import alert_payload
from alerts.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

USER_AGENT = "Shaobing-Dispatcher/0.2"


def retry_delay(attempts: int, target: DispatchTarget) -> float:
    base = min(target.backoff_max_s, target.backoff_initial_s * (2 ** max(0, attempts - 1)))
    return base * random.uniform(0.8, 1.2)


def legacy_body(alert: AlertRecord, links: EvidenceLinks | None) -> bytes:
    """The body of a row queued before bodies were stored (schema revision 0001)."""
    payload = {"event": "alert.created", "sequence": 1,
               "alert": alert_payload(to_domain(alert, set()), links=links)}  # fmt: skip
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


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
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.client = httpx.Client(headers={"User-Agent": USER_AGENT}, follow_redirects=False)
        self.delivered = 0
        self.failures = 0

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()

    def notify(self, *_: object) -> None:
        """Called when a new alert is stored: deliver without waiting for the next poll."""
        self.wake.set()

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                try:
                    busy = self.dispatch_due()
                except Exception:  # noqa: BLE001 - keep delivering whatever happens
                    log.exception("dispatcher pass failed")
                    busy = False
                if not busy:
                    self.wake.wait(self.poll_s)
                    self.wake.clear()
        finally:
            self.client.close()

    def dispatch_due(self) -> bool:
        """Try every due outbox row once; True if a full batch was found."""
        now = time.time()
        earlier = aliased(OutboxRecord)
        # A target gets an alert's messages in order: a message waits while an earlier one
        # for the same alert and target is still pending.
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
        with self.sessions() as session:
            rows = list(
                session.execute(
                    select(OutboxRecord.id)
                    .where(
                        OutboxRecord.state == "pending",
                        OutboxRecord.next_attempt_at <= now,
                        ~blocked,
                    )
                    .order_by(OutboxRecord.next_attempt_at, OutboxRecord.id)
                    .limit(self.batch)
                ).scalars()
            )
        for row_id in rows:
            if self.stop_event.is_set():
                break
            self._deliver(row_id)
        return len(rows) == self.batch

    def _deliver(self, row_id: int) -> None:
        with self.sessions() as session:
            row = session.get(OutboxRecord, row_id)
            if row is None or row.state != "pending":
                return
            alert = session.get(AlertRecord, row.alert_id)
            target = self.targets.get(row.target)
            if alert is None or target is None or not target.enabled:
                row.state = "cancelled"
                row.last_error = "alert or target no longer exists"
                session.commit()
                return
            body = row.body.encode() if row.body else legacy_body(alert, self.links)
            key = row.idempotency_key or f"{alert.id}:alert.created:1"
            status, error = self._post(target, key, body)
            row.attempts += 1
            row.last_status = status
            if error is None:
                row.state = "delivered"
                row.delivered_at = time.time()
                row.last_error = None
                self.delivered += 1
                log.info("alert %s %s #%d delivered to %s", alert.id, row.event, row.seq,
                         target.name)  # fmt: skip
            else:
                delay = retry_delay(row.attempts, target)
                row.next_attempt_at = time.time() + delay
                row.last_error = error
                self.failures += 1
                log.warning(
                    "alert %s to %s failed (%s); attempt %d, retry in %.1f s",
                    alert.id,
                    target.name,
                    error,
                    row.attempts,
                    delay,
                )
            session.commit()

    def _post(self, target: DispatchTarget, key: str, body: bytes) -> tuple[int | None, str | None]:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            IDEMPOTENCY_HEADER: key,
            **target.headers,
        }
        if target.secret:
            headers[SIGNATURE_HEADER] = sign(body, target.secret)
        try:
            resp = self.client.post(
                str(target.url), content=body, headers=headers, timeout=target.timeout_s
            )
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        if 200 <= resp.status_code < 300:
            return resp.status_code, None
        return resp.status_code, f"HTTP {resp.status_code}"
