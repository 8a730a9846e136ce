"""Events become alerts: cooldown, evidence, durable storage with the outbox."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import AlertsConfig, DispatchTarget
from alerts.evidence import annotate, encode_jpeg, write_evidence
from alerts.store import AlertRecord, alert_payload, save_alert
from analytics.types import Event
from ingest.reader import SampledFrame

log = logging.getLogger(__name__)


class CooldownGate:
    """At most one alert per (camera, rule, track or key) within the cooldown, on the rule clock."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str, str], float] = {}

    def allow(self, event: Event, t: float, cooldown_s: float) -> bool:
        subject = event.key or str(event.track_ids[0] if event.track_ids else -1)
        key = (event.camera_id, event.rule, subject)
        last = self._last.get(key)
        if last is not None and t - last < cooldown_s:
            return False
        self._last[key] = t
        if len(self._last) > 10_000:  # forget the oldest keys on very busy cameras
            horizon = t - cooldown_s
            self._last = {k: v for k, v in self._last.items() if v >= horizon}
        return True


@dataclass
class CameraMeta:
    name: str
    county: str | None = None
    township: str | None = None
    village: str | None = None
    grid: str | None = None


def build_alert(event: Event, meta: CameraMeta, alert_id: str, created_at: float) -> AlertRecord:
    """The alert record for an event (no evidence yet)."""
    return AlertRecord(
        id=alert_id,
        camera_id=event.camera_id,
        camera_name=meta.name,
        rule=event.rule,
        type=event.type,
        severity=event.severity,
        status="new",
        created_at=created_at,
        started_at=round(created_at - (event.pts - (event.started_pts or event.pts)), 3),
        object_class=event.object_class,
        track_ids_json=json.dumps(event.track_ids),
        zone=event.zone,
        county=meta.county,
        township=meta.township,
        village=meta.village,
        grid=meta.grid,
        measured=event.measured,
        threshold=event.threshold,
        unit=event.unit,
        explanation=event.explanation,
        confidence=event.confidence,
        box_json=json.dumps([round(v, 1) for v in event.box]) if event.box else None,
        pts=event.pts,
        details_json=json.dumps(event.extra, ensure_ascii=False) if event.extra else None,
    )


def attach_evidence(
    alert: AlertRecord,
    event: Event,
    frame: SampledFrame,
    zone_polygon: np.ndarray | None,
    directory: Path,
    quality: int,
) -> None:
    """Save the full-resolution snapshot and an annotated copy, with their SHA-256."""
    image = frame.source_bgr()
    day = time.strftime("%Y%m%d", time.gmtime(alert.created_at))
    folder = directory / alert.camera_id / day
    raw = write_evidence(folder, f"{alert.id}.jpg", encode_jpeg(image, quality))
    marked = annotate(image, event, zone_polygon, frame.frame_size)
    ann = write_evidence(folder, f"{alert.id}.annotated.jpg", encode_jpeg(marked, quality))
    alert.snapshot_path, alert.snapshot_sha256 = str(raw.path), raw.sha256
    alert.annotated_path, alert.annotated_sha256 = str(ann.path), ann.sha256


class AlertService:
    """Turns events into stored alerts with evidence and outbox rows."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        cfg: AlertsConfig,
        snapshot_dir: Path,
        targets: list[DispatchTarget],
        cameras: dict[str, CameraMeta],
        *,
        on_saved: Callable[[AlertRecord], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.cfg = cfg
        self.snapshot_dir = snapshot_dir
        self.targets = [t for t in targets if t.enabled]
        self.cameras = cameras
        self.on_saved = on_saved
        self.gate = CooldownGate()

    def handle(
        self, event: Event, frame: SampledFrame | None, zone_polygon: np.ndarray | None
    ) -> AlertRecord | None:
        """Store an alert for ``event`` unless in cooldown; ``frame`` None: no snapshot
        (a camera that sends no picture)."""
        cooldown = event.cooldown_s if event.cooldown_s is not None else self.cfg.cooldown_s
        t = frame.t if frame is not None else time.monotonic()
        if not self.gate.allow(event, t, cooldown):
            return None
        meta = self.cameras.get(event.camera_id) or CameraMeta(event.camera_id)
        alert = build_alert(event, meta, str(uuid.uuid4()), time.time())
        try:
            if frame is not None:
                attach_evidence(
                    alert, event, frame, zone_polygon, self.snapshot_dir, self.cfg.jpeg_quality
                )
        except (OSError, ValueError) as exc:
            # The alert matters more than its picture: store it, say why there is none.
            log.error("alert %s: snapshot not saved: %s", alert.id, exc)
        targets = [t.name for t in self.targets if t.types is None or event.type in t.types]
        with self.sessions.begin() as session:
            save_alert(session, alert, targets)
        log.info(
            "alert %s %s camera=%s rule=%s: %s",
            alert.id,
            alert.type,
            alert.camera_id,
            alert.rule,
            alert.explanation,
        )
        if self.on_saved is not None:
            self.on_saved(alert)
        return alert

    def payload(self, alert: AlertRecord) -> dict[str, object]:
        return alert_payload(alert)
