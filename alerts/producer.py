"""The worker side of alerts: cooldown, evidence rendered next to the frame, publish.

An analysis worker hands an event over in microseconds (a cooldown check and a
queue put); the producer's own thread encodes the snapshots, writes them and
publishes the event with references to its evidence on the event bus. A burst
of alerts therefore does not stall detection. When the render queue is full, the
worker waits for a slot at most ``full_wait_s`` (a short back-pressure that keeps
the evidence of a sustained burst); after that the event is published at once
without evidence (and says so): the alert matters more than its picture, and
memory stays bounded (each queued job holds a full-resolution frame).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alerts.clips import ClipRecorder, EvidenceRetention
from alerts.config import AlertsConfig
from alerts.domain.cooldown import CooldownGate
from alerts.evidence import EvidenceFrame, render_snapshots
from alerts.messages import EVENTS_TOPIC, EventMessage
from alerts.ports import EventBus
from analytics.types import Event
from core import metrics
from core.area import Area
from core.storage import EvidenceStorage, StorageError, as_storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CameraInfo:
    """What an alert needs to know of its camera."""

    name: str
    area: Area
    gb28181_id: str | None = None


@dataclass
class _Job:
    message: EventMessage
    frame: EvidenceFrame
    polygon: np.ndarray | None


class AlertProducer:
    def __init__(
        self,
        bus: EventBus,
        cfg: AlertsConfig,
        storage: EvidenceStorage | Path,
        cameras: dict[str, CameraInfo] | None = None,
        *,
        queue_size: int = 64,
        full_wait_s: float = 0.2,
        protected: Callable[[], set[str]] | None = None,
    ) -> None:
        """``storage``: the evidence storage (snapshots, clips; a plain folder is taken
        as one). ``protected``: the evidence references of open alerts (never deleted);
        without it no retention thread runs."""
        self.bus = bus
        self.cfg = cfg
        self.storage = as_storage(storage)
        self.cameras = cameras if cameras is not None else {}
        self.gate = CooldownGate()
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self.full_wait_s = full_wait_s
        self._thread = threading.Thread(target=self._run, name="evidence", daemon=True)
        self.clips = ClipRecorder(bus, cfg, self.storage)
        self.retention = (
            EvidenceRetention(cfg, self.storage, protected) if protected is not None else None
        )
        self.published = 0
        self.suppressed = 0
        self.without_evidence = 0

    @property
    def threads(self) -> list[threading.Thread]:
        extra = self.retention.threads if self.retention is not None else []
        return [self._thread, *self.clips.threads, *extra]

    def start(self) -> None:
        self._thread.start()
        self.clips.start()
        if self.retention is not None:
            self.retention.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Render and publish what is queued (clips cut short), then stop."""
        self._jobs.put(None)
        self._thread.join(timeout)
        self.clips.stop()
        if self.retention is not None:
            self.retention.stop()

    def backlog(self) -> int:
        return self._jobs.qsize()

    def on_event(
        self,
        event: Event,
        frame: EvidenceFrame | None,
        zone_polygon: np.ndarray | None,
        *,
        t: float | None = None,
    ) -> str | None:
        """Hand an event over (called by analysis workers and the watchdog; cheap).

        ``t`` is the cooldown clock (the frame's rule clock; monotonic by default).
        Returns the new alert's id, or None when the cooldown suppressed it.
        """
        cooldown = event.cooldown_s if event.cooldown_s is not None else self.cfg.cooldown_s
        if not self.gate.allow(event, time.monotonic() if t is None else t, cooldown):
            self.suppressed += 1
            return None
        info = self.cameras.get(event.camera_id) or CameraInfo(event.camera_id, Area())
        message = EventMessage(str(uuid.uuid4()), event, info.name, info.area, time.time(),
                               camera_gb28181_id=info.gb28181_id)  # fmt: skip
        if frame is not None:  # a camera fault has no picture to show, so no clip
            self._request_clip(message)
        if frame is None:
            self._publish(message)
            return message.alert_id
        try:
            self._jobs.put(_Job(message, frame, zone_polygon), timeout=self.full_wait_s)
        except queue.Full:
            message.evidence_error = "evidence not rendered: the renderer is behind (burst)"
            log.warning("alert %s: %s", message.alert_id, message.evidence_error)
            self._publish(message)
        return message.alert_id

    def _request_clip(self, message: EventMessage) -> None:
        """Queue the alert's clip (the alert clock is wall time, like the ring's)."""
        e = message.event
        lead = e.pts - (e.started_pts if e.started_pts is not None else e.pts)
        self.clips.request(
            message.alert_id, e.camera_id, message.created_at - lead, message.created_at
        )

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                self._render(job)
            except Exception:  # noqa: BLE001 - the next alert must still be published
                log.exception("evidence thread: alert %s failed", job.message.alert_id)

    def _render(self, job: _Job) -> None:
        m = job.message
        try:
            m.evidence = render_snapshots(
                m.alert_id, m.event.camera_id, m.created_at, m.event, job.frame, job.polygon,
                self.storage, self.cfg.jpeg_quality,
            )  # fmt: skip
        except (OSError, ValueError, StorageError) as exc:
            # The alert matters more than its picture: publish it, say why there is none.
            m.evidence_error = f"snapshot not saved: {exc}"
            metrics.EVIDENCE_DROPPED.labels("snapshot").inc()
            log.error("alert %s: %s", m.alert_id, m.evidence_error)
        self._publish(m)

    def _publish(self, message: EventMessage) -> None:
        if not message.evidence:
            self.without_evidence += 1
        self.bus.publish(EVENTS_TOPIC, message.to_dict())
        self.published += 1
