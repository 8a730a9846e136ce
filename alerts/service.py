"""The alert service: events become alerts, alerts move through their lifecycle.

It consumes event messages from the bus on its own thread (``alerts``), routes
each new alert, and persists the alert, its history and its outbox messages in
one unit of work before acknowledging the message (at-least-once, deduplicated
by the alert id chosen at the source). Commands (acknowledge, dispatch, ...),
signed feedback and the escalation clock go through the same unit of work. The
domain rules live in :mod:`alerts.domain`; this module only orchestrates.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from alerts.domain.escalation import escalate_if_due
from alerts.domain.incidents import CAP_WINDOW_S, IncidentPolicy, Occurrence, place
from alerts.domain.model import (
    Action,
    Alert,
    Deadlines,
    TransitionError,
    feedback_action,
)
from alerts.domain.routing import Router
from alerts.feed import AlertFeed, FeedKind
from alerts.messages import CLIP_KIND, EVENTS_TOPIC, ClipMessage, EventMessage
from alerts.ports import ConcurrentUpdate, Delivery, EventBus, UnitOfWork
from core import metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

CONSUMER_GROUP = "alerts"
OBJECT_CLASS_MAX = 64  # a custom model's class name is cut, never the alert lost


class AlertNotFound(LookupError):
    pass


#: Tries (about 2 minutes with the back-off) before a clip for an alert that is not
#: stored, and not on its way either, is dead-lettered as a poison message.
POISON_ATTEMPTS = 10


class DuplicateFeedback(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result
        super().__init__("feedback message already applied")


def build_alert(message: EventMessage) -> Alert:
    """The domain alert for an event message (not yet routed)."""
    e = message.event
    started = message.created_at - (e.pts - (e.started_pts if e.started_pts is not None else e.pts))
    return Alert(
        id=message.alert_id, camera_id=e.camera_id, camera_name=message.camera_name,
        camera_gb28181_id=message.camera_gb28181_id,
        rule=e.rule, type=e.type, severity=e.severity,  # type: ignore[arg-type]
        created_at=message.created_at, started_at=round(started, 3),
        object_class=e.object_class[:OBJECT_CLASS_MAX], track_ids=list(e.track_ids), zone=e.zone,
        area=message.area, measured=e.measured, threshold=e.threshold, unit=e.unit,
        explanation=e.explanation, confidence=e.confidence,
        box=[round(v, 1) for v in e.box] if e.box else None, pts=e.pts,
        details=dict(e.extra), evidence=dict(message.evidence),
    )  # fmt: skip


@dataclass
class Counters:
    created: int = 0
    joined: int = 0  # alerts added to an open incident instead of opening one
    suppressed: int = 0  # of those, beyond the hourly cap
    duplicates: int = 0
    failed: int = 0
    escalated: int = 0


class AlertService:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        router: Callable[[], Router],
        *,
        timezone: str = "Asia/Shanghai",
        on_committed: Callable[[], None] | None = None,
        feed: AlertFeed | None = None,
        clock: Callable[[], float] = time.time,
        incidents: IncidentPolicy | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.incidents = incidents or IncidentPolicy()
        self.router = router
        self.tz = ZoneInfo(timezone)
        self.on_committed = on_committed
        self.feed = feed
        self.clock = clock
        self.counters = Counters()

    # -- new alerts ---------------------------------------------------------------

    def create(self, message: EventMessage) -> Alert | None:
        """Store the alert for ``message``: it opens an incident (routed), or joins the
        open incident of its camera × rule × zone. The incident, or None if the message
        was stored before."""
        joined: list[bool] = []

        def work() -> Alert | None:
            joined.clear()
            with self.uow_factory() as uow:
                if uow.alerts.incident_of(message.alert_id) is not None or \
                        uow.alerts.get(message.alert_id) is not None:
                    return None  # a redelivered message: stored already
                incident = self._join(uow, message)
                if incident is not None:
                    joined.append(incident.suppressed)
                    uow.commit()
                    return incident
                alert = self._open(message)
                uow.alerts.add(alert)
                uow.commit()
                return alert

        alert = self._retrying(work)
        if alert is None:
            self.counters.duplicates += 1
            return None
        metrics.ALERTS_STORED.inc()
        metrics.observe_latency("stored", message.event.ts)
        if joined:
            self.counters.joined += 1
            self.counters.suppressed += int(joined[0])
            log.debug("alert %s joined incident %s (%d alerts)", message.alert_id, alert.id,
                      alert.count)  # fmt: skip
            self._committed("alert_changed", alert.id)
            return alert
        self.counters.created += 1
        log.info("alert %s %s camera=%s rule=%s → %s: %s", alert.id, alert.type,
                 alert.camera_id, alert.rule, ", ".join(sorted(alert.departments)) or "centre",
                 alert.explanation)  # fmt: skip
        self._committed("alert", alert.id)
        return alert

    def _join(self, uow: UnitOfWork, message: EventMessage) -> Alert | None:
        """The incident the message's alert joined (changed, not committed), or None."""
        if not self.incidents.enabled:
            return None
        e = message.event
        at = message.created_at
        latest = uow.alerts.latest_incident(e.camera_id, e.rule, e.zone)
        if latest is None:
            return None
        recent = uow.alerts.count_since(e.camera_id, e.rule, at - CAP_WINDOW_S)
        placement = place(self.incidents, e.type, at, latest, recent)
        if placement.kind != "join":
            return None
        occurrence = Occurrence(message.alert_id, at, tuple(e.track_ids), e.measured,
                                e.explanation, e.confidence, dict(message.evidence))  # fmt: skip
        latest.absorb(occurrence, suppressed=placement.suppressed,
                      update_interval_s=self.incidents.update_interval_s,
                      reason=placement.reason)  # fmt: skip
        return latest

    def _open(self, message: EventMessage) -> Alert:
        alert = build_alert(message)
        when = dt.datetime.fromtimestamp(alert.created_at, self.tz)
        route = self.router().route(alert.type, alert.area, alert.severity, when)
        alert.departments = set(route.departments)
        alert.department_id = route.departments[0] if len(route.departments) == 1 else None
        alert.targets = set(route.targets)
        alert.tier = route.tier
        alert.deadlines = Deadlines(route.ack_deadline_s, route.resolve_deadline_s)
        if message.evidence_error:
            alert.details = {**alert.details, "evidence_error": message.evidence_error}
        alert.opened()
        return alert

    # -- commands -----------------------------------------------------------------

    def transition(
        self,
        alert_id: str,
        action: Action,
        *,
        actor: str,
        note: str = "",
        department_id: str | None = None,
        assignee: str | None = None,
        reason: str | None = None,
        check: Callable[[Alert], None] | None = None,
    ) -> Alert:
        """Apply ``action``; ``check`` may refuse (raise) after seeing the alert (scope)."""
        departments = self.router().departments

        def work() -> Alert:
            with self.uow_factory() as uow:
                alert = uow.alerts.get(alert_id)
                if alert is None:
                    raise AlertNotFound(alert_id)
                if check is not None:
                    check(alert)  # first: a refused caller learns nothing about departments
                if action == "dispatch" and department_id and department_id not in departments:
                    raise TransitionError(f"unknown department {department_id!r}")
                alert.apply(action, actor=actor, at=self.clock(), note=note,
                            department_id=department_id, assignee=assignee,
                            reason=reason)  # fmt: skip
                if action == "dispatch" and department_id:
                    alert.targets.update(departments[department_id].targets)
                uow.commit()
                return alert

        alert = self._retrying(work)
        log.info("alert %s: %s by %s → %s", alert_id, action, actor, alert.status)
        self._committed("alert_changed", alert_id)
        return alert

    def feedback(
        self,
        source: str,
        message_id: str,
        alert_id: str,
        status: str,
        *,
        actor: str,
        note: str = "",
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Apply a feedback message once; a repeated message id raises
        :class:`DuplicateFeedback` with the first result."""

        def work() -> dict[str, Any]:
            with self.uow_factory() as uow:
                previous = uow.feedback.get(source, message_id)
                if previous is not None:
                    raise DuplicateFeedback(previous)
                alert = uow.alerts.get(alert_id)
                if alert is None:
                    raise AlertNotFound(alert_id)
                action = feedback_action(status, alert.status)
                alert.apply(action, actor=f"{source}:{actor}" if actor else source,
                            at=self.clock(), note=note, reason=reason)  # fmt: skip
                result = {"alert_id": alert_id, "action": action, "status": alert.status}
                uow.feedback.add(source, message_id, alert_id, result)
                uow.commit()
                return result

        result = self._retrying(work)
        self._committed("alert_changed", alert_id)
        return result

    def attach_clip(self, message: ClipMessage) -> bool:
        """Add an evidence clip to its stored alert (False: attached before).

        Raises :class:`AlertNotFound` while the alert is not stored yet: the consumer
        hands the message back to the bus and it is tried again later.
        """

        incident_ids: list[str] = []

        def work() -> bool:
            incident_ids.clear()
            with self.uow_factory() as uow:
                ref = message.ref()
                incident_id = uow.alerts.incident_of(message.alert_id)
                alert = uow.alerts.get(incident_id or message.alert_id)
                if alert is None:
                    raise AlertNotFound(message.alert_id)
                incident_ids.append(alert.id)
                # an alert inside an incident keeps its own clip; its opening alert's clip
                # is also the incident's
                changed = uow.alerts.attach_to_occurrence(message.alert_id, "clip", ref)
                if alert.id == message.alert_id:
                    changed = alert.attach_evidence("clip", ref, self.clock()) or changed
                if changed:
                    uow.commit()
                return changed

        changed = self._retrying(work)
        if changed:
            self._committed("alert_changed", incident_ids[0], deliver=False)
            log.info("alert %s: clip attached (%.1f s, sha256 %s)", message.alert_id,
                     message.end - message.start, message.sha256[:16])  # fmt: skip
        return changed

    def get(self, alert_id: str) -> Alert | None:
        with self.uow_factory() as uow:
            return uow.alerts.get(alert_id)

    # -- escalation ---------------------------------------------------------------

    def escalate_due(self, now: float | None = None) -> int:
        """Escalate every alert whose deadline has passed; how many were escalated."""
        at = self.clock() if now is None else now
        router = self.router()

        def work() -> list[Alert]:
            with self.uow_factory() as uow:
                escalated = [a for a in uow.alerts.due_for_escalation(at)
                             if escalate_if_due(a, router, at) is not None]  # fmt: skip
                if escalated:
                    uow.commit()
                return escalated

        escalated = self._retrying(work)
        if not escalated:
            return 0
        for alert in escalated:
            log.warning("alert %s escalated to %s (level %d, severity %s)", alert.id, alert.tier,
                        alert.escalation_level, alert.severity)  # fmt: skip
        self.counters.escalated += len(escalated)
        self._committed("alert_changed", *(a.id for a in escalated))
        return len(escalated)

    @staticmethod
    def _retrying(work: Callable[[], T], attempts: int = 5) -> T:
        """Run a unit of work again on fresh data when another writer changed its alert."""
        for attempt in range(1, attempts + 1):
            try:
                return work()
            except ConcurrentUpdate:
                if attempt == attempts:
                    raise
                log.info("alert changed concurrently; retrying on fresh data (%d)", attempt)
        raise AssertionError("unreachable")

    def _committed(self, kind: FeedKind, *alert_ids: str, deliver: bool = True) -> None:
        if deliver and self.on_committed is not None:
            self.on_committed()
        if self.feed is not None:
            for alert_id in alert_ids:
                try:
                    self.feed.publish(kind, alert_id)
                except Exception:  # noqa: BLE001 - a live view must not fail a commit
                    log.exception("alert feed listener failed")


class AlertWorkers:
    """The alert service's threads: the event consumer and the escalation clock.

    Neither dies silently: an exception is logged and counted, the message is
    handed back to the bus for a later attempt, and the loop goes on.
    """

    def __init__(
        self,
        service: AlertService,
        bus: EventBus,
        *,
        escalation_interval_s: float = 1.0,
        poison_attempts: int = POISON_ATTEMPTS,
    ) -> None:
        self.service = service
        self.poison_attempts = poison_attempts
        self.bus = bus
        self.escalation_interval_s = escalation_interval_s
        self._stop = threading.Event()
        self.dead_lettered = 0  # messages set aside for good (poison)
        bus.subscribe(EVENTS_TOPIC, CONSUMER_GROUP)
        self._threads = [
            threading.Thread(target=self._consume, name="alerts", daemon=True),
            threading.Thread(target=self._escalate, name="escalation", daemon=True),
        ]

    @property
    def threads(self) -> list[threading.Thread]:
        return list(self._threads)

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the messages already published are handled (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))

    def pending(self) -> int:
        return self.bus.pending(EVENTS_TOPIC, CONSUMER_GROUP)

    def _consume(self) -> None:
        while not self._stop.is_set():
            delivery = self.bus.consume(EVENTS_TOPIC, CONSUMER_GROUP, timeout_s=0.5)
            if delivery is None:
                continue
            try:
                clip = delivery.payload.get("kind") == CLIP_KIND
                message = (ClipMessage.from_dict(delivery.payload) if clip
                           else EventMessage.from_dict(delivery.payload))  # fmt: skip
            except (KeyError, TypeError, ValueError) as exc:  # unreadable: retrying won't help
                self._dead_letter(delivery, f"malformed message: {type(exc).__name__}: {exc}")
                continue
            try:
                if isinstance(message, ClipMessage):
                    self.service.attach_clip(message)
                else:
                    self.service.create(message)
            except AlertNotFound as exc:
                if self._is_poison(delivery, str(exc)):
                    self._dead_letter(delivery, f"clip for alert {exc} which does not exist "
                                                f"({delivery.attempts} attempts)")  # fmt: skip
                    continue
                log.info("clip for alert %s: alert not stored yet (attempt %d)", exc,
                         delivery.attempts)  # fmt: skip
                self._retry_later(delivery)
                continue
            except Exception:  # noqa: BLE001 - retried: the alert must not be lost
                self.service.counters.failed += 1
                delay = min(30.0, 0.5 * 2 ** min(delivery.attempts, 6))
                log.exception("alert from message %s not stored (attempt %d); retry in %.1f s",
                              delivery.id, delivery.attempts, delay)  # fmt: skip
                delivery.nack(delay)
                continue
            delivery.ack()

    def _retry_later(self, delivery: Delivery) -> None:
        delay = min(30.0, 0.5 * 2 ** min(delivery.attempts, 6))
        delivery.nack(delay)

    def _is_poison(self, delivery: Delivery, alert_id: str) -> bool:
        """A clip whose alert is not stored after ``POISON_ATTEMPTS`` tries and whose event
        is not waiting on the bus either (a full disk delays an alert; it never drops it)."""
        if delivery.attempts < self.poison_attempts:
            return False
        holds = getattr(self.bus, "holds", None)
        return holds is None or not holds(
            EVENTS_TOPIC, lambda p: p.get("kind") != CLIP_KIND and p.get("alert_id") == alert_id
        )

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Never retried again: set aside with its reason (the spool's ``dead/``), counted."""
        self.dead_lettered += 1
        metrics.DEAD_LETTERED.inc()
        dead_letter = getattr(self.bus, "dead_letter", None)
        if dead_letter is not None:
            dead_letter(EVENTS_TOPIC, delivery.payload, reason)
        else:
            log.error("message %s dead-lettered (%s): %s", delivery.id, reason,
                      str(delivery.payload)[:2000])  # fmt: skip
        delivery.ack()

    def _escalate(self) -> None:
        while not self._stop.wait(self.escalation_interval_s):
            try:
                self.service.escalate_due()
            except Exception:  # noqa: BLE001 - the clock keeps ticking
                log.exception("escalation check failed; retrying")
