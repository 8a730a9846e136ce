"""Routing: which departments and dispatch targets an alert goes to ("中心吹哨、部门报到"),
and where it goes when it escalates (grid → township → county). Plain Python, no I/O."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from alerts.domain.model import SEVERITIES, TIERS, Severity, tier_of
from core.area import Area, AreaLevel
from core.schedule import ScheduleWindow, in_schedule


@dataclass(frozen=True)
class Department:
    """A department that answers alerts (police station, traffic police, grid workers...)."""

    id: str
    name: str
    kind: str
    level: AreaLevel  # county / township / village / grid: the tier it works at
    areas: tuple[Area, ...]  # the areas it serves
    targets: tuple[str, ...] = ()  # dispatch targets that reach it

    @property
    def tier(self) -> AreaLevel:
        return tier_of(self.level)

    def serves(self, area: Area) -> bool:
        return any(a.contains(area) for a in self.areas)


@dataclass(frozen=True)
class Target:
    """A dispatch target as routing sees it: ``all`` targets get every alert of their
    types; ``routed`` targets only what a routing rule or a department sends them."""

    name: str
    scope: str = "all"  # all | routed
    types: frozenset[str] | None = None

    def takes(self, alert_type: str) -> bool:
        return self.types is None or alert_type in self.types


@dataclass(frozen=True)
class RoutingRule:
    """event type × area × severity × time window → departments and dispatch targets."""

    name: str
    types: frozenset[str] | None = None  # None: every type
    area: Area = field(default_factory=Area)  # empty: everywhere
    min_severity: Severity = "info"
    schedule: tuple[ScheduleWindow, ...] = ()
    departments: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    ack_deadline_s: float | None = None
    resolve_deadline_s: float | None = None
    enabled: bool = True

    def matches(self, alert_type: str, area: Area, severity: Severity, when: dt.datetime) -> bool:
        return (
            self.enabled
            and (self.types is None or alert_type in self.types)
            and self.area.contains(area)
            and SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity)
            and in_schedule(list(self.schedule), when)
        )


@dataclass
class Route:
    """Where a new alert goes and how long it may wait."""

    departments: list[str]
    targets: list[str]
    rules: list[str]
    tier: AreaLevel
    ack_deadline_s: float | None
    resolve_deadline_s: float | None


def _min(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


@dataclass
class Router:
    """Routing decisions over the configured rules, departments and targets."""

    rules: list[RoutingRule]
    departments: dict[str, Department]
    targets: dict[str, Target]
    default_ack_deadline_s: float | None = None
    default_resolve_deadline_s: float | None = None

    def route(self, alert_type: str, area: Area, severity: Severity, when: dt.datetime) -> Route:
        """Every matching rule adds its departments and targets; departments bring their
        own targets; ``all`` targets always take the alerts of their types. The tightest
        deadline of the matching rules applies (the defaults when none sets one)."""
        matched = [r for r in self.rules if r.matches(alert_type, area, severity, when)]
        departments = sorted({d for r in matched for d in r.departments if d in self.departments})
        targets = {t for r in matched for t in r.targets}
        for dep in departments:
            targets.update(self.departments[dep].targets)
        targets.update(n for n, t in self.targets.items() if t.scope == "all")
        targets = {t for t in targets if t in self.targets and self.targets[t].takes(alert_type)}
        tiers = [self.departments[d].tier for d in departments]
        tier = min(tiers, key=TIERS.index) if tiers else tier_of(area.level)
        ack = _min(r.ack_deadline_s for r in matched)
        resolve = _min(r.resolve_deadline_s for r in matched)
        return Route(
            departments=departments,
            targets=sorted(targets),
            rules=[r.name for r in matched],
            tier=tier,
            ack_deadline_s=ack if ack is not None else self.default_ack_deadline_s,
            resolve_deadline_s=(
                resolve if resolve is not None else self.default_resolve_deadline_s
            ),
        )

    def escalation(
        self, alert_type: str, area: Area, tier: AreaLevel
    ) -> tuple[list[str], list[str]]:
        """Departments serving ``area`` at ``tier`` and their targets (the copy upward)."""
        departments = sorted(
            d.id for d in self.departments.values() if d.tier == tier and d.serves(area)
        )
        targets = {t for d in departments for t in self.departments[d].targets}
        return departments, sorted(
            t for t in targets if t in self.targets and self.targets[t].takes(alert_type)
        )
