"""Situation analysis (研判) and camera health figures, for the console and the weekly
meeting.

Counts are grouped in SQL (by area, type, severity, camera, rule, and 15-minute bins
of creation time); the pure functions below turn them into the local-time buckets of
the hub's time zone (every time zone's offset is a multiple of 15 minutes, so a bin
never straddles a local hour), percentiles and rates. Times to acknowledge and to
resolve come from the alert history: the first handling action, and the first
``resolve``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Float, Integer, Select, cast, func, select
from sqlalchemy.orm import Session

from alerts.adapters.sql import AlertHistoryRecord, AlertRecord
from alerts.domain.model import ACTIONS, SEVERITIES
from alerts.queries import Scope, scoped
from camera_registry.status import DOWN_STATES, CameraStatus
from core.area import LEVELS, Area

#: Width of the time bins counted in SQL (seconds).
BIN_S = 900
#: How many cameras and rules the false-alarm rankings list.
TOP = 10
#: History actions that mean someone handled an alert (any of them acknowledges it).
HANDLING = tuple(a for a in ACTIONS if a != "reopen")
#: States in which a camera delivers no usable picture (DOWN_STATES, and a stored
#: config this version cannot use).
NOT_ONLINE: frozenset[str] = DOWN_STATES | {"invalid_config"}

# -- pure: buckets, percentiles, rates --------------------------------------------------


@dataclass(frozen=True)
class Durations:
    p50: float | None
    p90: float | None
    count: int


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of sorted values, linear between ranks (numpy's
    default); the values must not be empty."""
    rank = (len(sorted_values) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def durations(values: Iterable[float]) -> Durations:
    """Median and 90th percentile of durations (seconds); negative ones (clock skew) are 0."""
    ordered = sorted(max(0.0, v) for v in values)
    if not ordered:
        return Durations(None, None, 0)
    return Durations(round(percentile(ordered, 50), 1), round(percentile(ordered, 90), 1),
                     len(ordered))  # fmt: skip


@dataclass
class TimeBuckets:
    by_hour: list[int] = field(default_factory=lambda: [0] * 24)
    by_weekday: list[int] = field(default_factory=lambda: [0] * 7)  # Monday first
    daily: dict[date, int] = field(default_factory=dict)


def local_days(start: float, end: float, tz: ZoneInfo) -> list[date]:
    """Every local date from the one of ``start`` to the one just before ``end``."""
    first = datetime.fromtimestamp(start, tz).date()
    last = datetime.fromtimestamp(max(start, end - 1e-6), tz).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def bucket_times(
    bins: Iterable[tuple[int, int]], tz: ZoneInfo, days: Iterable[date] = ()
) -> TimeBuckets:
    """(bin number, count) of ``BIN_S``-second bins since the epoch → counts by local
    hour of day, weekday and date (``days`` listed even when empty)."""
    out = TimeBuckets(daily={d: 0 for d in days})
    for index, count in bins:
        local = datetime.fromtimestamp(index * BIN_S, tz)
        out.by_hour[local.hour] += count
        out.by_weekday[local.weekday()] += count
        out.daily[local.date()] = out.daily.get(local.date(), 0) + count
    out.daily = dict(sorted(out.daily.items()))
    return out


@dataclass(frozen=True)
class Rate:
    key: str
    name: str
    false_alarms: int
    total: int

    @property
    def rate(self) -> float:
        return round(self.false_alarms / self.total, 3) if self.total else 0.0


def top_false_alarms(rates: Iterable[Rate], top: int = TOP) -> list[Rate]:
    """The ``top`` with the most false alarms (then the highest rate); none without any."""
    ranked = sorted((r for r in rates if r.false_alarms),
                    key=lambda r: (-r.false_alarms, -r.rate, r.key))  # fmt: skip
    return ranked[:top]


def area_label(parts: Iterable[str | None]) -> str:
    """An area path as the API writes it (``示例县/城关镇``); unset parts end it."""
    out: list[str] = []
    for part in parts:
        if not part:
            break
        out.append(part)
    return "/".join(out)


def breakdown_level(scope: Sequence[str]) -> int:
    """How many area levels a breakdown shows below a scope path: one more than it has
    (a county's figures by township, a township's by village), at most the grid."""
    return min(len(scope) + 1, len(LEVELS))


# -- SQL: alert figures ------------------------------------------------------------------


@dataclass
class AlertStats:
    start: float
    end: float
    timezone: str
    total: int
    by_area: list[tuple[str, int]]
    by_type: list[tuple[str, int]]
    by_severity: list[tuple[str, int]]
    by_status: list[tuple[str, int]]
    buckets: TimeBuckets
    false_alarm_cameras: list[Rate]
    false_alarm_rules: list[tuple[Rate, str]]  # with the rule's alert type
    false_alarm_reasons: list[tuple[str, int]]
    ack_time: Durations
    resolve_time: Durations


def _bin_expr(session: Session):  # type: ignore[no-untyped-def]
    """The bin number of an alert's creation time, in the database's own arithmetic
    (PostgreSQL rounds a float cast to integer, SQLite truncates)."""
    scaled = AlertRecord.created_at / BIN_S
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(scaled), Integer)
    return cast(scaled, Integer)


