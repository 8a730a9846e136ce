"""Multi-object tracking: ByteTrack from the maintained ``trackers`` package."""

from __future__ import annotations

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from analytics.history import TrackHistory
from analytics.sanity import TrackFilter
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


class CountTracker:
    """The counting lines' own tracks (issue 25, "counting that holds").

    In rain, mist or spray a detector scores real vehicles 0.1-0.35: below the detector's
    confidence or the main tracker's activation, so they get no track and cross a
    counting line uncounted. ByteTrack's second stage only extends tracks that strong boxes
    started. A camera with a ``line_crossing`` rule therefore runs a second ByteTrack over
    the classes its lines count, fed with the strong boxes and the detector's weak ones
    (``Detections.weak``, down to ``detector.weak_confidence``): a track is born from a box
    scored at least ``ACTIVATION`` and extended by weaker ones, and reaches the lines once
    seen in ``min_frames`` frames with a median score of at least ``MIN_MEDIAN``. A weak
    ghost that stands still (a gantry, a sign) never crosses a line; the line rule's own
    ``min_crossing_frames`` still holds back jitter. Nothing else sees these tracks: every
    other rule keeps the main tracker and its filters.
    """

    ACTIVATION = 0.2
    MIN_MEDIAN = 0.15

    def __init__(self, fps: float, *, lost_s: float, class_ids: list[int], min_frames: int) -> None:
        self.tracker = Tracker(fps, lost_s=lost_s, activation=self.ACTIVATION)
        self.history = TrackHistory(60.0)
        self.filter = TrackFilter(min_frames, self.MIN_MEDIAN)
        self.class_ids = np.asarray(class_ids, dtype=np.int64)

    def update(self, detections: Detections, t: float) -> Detections:
        """This frame's counting tracks (those that passed the filter)."""
        boxes = detections
        if detections.weak is not None and len(detections.weak):
            boxes = Detections.merge([detections, detections.weak])
        boxes = boxes[np.isin(boxes.class_id, self.class_ids)]
        tracked = self.tracker.update(boxes, t)
        self.history.update(tracked, t, None)
        return tracked[self.filter.passed(tracked, self.history)]
