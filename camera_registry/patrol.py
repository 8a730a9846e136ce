"""Patrol analysis (轮巡): cameras visited in turn instead of read all the time.

A county has tens of thousands of points and cannot analyse them all continuously; each
camera in ``analysis: patrol`` is opened for ``look_s`` seconds on a schedule, its picture
diagnosed (offline, black, frozen, blur, occlusion, colour cast...) and its rules run for
that time, then closed. :class:`PatrolPlan` is the schedule (plain Python, no I/O): when
each camera is due, with a shorter interval for a camera whose last visit found it
offline or faulty; ``shaobing/patrol.py`` runs the visits.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from pydantic import Field

from camera_registry.config import Programme
from core.model import StrictModel


class PatrolConfig(StrictModel):
    """``patrol:`` — the schedule of the cameras in ``analysis: patrol``."""

    streams: int = Field(4, ge=1, le=512, title="visits at once",
                         description="patrol visits in progress at once on each worker")
    look_s: float = Field(12.0, ge=2, le=600, title="seconds per visit",
                          description="how long a camera is watched per visit (the video "
                          "quality faults need 8 s by default to be reported)")
    interval_s: float = Field(1800.0, gt=0, title="visit interval",
                              description="time between two visits of a camera")
    programmes: dict[Programme, float] = Field(
        default_factory=dict, title="interval per programme",
        description="visit interval by programme, e.g. {xueliang: 1800, huiyan: 86400}",
    )
    areas: dict[str, float] = Field(
        default_factory=dict, title="interval per area",
        description="visit interval by area path (示例县/城关镇); the longest matching "
        "path wins over the programme's",
    )
    abnormal_factor: float = Field(
        0.25, gt=0, le=1, title="sooner after a fault",
        description="a camera found offline or faulty is visited again after this share of "
        "its interval",
    )
    open_timeout_s: float = Field(
        15.0, gt=0, le=120,
        description="a camera that has sent no picture this long after its visit began is "
        "recorded offline and its slot freed (a hung handshake holds no slot)",
    )


@dataclass
class VisitResult:
    """What one visit saw."""

    state: str  # online, offline, auth_failed, ...
    faults: list[str] = field(default_factory=list)
    alerts: int = 0

    @property
    def abnormal(self) -> bool:
        return self.state != "online" or bool(self.faults) or self.alerts > 0


@dataclass
class Patrolled:
    camera_id: str
    interval_s: float
    due: float
    visits: int = 0
    last: VisitResult | None = None


class PatrolPlan:
    """When each patrolled camera is due. Cameras added together are spread over the
    first ``look_s × n / streams`` seconds so that a restart does not open them all at
    once; afterwards each is due ``interval`` after its last visit ended (sooner after an
    abnormal one)."""

    def __init__(self, cfg: PatrolConfig) -> None:
        self.cfg = cfg
        self.cameras: dict[str, Patrolled] = {}
        self._heap: list[tuple[float, str]] = []

    def interval_for(self, programme: str, area_path: str) -> float:
        best: tuple[int, float] | None = None
        for prefix, interval in self.cfg.areas.items():
            p = prefix.strip("/")
            if area_path == p or area_path.startswith(p + "/"):
                if best is None or len(p) > best[0]:
                    best = (len(p), interval)
        if best is not None:
            return best[1]
        return float(self.cfg.programmes.get(programme, self.cfg.interval_s))  # type: ignore[call-overload]

    def add(self, camera_id: str, programme: str, area_path: str, now: float) -> Patrolled:
        known = self.cameras.get(camera_id)
        if known is not None:
            return known
        slot = len(self.cameras)
        due = now + math.floor(slot / self.cfg.streams) * self.cfg.look_s
        entry = Patrolled(camera_id, self.interval_for(programme, area_path), due)
        self.cameras[camera_id] = entry
        heapq.heappush(self._heap, (due, camera_id))
        return entry

    def remove(self, camera_id: str) -> None:
        self.cameras.pop(camera_id, None)  # its heap entry is skipped when it comes up

    def due(self, now: float, limit: int) -> list[str]:
        """Up to ``limit`` cameras due now, the most overdue first (taken off the plan
        until :meth:`done`)."""
        out: list[str] = []
        while self._heap and len(out) < limit and self._heap[0][0] <= now:
            due, camera_id = heapq.heappop(self._heap)
            entry = self.cameras.get(camera_id)
            if entry is None or entry.due != due:
                continue  # removed, or rescheduled since
            out.append(camera_id)
        return out

    def done(self, camera_id: str, now: float, result: VisitResult) -> float | None:
        """Record a visit; when the camera is due next (None: no longer patrolled)."""
        entry = self.cameras.get(camera_id)
        if entry is None:
            return None
        entry.visits += 1
        entry.last = result
        interval = entry.interval_s * (self.cfg.abnormal_factor if result.abnormal else 1.0)
        entry.due = now + interval
        heapq.heappush(self._heap, (entry.due, camera_id))
        return entry.due

    def next_due(self) -> float | None:
        while self._heap:
            due, camera_id = self._heap[0]
            entry = self.cameras.get(camera_id)
            if entry is not None and entry.due == due:
                return due
            heapq.heappop(self._heap)
        return None


@dataclass
class PatrolGroup:
    """The patrol's figures for a group of cameras (an area or a programme): 在线率 is
    online / visited, 完好率 online without a picture fault / visited."""

    key: str
    cameras: int = 0
    patrolled: int = 0
    visited: int = 0
    online: int = 0
    intact: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    last_visit_at: float | None = None

    @property
    def online_rate(self) -> float | None:
        return round(self.online / self.visited, 4) if self.visited else None

    @property
    def intact_rate(self) -> float | None:
        return round(self.intact / self.visited, 4) if self.visited else None

    def add(self, state: str | None, faults: list[str], patrol: bool,
            last_visit_at: float | None) -> None:  # fmt: skip
        self.cameras += 1
        if not patrol:
            return
        self.patrolled += 1
        if last_visit_at is None or state is None:
            return
        self.visited += 1
        if self.last_visit_at is None or last_visit_at > self.last_visit_at:
            self.last_visit_at = last_visit_at
        if state == "online":
            self.online += 1
            if not faults:
                self.intact += 1
        kinds = faults if state == "online" else [state]
        for kind in kinds:
            self.faults[kind] = self.faults.get(kind, 0) + 1
