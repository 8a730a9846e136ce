"""Replay a recorded clip through the same pipeline, as fast as the machine allows.

Same sampling (on the clip's own timestamps), same detector, tracker, rules
and cooldown as the live hub; rule timing uses the clip's timestamps, so a
replay is deterministic: the same clip and config give the same alerts.
Alert ids are derived from (camera, rule, track, time) for the same reason,
and ``created_at`` is seconds from the start of the clip.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import av

from alerts.domain.cooldown import CooldownGate
from alerts.evidence import render_snapshots
from alerts.messages import EventMessage
from alerts.payload import alert_payload
from alerts.service import build_alert
from analytics.config import CameraConfig
from analytics.detectors import Detector, create_detector
from analytics.pipeline import CameraAnalytics, CameraRulesConfig
from analytics.pose import shared_pose_model, wants_pose
from ingest.reader import DecodeStats, iter_sampled_frames
from shaobing.config import LoadedConfig

log = logging.getLogger(__name__)

REPLAY_NAMESPACE = uuid.UUID("5d1c4a52-8f0e-4d53-9a55-7368616f6269")


@dataclass
class ReplayResult:
    alerts: int
    frames_analysed: int
    clip_seconds: float
    wall_seconds: float
    decode_problem: str | None
    gated_share: float = 0.0

    @property
    def speed(self) -> float:
        return self.clip_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


def replay(
    loaded: LoadedConfig,
    camera_id: str,
    source: Path,
    out: TextIO,
    *,
    detector: Detector | None = None,
    evidence_dir: Path | None = None,
    start_ts: float | None = None,
) -> ReplayResult:
    """Replay ``source`` for camera ``camera_id`` of the config, writing alerts to ``out``.

    ``start_ts`` (epoch seconds) is the wall-clock time of the clip's first frame:
    with it, rule schedules apply and alert times are absolute; without it,
    schedules are ignored and times are seconds from the start of the clip.
    """
    cams = {c.id: c for c in loaded.config.cameras}
    if camera_id not in cams:
        raise KeyError(
            f"camera {camera_id!r} is not in {loaded.path}; known: {', '.join(cams) or 'none'}"
        )
    cam: CameraConfig = cams[camera_id]
    if not source.is_file():
        raise FileNotFoundError(f"clip not found: {source}")
    det = detector or create_detector(loaded.config.detector, loaded.models_dir, loaded.mirror_dir)
    analytics = CameraAnalytics(
        CameraRulesConfig(cam.id, cam.detect_fps, cam.zones, cam.rules, cam.motion, cam.detect),
        det.class_names,
        timezone=loaded.config.timezone,
        use_schedules=start_ts is not None,
        pose=shared_pose_model(loaded.models_dir) if wants_pose(cam.rules) else None,
    )
    base_ts = start_ts or 0.0
    gate = CooldownGate()
    stats = DecodeStats()
    started = time.perf_counter()
    n_alerts = n_frames = 0
    last_pts = 0.0
    with av.open(str(source)) as container:
        if not container.streams.video:
            raise ValueError(f"{source} has no video stream")
        for frame in iter_sampled_frames(
            container,
            camera_id=cam.id,
            detect_fps=cam.detect_fps,
            box=det.input_size,
            mode="replay",
            max_decode_errors=loaded.config.ingest.max_decode_errors,
            stats=stats,
        ):
            n_frames += 1
            last_pts = frame.pts
            motion = analytics.check_motion(frame.image, frame.t, frame.source_size)
            detections = det.detect([frame.image])[0] if motion.detect else None
            if detections is not None and analytics.wants_regions:  # analytics/regions.py
                detections = analytics.detect_regions(
                    det, detections, frame.source_bgr, motion, frame.source_size, frame.frame_size
                )
            _, events = analytics.process(
                detections, t=frame.t, pts=frame.pts, wall_ts=base_ts + frame.wall_ts,
                source_size=frame.source_size, frame_size=frame.frame_size, gate=motion,
                image=frame.image,
            )  # fmt: skip
            polygons = analytics.zones_for_drawing()
            for event in events:
                cooldown = (
                    event.cooldown_s
                    if event.cooldown_s is not None
                    else loaded.config.alerts.cooldown_s
                )
                if not gate.allow(event, frame.t, cooldown):
                    continue
                subject = event.key or (event.track_ids[0] if event.track_ids else -1)
                key = f"{cam.id}/{event.rule}/{subject}/{event.pts:.3f}"
                message = EventMessage(
                    str(uuid.uuid5(REPLAY_NAMESPACE, key)), event, cam.name or cam.id, cam.area,
                    round(base_ts + event.pts, 3),
                )  # fmt: skip
                if evidence_dir is not None:
                    message.evidence = render_snapshots(
                        message.alert_id, cam.id, message.created_at, event, frame,
                        polygons.get(event.rule), evidence_dir, loaded.config.alerts.jpeg_quality,
                    )  # fmt: skip
                alert = build_alert(message)
                out.write(json.dumps(alert_payload(alert), ensure_ascii=False, sort_keys=True))
                out.write("\n")
                out.flush()
                n_alerts += 1
    return ReplayResult(
        n_alerts, n_frames, last_pts, time.perf_counter() - started, stats.describe(),
        analytics.gate.gated_share,
    )  # fmt: skip
