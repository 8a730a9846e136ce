"""Multi-object tracking: ByteTrack from the maintained ``trackers`` package."""

from __future__ import annotations

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from analytics.types import Detections


class Tracker:
    """ByteTrack per camera, timed on the frame's own timestamps.

    ``lost_s`` is how long a lost track is kept for re-association.
    """

    def __init__(self, fps: float, *, lost_s: float = 2.0, activation: float = 0.45) -> None:
        self._tracker = ByteTrackTracker(
            # The trackers package counts this buffer in 30 fps frames whatever frame_rate
            # is: lost_track_buffer / 30 is the time a lost track is kept.
            lost_track_buffer=max(1, int(round(lost_s * 30))),
            frame_rate=fps,
            track_activation_threshold=activation,
            minimum_consecutive_frames=2,
            high_conf_det_threshold=activation,
        )

    def update(self, detections: Detections, t: float) -> Detections:
        """Assign track ids; returns only the boxes with an active track."""
        if len(detections) == 0:
            sv_in = sv.Detections.empty()
        else:
            sv_in = sv.Detections(
                xyxy=detections.xyxy.astype(np.float32),
                confidence=detections.confidence.astype(np.float32),
                class_id=detections.class_id.astype(int),
            )
        out = self._tracker.update(sv_in, timestamp=t)
        if len(out) == 0:
            return Detections.empty()
        ids = np.asarray(out.tracker_id if out.tracker_id is not None else [], dtype=np.int64)
        keep = ids >= 0
        return Detections(
            out.xyxy[keep],
            out.confidence[keep] if out.confidence is not None else np.ones(keep.sum()),
            np.asarray(out.class_id)[keep],
            ids[keep],
        )
