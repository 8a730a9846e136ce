"""Recent positions of each track, shared by the rules that look at motion.

Trackers switch ids on real footage (an occlusion, a missed detection, a pushchair
seen as a person then a motorcycle). The history links such a new track to the lost
one it continues — its *lineage* — so the movement rules judge and fire on the
object, not on the id: a new track that appears within ``bridge_s`` where exactly one
recently lost track was heading (its last position moved on at its last speed, within
``BRIDGE_RADIUS`` of the larger box height, boxes of a similar size) continues that
lost track. With several candidates (a crowd) it starts a lineage of its own:
chaining different people together would invent paths.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from analytics.types import Detections

# Columns of a history sample.
T, X, Y, W, H, S = range(6)


class TrackHistory:
    """Per track: (t, anchor x, anchor y, box w, box h, score) samples of the last
    ``horizon_s``, and the lineage of tracks that are one object across id switches."""

    BRIDGE_RADIUS = 0.75  # of the larger box height, around the predicted position
    SPEED_S = 1.0  # the speed a lost track is extrapolated at is measured over this

    def __init__(self, horizon_s: float = 120.0, bridge_s: float = 3.0) -> None:
        self.horizon_s = horizon_s
        self.bridge_s = bridge_s
        self._tracks: dict[int, deque[tuple[float, ...]]] = {}
        self._root: dict[int, int] = {}  # track id -> the first track id of its lineage
        self._members: dict[int, list[int]] = {}  # lineage root -> its track ids, in order

    def update(self, tracked: Detections, t: float) -> None:
        anchors = tracked.anchors()
        wh = tracked.xyxy[:, 2:] - tracked.xyxy[:, :2]
        ids = tracked.tracker_id.tolist()
        present = set(ids)
        for i, tid in enumerate(ids):
            if tid not in self._root:
                self._link(tid, anchors[i], float(wh[i, 1]), t, present)
            samples = self._tracks.setdefault(tid, deque())
            w, h = float(wh[i, 0]), float(wh[i, 1])
            score = float(tracked.confidence[i])
            samples.append((t, float(anchors[i, 0]), float(anchors[i, 1]), w, h, score))
        horizon = t - self.horizon_s
        for tid in list(self._tracks):
            samples = self._tracks[tid]
            while samples and samples[0][T] < horizon:
                samples.popleft()
            if not samples:
                del self._tracks[tid]
        for root in [r for r, m in self._members.items() if not any(k in self._tracks for k in m)]:
            for k in self._members.pop(root):
                self._root.pop(k, None)

    def _link(
        self, tid: int, anchor: np.ndarray, height: float, t: float, present: set[int]
    ) -> None:
        """Start the lineage of a new track: its own, or the one lost track it continues."""
        candidates = []
        for root, members in self._members.items():
            last = members[-1]
            if any(k in present for k in members):
                continue  # that object is in view: not lost
            s = self._tracks.get(last)
            if not s:
                continue
            gap = t - s[-1][T]
            if not 0 < gap <= self.bridge_s:
                continue
            lost_h = s[-1][H]
            if not 0.5 <= height / max(lost_h, 1e-6) <= 2.0:
                continue
            predicted = np.array([s[-1][X], s[-1][Y]]) + self._velocity(s) * gap
            if float(np.hypot(*(anchor - predicted))) <= self.BRIDGE_RADIUS * max(height, lost_h):
                candidates.append(root)
        root = candidates[0] if len(candidates) == 1 else tid
        self._root[tid] = root
        self._members.setdefault(root, []).append(tid)

    def _velocity(self, samples: deque[tuple[float, ...]]) -> np.ndarray:
        end = samples[-1]
        start = end
        for s in reversed(samples):
            if end[T] - s[T] > self.SPEED_S:
                break
            start = s
        span = end[T] - start[T]
        if span <= 0:
            return np.zeros(2)
        return np.array([end[X] - start[X], end[Y] - start[Y]]) / span

    def root(self, tid: int) -> int:
        """The lineage of a track: the id of its first track (itself if it continues none)."""
        return self._root.get(tid, tid)

    def lineage(self, tid: int) -> list[int]:
        """The track ids that are the same object as ``tid``, oldest first."""
        return list(self._members.get(self.root(tid), [tid]))

    def samples(self, tid: int, since: float | None = None) -> np.ndarray:
        """(K, 6) array of the object's samples, across its lineage's id switches
        (optionally only those at or after ``since``)."""
        parts = [self._tracks[k] for k in self.lineage(tid) if self._tracks.get(k)]
        if not parts:
            return np.zeros((0, 6), dtype=np.float64)
        arr = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])
        if len(parts) > 1:
            arr = arr[np.argsort(arr[:, T], kind="stable")]
        if since is not None:
            arr = arr[arr[:, T] >= since]
        return arr

    def __contains__(self, tid: int) -> bool:
        """Whether the object (any track of its lineage) still has samples."""
        return any(k in self._tracks for k in self.lineage(tid))