def _grouped(session: Session, base: Select[tuple[AlertRecord]], *columns):  # type: ignore[no-untyped-def]
    sub = base.subquery()
    cols = [sub.c[c] for c in columns]
    stmt = select(*cols, func.count()).group_by(*cols)
    return session.execute(stmt).all()


def alert_stats(
    session: Session,
    scope: Scope,
    start: float,
    end: float,
    timezone: str,
    area: Sequence[str] = (),
) -> AlertStats:
    """Every figure of alerts created in [start, end) in ``scope`` (and ``area``)."""
    tz = ZoneInfo(timezone)
    base = scoped(select(AlertRecord), scope).where(
        AlertRecord.created_at >= start, AlertRecord.created_at < end
    )
    for level, value in zip(LEVELS, area, strict=False):
        base = base.where(getattr(AlertRecord, level) == value)
    scope_path = tuple(area) or (scope.area.path() if scope.area else ())
    depth = breakdown_level(scope_path)

    areas: Counter[str] = Counter()
    for *parts, count in _grouped(session, base, *LEVELS[:depth]):
        areas[area_label(parts) or "(未设置)"] += count
    types = sorted(((t, c) for t, c in _grouped(session, base, "type")), key=lambda x: -x[1])
    severity = dict(_grouped(session, base, "severity"))
    status = dict(_grouped(session, base, "status"))
    total = sum(status.values())

    sub = base.with_only_columns(_bin_expr(session).label("bin")).subquery()
    bins = session.execute(select(sub.c.bin, func.count()).group_by(sub.c.bin)).all()
    buckets = bucket_times(((int(b), int(c)) for b, c in bins), tz, local_days(start, end, tz))

    return AlertStats(
        start=start, end=end, timezone=timezone, total=total,
        by_area=sorted(areas.items(), key=lambda x: (-x[1], x[0])),
        by_type=[(str(t), int(c)) for t, c in types],
        by_severity=[(s, int(severity.get(s, 0))) for s in SEVERITIES],
        by_status=sorted(((str(s), int(c)) for s, c in status.items()), key=lambda x: -x[1]),
        buckets=buckets,
        false_alarm_cameras=_camera_rates(session, base),
        false_alarm_rules=_rule_rates(session, base),
        false_alarm_reasons=_reasons(session, base),
        ack_time=durations(_handling_delays(session, base, HANDLING)),
        resolve_time=durations(_handling_delays(session, base, ("resolve",))),
    )  # fmt: skip


def _false(sub):  # type: ignore[no-untyped-def]
    return func.sum(cast(sub.c.status == "false_alarm", Integer))


def _camera_rates(session: Session, base: Select[tuple[AlertRecord]]) -> list[Rate]:
    sub = base.subquery()
    rows = session.execute(
        select(sub.c.camera_id, func.max(sub.c.camera_name), _false(sub), func.count())
        .group_by(sub.c.camera_id)
    ).all()  # fmt: skip
    return top_false_alarms(Rate(c, n or c, int(f or 0), int(t)) for c, n, f, t in rows)


def _rule_rates(session: Session, base: Select[tuple[AlertRecord]]) -> list[tuple[Rate, str]]:
    sub = base.subquery()
    rows = session.execute(
        select(sub.c.rule, func.max(sub.c.type), _false(sub), func.count()).group_by(sub.c.rule)
    ).all()
    types = {r: str(t) for r, t, _, _ in rows}
    ranked = top_false_alarms(Rate(r, r, int(f or 0), int(t)) for r, _, f, t in rows)
    return [(rate, types[rate.key]) for rate in ranked]


