"""The alert and its lifecycle: 受理 → 分流 → 处置 → 反馈 → 归档.

Plain Python, no I/O. An :class:`Alert` changes only through its methods, which
check the transition, record a :class:`HistoryEntry` (who, when, what, note) and
queue an :class:`Outgoing` message for the dispatch targets; the service layer
persists the alert, its new history and its messages in one unit of work.

States::

    new ──acknowledge──▶ acknowledged ──dispatch──▶ dispatched ──start──▶ in_progress
     │                        │                         │                    │
     └────────────── resolve / false_alarm (any open state) ─────────────────┘
                                      │
    resolved | false_alarm ──reopen──▶ acknowledged
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from alerts.domain.incidents import MAX_TRACK_IDS, Occurrence
from core.area import LEVELS, Area, AreaLevel
from core.vocabulary import SEVERITIES, Severity

Status = Literal["new", "acknowledged", "dispatched", "in_progress", "resolved", "false_alarm"]
STATUSES: tuple[Status, ...] = (
    "new", "acknowledged", "dispatched", "in_progress", "resolved", "false_alarm",
)  # fmt: skip
OPEN_STATUSES: frozenset[Status] = frozenset({"new", "acknowledged", "dispatched", "in_progress"})
CLOSED_STATUSES: frozenset[Status] = frozenset({"resolved", "false_alarm"})

Action = Literal["acknowledge", "dispatch", "start", "resolve", "false_alarm", "reopen"]
ACTIONS: tuple[Action, ...] = (
    "acknowledge", "dispatch", "start", "resolve", "false_alarm", "reopen",
)  # fmt: skip

#: action -> (states it is valid from, state it leads to)
TRANSITIONS: dict[Action, tuple[frozenset[Status], Status]] = {
    "acknowledge": (frozenset({"new"}), "acknowledged"),
    "dispatch": (OPEN_STATUSES, "dispatched"),
    "start": (frozenset({"acknowledged", "dispatched"}), "in_progress"),
    "resolve": (OPEN_STATUSES, "resolved"),
    "false_alarm": (OPEN_STATUSES, "false_alarm"),
    "reopen": (CLOSED_STATUSES, "acknowledged"),
}


#: The dispatch tiers an alert escalates through: village and grid are one tier.
TIERS: tuple[AreaLevel, ...] = ("grid", "township", "county")


def tier_of(level: AreaLevel | None) -> AreaLevel:
    """The escalation tier of an area level (village and grid share the lowest)."""
    if level in ("village", "grid"):
        return "grid"
    return level or "county"


def raise_severity(severity: Severity) -> Severity:
    return SEVERITIES[min(SEVERITIES.index(severity) + 1, len(SEVERITIES) - 1)]


class TransitionError(ValueError):
    """An action that is not valid in the alert's current state (or lacks what it needs)."""


@dataclass(frozen=True)
class EvidenceRef:
    """A file of evidence: where it is (a path in the evidence store) and its SHA-256."""

    path: str
    sha256: str
    start: float | None = None  # a clip's first and last moment (alert clock), else None
    end: float | None = None


@dataclass(frozen=True)
class HistoryEntry:
    at: float
    actor: str
    action: str  # an Action, or created / escalated / notified
    from_status: Status | None
    to_status: Status
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outgoing:
    """A message about this alert for dispatch targets (becomes outbox rows)."""

    event: str  # alert.created | alert.updated | alert.escalated
    seq: int  # per alert, 1 for alert.created
    targets: tuple[str, ...]
    change: dict[str, Any] = field(default_factory=dict)

    def idempotency_key(self, alert_id: str) -> str:
        """Unique per message: a receiver that drops repeated keys still sees every update."""
        return f"{alert_id}:{self.event}:{self.seq}"


@dataclass
class Deadlines:
    """How long an alert may stay unacknowledged / unresolved before it escalates."""

    ack_s: float | None = None
    resolve_s: float | None = None


