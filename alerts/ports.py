"""Ports of the alert service: the event bus, the unit of work and its repositories.

Adapters: ``alerts.adapters.memory_bus`` (in-process bus), ``alerts.adapters.sql``
(SQLAlchemy on SQLite or PostgreSQL). A Redis Streams bus implements the same
``EventBus`` (consumer groups give the same ack/redeliver contract).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Protocol

from alerts.domain.model import Alert, EvidenceRef
from alerts.domain.routing import RoutingRule


class ConcurrentUpdate(RuntimeError):
    """Another writer changed the same alert since it was read: read again and retry."""


class Delivery(Protocol):
    """One message handed to a consumer. Call :meth:`ack` only after its effects are
    durable (the alert is committed); :meth:`nack` hands it back for redelivery."""

    @property
    def id(self) -> str: ...

    @property
    def payload(self) -> dict[str, Any]: ...

    @property
    def attempts(self) -> int: ...

    def ack(self) -> None: ...

    def nack(self, delay_s: float = 0.0) -> None: ...


class EventBus(Protocol):
    """At-least-once delivery to every consumer group subscribed to a topic."""

    def subscribe(self, topic: str, group: str) -> None:
        """Create the group (messages published from now on are kept for it)."""

    def publish(self, topic: str, payload: dict[str, Any]) -> str:
        """Publish a JSON-serialisable message; returns its id."""

    def consume(self, topic: str, group: str, timeout_s: float) -> Delivery | None:
        """The next message for ``group``, waiting up to ``timeout_s``; None if none came."""

    def pending(self, topic: str, group: str) -> int:
        """Messages published and not yet acknowledged by ``group``."""


class AlertRepository(Protocol):
    def get(self, alert_id: str) -> Alert | None: ...

    def add(self, alert: Alert) -> None: ...

    def due_for_escalation(self, now: float, limit: int = 100) -> list[Alert]: ...

    def latest_incident(self, camera_id: str, rule: str, zone: str) -> Alert | None:
        """The newest incident of a camera × rule × zone."""

    def count_since(self, camera_id: str, rule: str, since: float) -> int:
        """A camera × rule's incidents opened from ``since`` on (the items shown)."""

    def incident_of(self, alert_id: str) -> str | None:
        """The incident an alert was stored in (None: not stored)."""

    def attach_to_occurrence(self, alert_id: str, kind: str, ref: EvidenceRef) -> bool:
        """Add evidence to an alert stored inside an incident; False if it had it."""


class FeedbackLog(Protocol):
    """Feedback messages already applied, by message id (idempotency)."""

    def get(self, source: str, message_id: str) -> dict[str, Any] | None: ...

    def add(self, source: str, message_id: str, alert_id: str, result: dict[str, Any]) -> None: ...


class RoutingStore(Protocol):
    def list(self) -> list[RoutingRule]: ...


class UnitOfWork(Protocol):
    @property
    def alerts(self) -> AlertRepository: ...

    @property
    def feedback(self) -> FeedbackLog: ...

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class BusUnavailable(RuntimeError):
    """The event bus could not be reached (after its client's own retries)."""
