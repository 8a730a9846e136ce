"""Escalation: an alert nobody acknowledges (or resolves) within its deadline is
re-notified, raised in severity and copied to the next tier up. Plain Python."""

from __future__ import annotations

from alerts.domain.model import Alert, HistoryEntry
from alerts.domain.routing import Router


def escalate_if_due(alert: Alert, router: Router, now: float) -> HistoryEntry | None:
    """Escalate ``alert`` when its deadline has passed; the history entry, or None."""
    due = alert.due_at()
    if due is None or now < due:
        return None
    if alert.acknowledged_at is None:
        reason = f"not acknowledged within {alert.deadlines.ack_s:g} s"
    else:
        reason = f"not resolved within {alert.deadlines.resolve_s:g} s"
    tier = alert.next_tier()
    departments: list[str] = []
    targets: list[str] = []
    if tier is not None:
        departments, targets = router.escalation(alert.type, alert.area, tier)
        if tier == "township" and not departments:
            # No township department serves this area: go straight to the county.
            tier = "county"
            departments, targets = router.escalation(alert.type, alert.area, tier)
    return alert.escalate(
        at=now, reason=reason, departments=departments, targets=targets, next_tier=tier
    )
