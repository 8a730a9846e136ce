"""The patrol runner (轮巡): visits the cameras in ``analysis: patrol`` on the schedule of
:class:`camera_registry.patrol.PatrolPlan`, at most ``patrol.streams`` at once.

A visit opens the camera through the worker like any other (the same reader, video
quality diagnosis and rules; the detector only if a rule needs objects), watches it for
``look_s`` seconds once the picture arrives, and closes it. A camera that sends no
picture within ``open_timeout_s`` is recorded offline and frees its slot (a hung
handshake holds none). Between visits the camera keeps the state its last visit found
(online, offline, auth_failed, with its faults), so the offline watchdog, the health
view and /metrics treat a patrolled camera like any other.

What a visit compares with the camera's previous visit: its picture (a view turned since,
the video-quality baseline) and, for a camera with a ``stopped_vehicle`` rule, the still
vehicles it saw (analytics/revisit.py): one at the same place in the rule's zone on both
visits, the rule's ``min_duration_s`` or more apart, raises the rule's alert through the
worker like any rule's event (cooldown, evidence of this visit, routing, dispatch). What
the last visit saw is kept per camera in memory and, through ``sightings``, in the
database (table ``patrol_sightings``), so that a restart of the patrol does not forget it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from analytics.config import CameraConfig
from analytics.pipeline import CameraAnalytics
from analytics.revisit import (
    VisitLog,
    VisitSightings,
    compare_visits,
    stopped_event,
    stopped_vehicle_rules,
    watched_classes,
)
from analytics.types import Detections
from analytics.vqd import QualityBaseline
from camera_registry.patrol import PatrolConfig, PatrolPlan, VisitResult
from camera_registry.status import DOWN_STATES
from ingest.reader import SampledFrame
from shaobing.worker import Worker

log = logging.getLogger(__name__)

#: A previous visit longer ago than this many of the camera's intervals (the patrol was
#: stopped, the camera unreachable for days) is not compared with for stopped vehicles.
STALE_AFTER_INTERVALS = 3.0


class SightingsStore(Protocol):
    """Where what each camera's last visit saw is kept across restarts (JSON mappings;
    camera_registry.store.SqlPatrolSightings)."""

    def load(self, camera_id: str) -> dict[str, Any] | None: ...

    def save(self, camera_id: str, visited_at: float, data: dict[str, Any]) -> None: ...


@dataclass
class _Visit:
    started: float
    events_before: int
    cam: CameraConfig
    online_at: float | None = None
    log: VisitLog | None = None  # the still vehicles seen (a camera with stopped_vehicle)
    frame: SampledFrame | None = None  # the last frame analysed, and its analysis
    analytics: CameraAnalytics | None = None
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, frame: SampledFrame, tracked: Detections, analytics: CameraAnalytics) -> None:
        """Each analysed frame of the visit (on an analysis thread)."""
        with self.lock:
            if self.closed or self.log is None:
                return
            self.log.add(tracked, analytics.class_names, frame.wall_ts, frame.frame_size,
                         frame.source_size, analytics.history.look)  # fmt: skip
            self.frame, self.analytics = frame, analytics

    def close(self, now: float) -> VisitSightings | None:
        """What the visit saw of its still vehicles (None: nothing analysed, or no
        stopped_vehicle rule); the frames analysed after this are not looked at."""
        with self.lock:
            self.closed = True
            return self.log.sightings(now) if self.log is not None else None


class Patroller:
    """Visits a worker's patrolled cameras in turn (one thread; the visits' reading and
    analysis run in the worker's own threads)."""

    def __init__(
        self, worker: Worker, cfg: PatrolConfig, clock: Callable[[], float] = time.time,
        sightings: SightingsStore | None = None,
    ) -> None:  # fmt: skip
        """``sightings``: where what each visit saw of its still vehicles is kept across
        restarts (None: in memory only)."""
        self.worker = worker
        self.cfg = cfg
        self.clock = clock
        self.plan = PatrolPlan(cfg)
        self.cameras: dict[str, CameraConfig] = {}
        self.visiting: dict[str, _Visit] = {}
        self.visits = 0
        self._kept: dict[str, tuple[str, float]] = {}  # camera -> (state, since) across visits
        # camera -> the picture its last visit learned (a view turned between visits)
        self._baselines: dict[str, QualityBaseline] = {}
        # camera -> the still vehicles its last visit saw (stopped_vehicle between visits)
        self._sightings: dict[str, VisitSightings] = {}
        self.sightings_store = sightings
        self.tz = ZoneInfo(worker.loaded.config.timezone)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="patrol", daemon=True)

    # -- the cameras ---------------------------------------------------------------------

    def add(self, cam: CameraConfig) -> None:
        with self._lock:
            self.cameras[cam.id] = cam
            entry = self.plan.add(cam.id, cam.programme, "/".join(cam.area.path()), self.clock())
        self.worker.cameras[cam.id] = cam
        self.worker.status.update(cam.id, patrol=True, next_visit_at=entry.due)

    def update(self, cam: CameraConfig) -> None:
        """New zones and rules of a patrolled camera: used from its next visit on."""
        with self._lock:
            if cam.id in self.cameras:
                self.cameras[cam.id] = cam

    def remove(self, camera_id: str) -> None:
        with self._lock:
            self.cameras.pop(camera_id, None)
            self._baselines.pop(camera_id, None)
            self._sightings.pop(camera_id, None)
            self.plan.remove(camera_id)
            visiting = self.visiting.pop(camera_id, None)
        if visiting is not None:
            self.worker.stop_camera(camera_id)

    def __contains__(self, camera_id: object) -> bool:
        return camera_id in self.cameras

    # -- the thread ----------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(10)
        for camera_id in list(self.visiting):
            self.worker.stop_camera(camera_id)
        self.visiting.clear()

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the patrol must outlive any error
                log.exception("patrol pass failed; retrying")

    def tick(self) -> None:
        """End the visits that are over, then begin the ones due, within the budget."""
        now = self.clock()
        for camera_id, visit in list(self.visiting.items()):
            if self._over(camera_id, visit, now):
                self._end(camera_id, visit, now)
        free = self.cfg.streams - len(self.visiting)
        if free <= 0:
            return
        with self._lock:
            due = self.plan.due(now, free)
        for camera_id in due:
            cam = self.cameras.get(camera_id)
            if cam is None:
                continue
            visit = _Visit(now, self.worker.events.get(camera_id, 0), cam)
            self.visiting[camera_id] = visit
            rules = stopped_vehicle_rules(cam.rules)
            if rules:
                visit.log = VisitLog(watched_classes(rules), now)
            self.worker.start_camera(cam, detect_objects=False,
                                     quality_baseline=self._baselines.get(camera_id),
                                     observer=visit.observe if rules else None)  # fmt: skip

    def _over(self, camera_id: str, visit: _Visit, now: float) -> bool:
        st = self.worker.status.snapshot(camera_id)
        state = st.state if st is not None else "starting"
        if state == "online" and visit.online_at is None:
            visit.online_at = now
        if visit.online_at is not None:
            return now - visit.online_at >= self.cfg.look_s
        if state in ("auth_failed", "invalid_config", "finished"):
            return True  # nothing more to see this visit
        return now - visit.started >= self.cfg.open_timeout_s

    def _end(self, camera_id: str, visit: _Visit, now: float) -> None:
        self.visiting.pop(camera_id, None)
        st = self.worker.status.snapshot(camera_id)
        state = st.state if st is not None else "offline"
        since = st.since if st is not None else now
        error: dict[str, object] = {}
        if visit.online_at is None and state not in DOWN_STATES and state != "invalid_config":
            state = "offline"  # no picture within open_timeout_s (a hung handshake)
            error = {"last_error": f"no picture within {self.cfg.open_timeout_s:g} s of a "
                                   "patrol visit", "last_error_at": now}  # fmt: skip
        faults = list(st.faults) if st is not None else []
        self._compare_with_last_visit(camera_id, visit, now)  # before the visit's events count
        events = self.worker.events.get(camera_id, 0) - visit.events_before
        result = VisitResult(state, faults, events)
        slot = self.worker.pool.slots.get(camera_id)
        baseline = slot.analytics.quality_baseline() if slot is not None else None
        if baseline is not None and visit.online_at is not None:
            self._baselines[camera_id] = baseline  # compared with on the next visit
        self.worker.stop_camera(camera_id, state=None, wait=False)  # a hung reader ends alone
        kept = self._kept.get(camera_id)
        if kept is not None and kept[0] == state:
            since = kept[1]  # the same state as the last visit: since then (no flapping)
        self._kept[camera_id] = (state, since)
        with self._lock:
            due = self.plan.done(camera_id, now, result)
        self.visits += 1
        entry = self.plan.cameras.get(camera_id)
        self.worker.status.update(
            camera_id, state=state, since=since, last_visit_at=now, next_visit_at=due,
            visits=entry.visits if entry is not None else 0, patrol=True, **error,
        )  # fmt: skip
        log.debug("patrol visit of %s: %s%s", camera_id, state,
                  f" faults {', '.join(faults)}" if faults else "")  # fmt: skip

    # -- stopped vehicles between two visits ---------------------------------------------

    def _compare_with_last_visit(self, camera_id: str, visit: _Visit, now: float) -> None:
        """Raise the stopped_vehicle alerts of the vehicles this visit found where the last
        one saw them, and keep what this visit saw for the next."""
        seen = visit.close(now)
        if seen is None or visit.frame is None or visit.analytics is None:
            return  # no stopped_vehicle rule, or no picture: the last visit's record stays
        previous = self.last_sightings(camera_id)
        cam = visit.cam
        zones = {z.name: z for z in cam.zones}
        when = dt.datetime.fromtimestamp(seen.ended_at, self.tz)
        entry = self.plan.cameras.get(camera_id)
        max_gap = STALE_AFTER_INTERVALS * entry.interval_s if entry is not None else None
        found = compare_visits(previous, seen, stopped_vehicle_rules(cam.rules), zones, when,
                               max_gap)  # fmt: skip
        for f in found:
            event = stopped_event(f, camera_id, seen.frame_size, visit.frame.pts, self.tz)
            self.worker.raise_event(event, visit.frame, visit.analytics)
            log.info("patrol visit of %s: %s", camera_id, event.explanation)
        self._sightings[camera_id] = seen
        if self.sightings_store is not None:
            try:
                self.sightings_store.save(camera_id, seen.ended_at, seen.to_json())
            except Exception:  # noqa: BLE001 - kept in memory all the same
                log.exception("camera %s: what the patrol visit saw was not stored", camera_id)

    def last_sightings(self, camera_id: str) -> VisitSightings | None:
        """What the camera's last visit saw of its still vehicles (None: nothing known)."""
        known = self._sightings.get(camera_id)
        if known is not None or self.sightings_store is None:
            return known
        try:
            data = self.sightings_store.load(camera_id)  # the first visit since a restart
            return VisitSightings.from_json(data) if data is not None else None
        except Exception:  # noqa: BLE001 - compared with nothing this once
            log.exception("camera %s: what the last patrol visit saw could not be read",
                          camera_id)  # fmt: skip
            return None
