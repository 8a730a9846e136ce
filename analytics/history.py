"""Recent positions of each track, shared by the rules that look at motion."""

from __future__ import annotations

from collections import deque

import numpy as np

from analytics.types import Detections

# Columns of a history sample.
T, X, Y, W, H = range(5)


class TrackHistory:
    """Per track: (t, anchor x, anchor y, box w, box h) samples of the last ``horizon_s``."""

    def __init__(self, horizon_s: float = 120.0) -> None:
        self.horizon_s = horizon_s
        self._tracks: dict[int, deque[tuple[float, float, float, float, float]]] = {}

    def update(self, tracked: Detections, t: float) -> None:
        anchors = tracked.anchors()
        wh = tracked.xyxy[:, 2:] - tracked.xyxy[:, :2]
        for i, tid in enumerate(tracked.tracker_id.tolist()):
            samples = self._tracks.setdefault(tid, deque())
            w, h = float(wh[i, 0]), float(wh[i, 1])
            samples.append((t, float(anchors[i, 0]), float(anchors[i, 1]), w, h))
        horizon = t - self.horizon_s
        for tid in list(self._tracks):
            samples = self._tracks[tid]
            while samples and samples[0][T] < horizon:
                samples.popleft()
            if not samples:
                del self._tracks[tid]

    def samples(self, tid: int, since: float | None = None) -> np.ndarray:
        """(K, 5) array of the track's samples (optionally only those at or after ``since``)."""
        samples = self._tracks.get(tid)
        if not samples:
            return np.zeros((0, 5), dtype=np.float64)
        arr = np.asarray(samples, dtype=np.float64)
        if since is not None:
            arr = arr[arr[:, T] >= since]
        return arr

    def __contains__(self, tid: int) -> bool:
        return tid in self._tracks