def _reasons(session: Session, base: Select[tuple[AlertRecord]]) -> list[tuple[str, int]]:
    sub = base.where(AlertRecord.status == "false_alarm").subquery()
    rows = session.execute(
        select(sub.c.false_alarm_reason, func.count()).group_by(sub.c.false_alarm_reason)
    ).all()
    counted = [(str(r or "(未填写)"), int(c)) for r, c in rows]
    return sorted(counted, key=lambda x: (-x[1], x[0]))[:TOP]


def _handling_delays(
    session: Session, base: Select[tuple[AlertRecord]], actions: Sequence[str]
) -> list[float]:
    """Seconds from each alert's creation to its first history entry among ``actions``."""
    sub = base.with_only_columns(AlertRecord.id, AlertRecord.created_at).subquery()
    first = (
        select(AlertHistoryRecord.alert_id, func.min(AlertHistoryRecord.at).label("at"))
        .where(AlertHistoryRecord.action.in_(list(actions)))
        .group_by(AlertHistoryRecord.alert_id)
        .subquery()
    )
    delay = cast(first.c.at - sub.c.created_at, Float)
    rows = session.execute(select(delay).join_from(sub, first, first.c.alert_id == sub.c.id))
    return [float(d) for (d,) in rows]


# -- camera health -----------------------------------------------------------------------


@dataclass(frozen=True)
class CameraFacts:
    """What camera health needs of a camera record."""

    camera_id: str
    name: str
    area: Area
    programme: str
    enabled: bool


@dataclass(frozen=True)
class Availability:
    key: str
    total: int
    online: int

    @property
    def rate(self) -> float:
        return round(self.online / self.total, 3) if self.total else 0.0


@dataclass(frozen=True)
class Faulty:
    camera: CameraFacts
    state: str
    last_error: str | None
    since: float | None
    faults: list[str]


@dataclass
class CameraHealth:
    total: int
    online: int
    disabled: int
    by_area: list[Availability]
    by_programme: list[Availability]
    faulty: list[Faulty]
    analysed_fps: list[tuple[str, float]]

    @property
    def rate(self) -> float:
        return round(self.online / self.total, 3) if self.total else 0.0


def is_online(status: CameraStatus | None) -> bool:
    """A camera delivering pictures: a known state, not a down one."""
    return status is not None and status.state not in NOT_ONLINE


def camera_health(
    cameras: Sequence[CameraFacts],
    statuses: dict[str, CameraStatus],
    scope: Sequence[str] = (),
) -> CameraHealth:
    """Online rate overall, by area (one level below ``scope``) and by programme; the
    cameras that are down, unknown or whose picture is faulty. Disabled cameras are
    counted apart, not in the rate."""
    depth = breakdown_level(scope)
    areas: dict[str, list[int]] = {}
    programmes: dict[str, list[int]] = {}
    faulty: list[Faulty] = []
    disabled = online = 0
    fps: list[tuple[str, float]] = []
    for cam in sorted(cameras, key=lambda c: c.camera_id):
        if not cam.enabled:
            disabled += 1
            continue
        status = statuses.get(cam.camera_id)
        up = is_online(status)
        online += up
        label = area_label(cam.area.path()[:depth]) or "(未设置)"
        for table, key in ((areas, label), (programmes, cam.programme)):
            counts = table.setdefault(key, [0, 0])
            counts[0] += 1
            counts[1] += up
        fps.append((cam.camera_id, status.analysed_fps if status else 0.0))
        if not up or (status is not None and status.faults):
            faulty.append(Faulty(
                cam, status.state if status else "unknown",
                status.last_error if status else None, status.since if status else None,
                list(status.faults) if status else [],
            ))  # fmt: skip
    total = len(cameras) - disabled
    return CameraHealth(
        total=total, online=online, disabled=disabled,
        by_area=[Availability(k, t, o) for k, (t, o) in sorted(areas.items())],
        by_programme=[Availability(k, t, o) for k, (t, o) in sorted(programmes.items())],
        faulty=faulty, analysed_fps=fps,
    )  # fmt: skip
