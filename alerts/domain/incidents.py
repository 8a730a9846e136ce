"""Incidents: repeated alerts of one situation are handled once (合并告警).

Alerts of the same camera × rule × zone that follow each other within a gap (per
rule type) are one incident. The first alert opens it (it is the stored
:class:`~alerts.domain.model.Alert`, whose id is the incident's id); later ones are
:class:`Occurrence` s added to it: the count, the tracks, the last time and the
latest evidence grow, no new row reaches the operator. Handling (受理/分派/办结/误报)
applies to the incident. A new incident starts once the previous one is closed or
the gap has passed.

An hourly cap per camera × rule bounds what the operator is shown: once the rule
has opened that many incidents on the camera in the last hour, a further alert
joins the latest incident of its zone (open or closed, gap passed or not) and
marks it *suppressed*; it is still counted and stored, never dropped silently.

Plain Python, no I/O: the service reads the latest incident and the recent count
from its repository and asks :func:`place` what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from alerts.domain.model import Alert, EvidenceRef

#: How long a situation may pause before its next alert opens a new incident, per
#: rule type: short for events that are over quickly (a crossing, an intrusion),
#: longer for states that come and go while they last (a crowd, a fault).
DEFAULT_GAPS_S: dict[str, float] = {
    "intrusion": 60.0,
    "pedestrian_on_road": 60.0,
    "line_crossing": 60.0,
    "wrong_way": 60.0,
    "loitering": 120.0,
    "wandering": 120.0,
    "person_down": 120.0,
    "stopped_vehicle": 300.0,
    "crowd": 300.0,
    "congestion": 600.0,
    "camera_fault": 1800.0,
}
DEFAULT_GAP_S = 60.0
DEFAULT_HOURLY_CAP = 30
CAP_WINDOW_S = 3600.0
MAX_TRACK_IDS = 200  # an incident lists this many distinct tracks at most


@dataclass(frozen=True)
class IncidentPolicy:
    """When alerts join an incident, and how many per hour the operator is shown."""

    enabled: bool = True
    gaps_s: Mapping[str, float] = field(default_factory=dict)  # overrides per rule type
    hourly_cap: int | None = DEFAULT_HOURLY_CAP  # incidents per camera × rule per hour
    hourly_caps: Mapping[str, int | None] = field(default_factory=dict)  # per rule type
    update_interval_s: float = 60.0  # at most one "repeated" message per incident per interval

    def gap_for(self, rule_type: str) -> float:
        if rule_type in self.gaps_s:
            return self.gaps_s[rule_type]
        return DEFAULT_GAPS_S.get(rule_type, DEFAULT_GAP_S)

    def cap_for(self, rule_type: str) -> int | None:
        if rule_type in self.hourly_caps:
            return self.hourly_caps[rule_type]
        return self.hourly_cap


@dataclass(frozen=True)
class Occurrence:
    """One alert inside an incident: when, which tracks, what was measured, evidence."""

    alert_id: str
    at: float
    track_ids: tuple[int, ...] = ()
    measured: float = 0.0
    explanation: str = ""
    confidence: float = 0.0
    evidence: Mapping[str, EvidenceRef] = field(default_factory=dict)
    suppressed: bool = False


@dataclass(frozen=True)
class Placement:
    """What to do with a new alert: open an incident, or join ``incident``."""

    kind: Literal["open", "join"]
    incident: Alert | None = None
    suppressed: bool = False
    reason: str = ""


def over_cap(policy: IncidentPolicy, rule_type: str, recent: int) -> bool:
    """Whether ``recent`` incidents of a camera × rule in the last hour reach its cap."""
    cap = policy.cap_for(rule_type)
    return cap is not None and recent >= cap


def place(
    policy: IncidentPolicy, rule_type: str, at: float, latest: Alert | None, recent: int
) -> Placement:
    """Where an alert of ``rule_type`` at ``at`` goes.

    ``latest``: the newest incident of the same camera × rule × zone (None: none);
    ``recent``: the incidents the camera × rule opened in the hour before ``at``.
    """
    if not policy.enabled or latest is None:
        return Placement("open")
    capped = over_cap(policy, rule_type, recent)
    gap = policy.gap_for(rule_type)
    if latest.is_open and at - latest.last_at <= gap:
        reason = "hourly cap reached" if capped else f"within {gap:g} s of the last alert"
        return Placement("join", latest, suppressed=capped, reason=reason)
    if capped and at - latest.last_at <= CAP_WINDOW_S:
        cap = policy.cap_for(rule_type)
        return Placement("join", latest, suppressed=True,
                         reason=f"hourly cap of {cap} incidents reached")  # fmt: skip
    return Placement("open")


__all__ = [
    "CAP_WINDOW_S", "DEFAULT_GAPS_S", "DEFAULT_GAP_S", "DEFAULT_HOURLY_CAP", "IncidentPolicy",
    "MAX_TRACK_IDS", "Occurrence", "Placement", "over_cap", "place",
]  # fmt: skip