@dataclass
class Alert:
    """An alert: what was seen, where, its evidence, and its handling."""

    id: str
    camera_id: str
    camera_name: str
    rule: str
    type: str
    severity: Severity
    created_at: float
    started_at: float
    object_class: str
    track_ids: list[int]
    zone: str
    area: Area
    measured: float
    threshold: float
    unit: str
    explanation: str
    confidence: float
    box: list[float] | None = None
    pts: float = 0.0
    camera_gb28181_id: str | None = None  # the camera's GB/T 28181 channel id, if it has one
    details: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, EvidenceRef] = field(default_factory=dict)
    status: Status = "new"
    department_id: str | None = None
    assignee: str | None = None
    departments: set[str] = field(default_factory=set)  # every one routed/dispatched/escalated
    targets: set[str] = field(default_factory=set)  # dispatch targets that follow this alert
    tier: AreaLevel = "county"
    escalation_level: int = 0
    deadlines: Deadlines = field(default_factory=Deadlines)
    acknowledged_at: float | None = None
    resolved_at: float | None = None
    false_alarm_reason: str | None = None
    last_escalated_at: float | None = None
    updated_at: float = 0.0
    seq: int = 0
    # The incident this alert opened (alerts.domain.incidents): how many alerts it
    # gathers, the last one's time and id, whether the hourly cap was passed, and when
    # the last "repeated" message was queued.
    count: int = 1
    last_at: float = 0.0
    last_alert_id: str | None = None
    suppressed: bool = False
    notified_at: float | None = None
    # Changes not yet persisted, drained by the unit of work.
    new_history: list[HistoryEntry] = field(default_factory=list)
    outgoing: list[Outgoing] = field(default_factory=list)
    new_occurrences: list[Occurrence] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.last_at:
            self.last_at = self.created_at
        if self.last_alert_id is None:
            self.last_alert_id = self.id

    # -- creation -------------------------------------------------------------

    def opened(self, actor: str = "system") -> None:
        """Record the creation and queue ``alert.created`` for its targets."""
        self.updated_at = self.created_at
        self.new_history.append(
            HistoryEntry(
                self.created_at,
                actor,
                "created",
                None,
                "new",
                note=self.explanation,
                detail={"departments": sorted(self.departments), "targets": sorted(self.targets)},
            )  # fmt: skip
        )
        self._queue("alert.created", {})
        self.new_occurrences.append(self.occurrence())

    def occurrence(self) -> Occurrence:
        """This alert as the first occurrence of its incident."""
        return Occurrence(self.id, self.created_at, tuple(self.track_ids), self.measured,
                          self.explanation, self.confidence, dict(self.evidence))  # fmt: skip

    # -- incident -------------------------------------------------------------------

    def absorb(
        self, occurrence: Occurrence, *, suppressed: bool, update_interval_s: float, reason: str
    ) -> None:
        """Add a later alert of the same situation to this incident.

        The count, tracks and last time grow; no history entry per alert. Targets hear
        of it at most once per ``update_interval_s`` (``alert.updated``, action
        ``repeated``, with the count); the first alert beyond the hourly cap marks the
        incident suppressed (one history entry and one message), after which it keeps
        counting silently until it is closed.
        """
        at = occurrence.at
        self.count += 1
        if at >= self.last_at:
            self.last_at, self.last_alert_id = at, occurrence.alert_id
        for track in occurrence.track_ids:
            if track not in self.track_ids and len(self.track_ids) < MAX_TRACK_IDS:
                self.track_ids.append(track)
        self.new_occurrences.append(
            Occurrence(occurrence.alert_id, at, occurrence.track_ids, occurrence.measured,
                       occurrence.explanation, occurrence.confidence, occurrence.evidence,
                       suppressed)  # fmt: skip
        )
        self.updated_at = max(self.updated_at, at)
        change = {"action": "repeated", "count": self.count, "last_at": self.last_at,
                  "alert_id": occurrence.alert_id}  # fmt: skip
        if suppressed and not self.suppressed:
            self.suppressed = True
            note = f"{reason}: further alerts are counted, not notified"
            self.new_history.append(HistoryEntry(
                at, "system", "suppressed", self.status, self.status, note,
                {"count": self.count, "reason": reason},
            ))  # fmt: skip
            self._queue("alert.updated", {**change, "action": "suppressed", "suppressed": True})
            self.notified_at = at
            return
        if self.suppressed:
            return
        if self.notified_at is None or at - self.notified_at >= update_interval_s:
            self._queue("alert.updated", change)
            self.notified_at = at

    def attach_evidence(self, kind: str, ref: EvidenceRef, at: float) -> bool:
        """Add evidence made after the alert (its clip); False if it was attached before.

        Not a step of the handling: no history entry (a clip may land after a quick
        resolve) and no message queued; receivers fetch evidence through the API.
        ``at`` is when it was attached (the caller logs it).
        """
        if self.evidence.get(kind) == ref:
            return False
        self.evidence[kind] = ref
        return True

    # -- lifecycle --------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def allowed_actions(self) -> list[Action]:
        return [a for a in ACTIONS if self.status in TRANSITIONS[a][0]]

    def apply(
        self,
        action: Action,
        *,
        actor: str,
        at: float,
        note: str = "",
        department_id: str | None = None,
        assignee: str | None = None,
        reason: str | None = None,
    ) -> HistoryEntry:
        """Move the alert by ``action``; raises :class:`TransitionError` when not allowed."""
        if action not in TRANSITIONS:
            raise TransitionError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        sources, target = TRANSITIONS[action]
        if self.status not in sources:
            allowed = ", ".join(self.allowed_actions()) or "none"
            raise TransitionError(
                f"cannot {action} an alert that is {self.status} (allowed: {allowed})"
            )
        detail: dict[str, Any] = {}
        if action == "dispatch":
            if not department_id:
                raise TransitionError("dispatch needs a department")
            self.department_id, self.assignee = department_id, assignee
            self.departments.add(department_id)
            detail = {"department_id": department_id, "assignee": assignee}
        if action == "false_alarm":
            if not (reason or note).strip():
                raise TransitionError("a false alarm needs a reason (it is used to tune rules)")
            self.false_alarm_reason = (reason or note).strip()
            detail = {"reason": self.false_alarm_reason}
        if self.acknowledged_at is None and action != "reopen":
            self.acknowledged_at = at  # any handling acknowledges the alert
        if target in CLOSED_STATUSES:
            self.resolved_at = at
        if action == "reopen":
            self.resolved_at = None
            self.false_alarm_reason = None
        entry = HistoryEntry(at, actor, action, self.status, target, note, detail)
        self.status = target
        self.updated_at = at
        self.new_history.append(entry)
        change = {"action": action, "actor": actor, "at": at, "note": note,
                  "from": entry.from_status, "to": target, "count": self.count,
                  **detail}  # fmt: skip
        self._queue("alert.updated", change)
        return entry

    # -- escalation -------------------------------------------------------------

    def due_at(self) -> float | None:
        """When the alert escalates next if nobody acts (None: never)."""
        if not self.is_open or (self.next_tier() is None and self.escalation_level > 0):
            return None  # closed, or already escalated up to the county
        since = self.last_escalated_at or self.created_at
        if self.acknowledged_at is None and self.deadlines.ack_s is not None:
            return since + self.deadlines.ack_s
        if self.deadlines.resolve_s is not None:
            return max(since, self.acknowledged_at or since) + self.deadlines.resolve_s
        return None

    def escalate(
        self,
        *,
        at: float,
        reason: str,
        departments: list[str],
        targets: list[str],
        next_tier: AreaLevel | None,
    ) -> HistoryEntry:
        """Raise the severity, copy the alert to the next tier up and re-notify everyone."""
        old = self.severity
        self.severity = raise_severity(old)
        self.escalation_level += 1
        self.last_escalated_at = at
        if next_tier is not None:
            self.tier = next_tier
        self.departments.update(departments)
        self.targets.update(targets)
        detail = {
            "reason": reason, "level": self.escalation_level, "tier": self.tier,
            "severity": [old, self.severity], "departments": sorted(departments),
            "targets": sorted(targets),
        }  # fmt: skip
        note = f"{reason}: copied to {self.tier} level, severity {old} → {self.severity}"
        entry = HistoryEntry(at, "system", "escalated", self.status, self.status, note, detail)
        self.new_history.append(entry)
        self.updated_at = at
        self._queue("alert.escalated", detail)
        return entry

    def next_tier(self) -> AreaLevel | None:
        """The tier above the alert's current one (None at the county)."""
        i = TIERS.index(self.tier)
        return TIERS[i + 1] if i + 1 < len(TIERS) else None

    # -- messages ---------------------------------------------------------------

    def _queue(self, event: str, change: dict[str, Any]) -> None:
        if not self.targets:
            return
        self.seq += 1
        self.outgoing.append(Outgoing(event, self.seq, tuple(sorted(self.targets)), change))

    def drain(self) -> tuple[list[HistoryEntry], list[Outgoing]]:
        """The changes to persist (and forget them); see also :meth:`drain_occurrences`."""
        history, outgoing = self.new_history, self.outgoing
        self.new_history, self.outgoing = [], []
        return history, outgoing

    def drain_occurrences(self) -> list[Occurrence]:
        occurrences, self.new_occurrences = self.new_occurrences, []
        return occurrences


