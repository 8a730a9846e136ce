"""Which linkage actions an alert sets off (pure: no I/O, no clock of its own)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from core.area import Area
from core.schedule import in_schedule
from linkage.config import LinkageAction, LinkageRule

SEVERITIES = ("info", "low", "medium", "high", "critical")

#: What happened to an action, as the alert's history shows it.
Outcome = Literal[
    "sent",  # handed to the device, which accepted it (PTZ command acknowledged)
    "answered",  # a speaker answered the call and the warning was played
    "failed",  # with the reason
    "skipped",  # not run, with the reason (quiet hours, linkage off, ...)
    "awaiting_confirmation",
    "cancelled",  # an operator declined it, or its confirmation expired
]


@dataclass(frozen=True)
class AlertFacts:
    """What the rules look at (taken from a stored alert)."""

    id: str
    type: str
    camera_id: str
    area: Area
    severity: str
    created_at: float


@dataclass(frozen=True)
class PlannedAction:
    """One action of one rule for one alert, with when it may run."""

    alert_id: str
    camera_id: str  # the alert's camera
    rule: str
    index: int  # position in the rule's actions
    action: LinkageAction
    run_at: float
    confirm: bool

    @property
    def key(self) -> str:
        """Unique per alert × rule × action (a redelivered alert plans the same keys)."""
        return f"{self.alert_id}:{self.rule}:{self.index}"

    @property
    def target_camera(self) -> str:
        """The camera a PTZ or popup action works on (default: the alert's)."""
        return getattr(self.action, "camera", None) or self.camera_id

    def describe(self) -> dict[str, Any]:
        """The action for the history and the API (no secrets: rules hold none)."""
        out: dict[str, Any] = {"rule": self.rule, "key": self.key,
                               **self.action.model_dump(mode="json")}  # fmt: skip
        if self.action.kind in ("ptz_preset", "popup"):
            out["camera"] = self.target_camera
        return out


def matches(rule: LinkageRule, facts: AlertFacts, when: dt.datetime) -> bool:
    """Whether ``rule`` applies to the alert at local time ``when``."""
    return (
        rule.enabled
        and (rule.types is None or facts.type in rule.types)
        and (rule.cameras is None or facts.camera_id in rule.cameras)
        and rule.area.contains(facts.area)
        and severity_at_least(facts.severity, rule.min_severity)
        and in_schedule(rule.schedule, when)
    )


def severity_at_least(severity: str, minimum: str) -> bool:
    rank = SEVERITIES.index(severity) if severity in SEVERITIES else 0
    return rank >= SEVERITIES.index(minimum)


def plan(
    rules: list[LinkageRule], facts: AlertFacts, when: dt.datetime, now: float
) -> list[PlannedAction]:
    """Every action of every matching rule, in rule order, with its start time."""
    out: list[PlannedAction] = []
    for rule in rules:
        if not matches(rule, facts, when):
            continue
        for i, action in enumerate(rule.actions):
            out.append(PlannedAction(facts.id, facts.camera_id, rule.name, i, action,
                                     now + rule.delay_s, rule.confirm))  # fmt: skip
    return out
