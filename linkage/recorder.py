"""Action results into the alert's history and the audit log, in one transaction
(the SQL adapter of :class:`~linkage.ports.ResultRecorder`)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from accounts.service import audit
from alerts.domain.model import Alert, HistoryEntry, Outgoing
from alerts.feed import AlertFeed
from alerts.ports import ConcurrentUpdate, UnitOfWork
from linkage.ports import ActionFailed, Result
from linkage.rules import AlertFacts

log = logging.getLogger(__name__)

#: The history entry's action for every linkage result (its detail says which outcome).
HISTORY_ACTION = "linkage"
AUDIT_ACTION = "linkage_action"


def facts_of(alert: Alert) -> AlertFacts:
    return AlertFacts(alert.id, alert.type, alert.camera_id, alert.area, alert.severity,
                      alert.created_at)  # fmt: skip


class SqlResultRecorder:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        *,
        targets: Callable[[], set[str]] = set,
        feed: AlertFeed | None = None,
        on_committed: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.uow_factory = uow_factory
        self.targets = targets
        self.feed = feed
        self.on_committed = on_committed
        self.clock = clock

    def read(self, alert_id: str) -> AlertFacts | None:
        """The alert's facts the rules look at (an :class:`AlertReader`)."""
        with self.uow_factory() as uow:
            alert = uow.alerts.get(alert_id)
            return None if alert is None else facts_of(alert)

    def record(self, alert_id: str, actor: str, result: Result) -> None:
        detail: dict[str, Any] = {"outcome": result.outcome, **result.detail}

        def change(alert: Alert, uow: UnitOfWork) -> None:
            alert.new_history.append(HistoryEntry(
                self.clock(), actor, HISTORY_ACTION, alert.status, alert.status,
                result.note, detail,
            ))  # fmt: skip
            session = getattr(uow, "session", None)
            if session is not None:
                audit(session, actor, AUDIT_ACTION, alert_id,
                      f"{result.outcome}: {result.note} "
                      + json.dumps(result.detail, ensure_ascii=False, sort_keys=True))  # fmt: skip

        self._change(alert_id, change)

    def dispatch(self, alert_id: str, target: str, actor: str) -> None:
        if target not in self.targets():
            raise ActionFailed(f"unknown dispatch target {target!r}")

        def change(alert: Alert, uow: UnitOfWork) -> None:
            if target in alert.targets:
                return  # routed there already: it has every message
            alert.targets.add(target)
            alert.seq += 1
            alert.outgoing.append(Outgoing("alert.created", alert.seq, (target,),
                                           {"reason": "linkage", "actor": actor}))  # fmt: skip

        self._change(alert_id, change)
        if self.on_committed is not None:
            self.on_committed()

    def _change(self, alert_id: str, change: Callable[[Alert, UnitOfWork], None]) -> None:
        for attempt in range(1, 6):
            try:
                with self.uow_factory() as uow:
                    alert = uow.alerts.get(alert_id)
                    if alert is None:
                        raise ActionFailed(f"alert {alert_id} not found")
                    change(alert, uow)
                    uow.commit()
                break
            except ConcurrentUpdate:
                if attempt == 5:
                    raise
        if self.feed is not None:
            try:
                self.feed.publish("alert_changed", alert_id)
            except Exception:  # noqa: BLE001 - a live view must not fail a record
                log.exception("alert feed listener failed")