def area_tier(area: Area) -> AreaLevel:
    """The tier that handles alerts from ``area`` when no department is routed."""
    return tier_of(area.level)


__all__ = [
    "ACTIONS", "Action", "Alert", "CLOSED_STATUSES", "Deadlines", "EvidenceRef", "HistoryEntry",
    "LEVELS", "OPEN_STATUSES", "Outgoing", "STATUSES", "SEVERITIES", "Severity", "Status",
    "TIERS", "TRANSITIONS", "TransitionError", "area_tier", "raise_severity", "tier_of",
]  # fmt: skip


#: Feedback statuses a dispatch platform or department reports (受理 / 处置中 / 办结 / 误报).
FEEDBACK_STATUSES: dict[str, str] = {
    "accepted": "accepted", "受理": "accepted",
    "in_progress": "in_progress", "处置中": "in_progress",
    "resolved": "resolved", "办结": "resolved",
    "false_alarm": "false_alarm", "误报": "false_alarm",
}  # fmt: skip


def feedback_action(status: str, current: Status) -> Action:
    """The action a feedback status means for an alert in state ``current``.

    受理 (accepted) acknowledges a new alert, and starts the handling of one that was
    dispatched or acknowledged; 处置中 starts it; 办结 resolves it; 误报 marks it a false
    alarm. Raises :class:`TransitionError` for an unknown status.
    """
    kind = FEEDBACK_STATUSES.get(status)
    if kind is None:
        known = ", ".join(FEEDBACK_STATUSES)
        raise TransitionError(f"unknown feedback status {status!r} (one of {known})")
    if kind == "accepted":
        return "acknowledge" if current == "new" else "start"
    if kind == "in_progress":
        return "start"
    if kind == "resolved":
        return "resolve"
    return "false_alarm"
