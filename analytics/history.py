"""Recent positions of each track, shared by the rules that look at motion.

Trackers switch ids on real footage (an occlusion, a missed detection, a pushchair
seen as a person then a motorcycle). The history links such a new track to the lost
one it continues — its *lineage* — so the movement rules judge and fire on the
object, not on the id. Joining two people's tracks would invent a path (two walkers
crossing read as one person pacing), so a bridge must pass every test below, and is
refused when in doubt (the new track then starts a lineage of its own):

* **time**: the lost track was last seen at most ``bridge_s`` ago;
* **place and speed**: the new track appears where the lost one was heading (its last
  position moved on at its last speed, within ``BRIDGE_RADIUS`` of the larger box
  height), and getting there needs no more than a plausible speed (``MAX_SPEED_RATIO``
  times the lost track's own, plus ``SPEED_SLACK`` box heights per second);
* **size**: width and height each within ``SIZE_RATIO`` of the lost box;
* **appearance**: both boxes have a colour signature (analytics/appearance.py) and the
  two correlate at least ``MIN_SIMILARITY`` (none given: no bridge);
* **alone**: exactly one lost track qualifies, no other object is within
  ``CROWD_RADIUS`` box heights of where the new track appears or of where the lost one
  was last seen (a crowd), and none was that close to the lost one when it was lost
  (two people crossing: the tracker swaps or drops ids exactly there).

Every decision is counted in :attr:`TrackHistory.bridges` (made, and refused by reason).
:meth:`TrackHistory.same_look` tells whether one id still shows the same person at the end
of a path as at its start (in a crowd a tracker hands an id from person to person).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from analytics.appearance import similarity
from analytics.types import Detections

# Columns of a history sample.
T, X, Y, W, H, S = range(6)


class TrackHistory:
    """Per track: (t, anchor x, anchor y, box w, box h, score) samples of the last
    ``horizon_s``, its colour signature, and the lineage of tracks that are one object
    across id switches (see the module doc for when two tracks are joined)."""

    BRIDGE_RADIUS = 0.6  # of the larger box height, around the predicted position
    SPEED_S = 1.0  # the speed a lost track is extrapolated at is measured over this
    MAX_SPEED_RATIO = 1.5  # the jump's speed, at most this times the lost track's ...
    SPEED_SLACK = 1.0  # ... plus this many box heights per second
    SIZE_RATIO = 1.5  # width and height each within this factor of the lost box's
    MIN_SIMILARITY = 0.6  # colour signature correlation (analytics/appearance.py)
    CROWD_RADIUS = 1.5  # box heights: another object this close makes a bridge a guess
    LOOK_ALPHA = 0.3  # weight of the newest box in a track's running colour signature
    LOOK_EVERY_S = 1.0  # how often a track's signature is kept for same_look()

    def __init__(self, horizon_s: float = 120.0, bridge_s: float = 3.0) -> None:
        self.horizon_s = horizon_s
        self.bridge_s = bridge_s
        self._tracks: dict[int, deque[tuple[float, ...]]] = {}
        self._looks: dict[int, np.ndarray] = {}  # track id -> running colour signature
        self._root: dict[int, int] = {}  # track id -> the first track id of its lineage
        self._members: dict[int, list[int]] = {}  # lineage root -> its track ids, in order
        self.bridges: dict[str, int] = {}  # "made", and "refused: <reason>" counts
        # Per track, its colour signature about every LOOK_EVERY_S: whether a track still
        # shows the same person (trackers swap people inside one id in a crowd).
        self._snaps: dict[int, deque[tuple[float, np.ndarray]]] = {}

    def update(self, tracked: Detections, t: float, looks: np.ndarray | None = None) -> None:
        """Add this frame's tracked boxes; ``looks`` (N, D) their colour signatures
        (analytics/appearance.py; NaN rows or None: unknown, such a track is never bridged)."""
        anchors = tracked.anchors()
        wh = tracked.xyxy[:, 2:] - tracked.xyxy[:, :2]
        ids = tracked.tracker_id.tolist()
        present = set(ids)
        for i, tid in enumerate(ids):
            look = None if looks is None or np.isnan(looks[i]).any() else looks[i]
            if look is not None:
                old = self._looks.get(tid)
                a = self.LOOK_ALPHA
                self._looks[tid] = look if old is None else (1 - a) * old + a * look
                snaps = self._snaps.setdefault(tid, deque())
                if not snaps or t - snaps[-1][0] >= self.LOOK_EVERY_S:
                    snaps.append((t, self._looks[tid]))
            if tid not in self._root:
                self._link(tid, i, anchors, wh, t, present, ids)
            samples = self._tracks.setdefault(tid, deque())
            w, h = float(wh[i, 0]), float(wh[i, 1])
            score = float(tracked.confidence[i])
            samples.append((t, float(anchors[i, 0]), float(anchors[i, 1]), w, h, score))
        horizon = t - self.horizon_s
        for tid in list(self._tracks):
            samples = self._tracks[tid]
            while samples and samples[0][T] < horizon:
                samples.popleft()
            kept = self._snaps.get(tid)
            while kept and kept[0][0] < horizon:
                kept.popleft()
            if not samples:
                del self._tracks[tid]
                self._looks.pop(tid, None)
                self._snaps.pop(tid, None)
        for root in [r for r, m in self._members.items() if not any(k in self._tracks for k in m)]:
            for k in self._members.pop(root):
                self._root.pop(k, None)

    def _refuse(self, why: str) -> None:
        key = f"refused: {why}"
        self.bridges[key] = self.bridges.get(key, 0) + 1

    def _link(
        self,
        tid: int,
        i: int,
        anchors: np.ndarray,
        wh: np.ndarray,
        t: float,
        present: set[int],
        ids: list[int],
    ) -> None:
        """Start the lineage of a new track: its own, or the one lost track it continues."""
        self._root[tid] = tid
        self._members.setdefault(tid, []).append(tid)
        anchor, (width, height) = anchors[i], (float(wh[i, 0]), float(wh[i, 1]))
        near: list[tuple[int, np.ndarray]] = []  # (root, last sample) of lost tracks near
        for root, members in self._members.items():
            if root == tid or any(k in present for k in members):
                continue  # itself, or an object in view: not lost
            s = self._tracks.get(members[-1])
            if not s:
                continue
            gap = t - s[-1][T]
            if not 0 < gap <= self.bridge_s:
                continue
            last = np.array([s[-1][X], s[-1][Y]])
            size = max(height, s[-1][H])
            predicted = last + self._velocity(s) * gap
            if float(np.hypot(*(anchor - predicted))) <= self.BRIDGE_RADIUS * size:
                near.append((root, np.asarray(s[-1])))
            elif float(np.hypot(*(anchor - last))) <= self.CROWD_RADIUS * size:
                near.append((-1, np.asarray(s[-1])))  # close, but not where it was heading
        if not near:
            return
        if len(near) > 1:
            return self._refuse("several lost tracks")
        root, last = near[0]
        if root < 0:
            return self._refuse("not where it was heading")
        s = self._tracks[self._members[root][-1]]
        gap = t - last[T]
        if not (
            1 / self.SIZE_RATIO <= height / max(last[H], 1e-6) <= self.SIZE_RATIO
            and 1 / self.SIZE_RATIO <= width / max(last[W], 1e-6) <= self.SIZE_RATIO
        ):
            return self._refuse("size")
        jump = float(np.hypot(anchor[0] - last[X], anchor[1] - last[Y])) / gap
        own = float(np.hypot(*self._velocity(s)))
        if jump > self.MAX_SPEED_RATIO * own + self.SPEED_SLACK * max(height, last[H]):
            return self._refuse("speed")
        size = max(height, last[H])
        others = anchors[[j for j, k in enumerate(ids) if k != tid]]  # this frame's others
        for p in (anchor, last[[X, Y]]):
            if len(others) and (np.hypot(*(others - p).T) <= self.CROWD_RADIUS * size).any():
                return self._refuse("crowd")
        if self._crossing(root, last, size):
            return self._refuse("crossing")
        sim = similarity(self._looks.get(tid), self._looks.get(self._members[root][-1]))
        if sim is None:
            return self._refuse("appearance unknown")
        if sim < self.MIN_SIMILARITY:
            return self._refuse("appearance")
        self._members.pop(tid)
        self._root[tid] = root
        self._members[root].append(tid)
        self.bridges["made"] = self.bridges.get("made", 0) + 1

    def _crossing(self, root: int, last: np.ndarray, size: float) -> bool:
        """Whether another object was within ``CROWD_RADIUS`` of the lost one when it was
        last seen (within half a second of it)."""
        mine = set(self._members[root])
        for k, s in self._tracks.items():
            if k in mine or not s or s[-1][T] < last[T] - 0.5 or s[0][T] > last[T] + 0.5:
                continue
            for sample in reversed(s):
                if sample[T] <= last[T] + 0.5:
                    if (
                        abs(sample[T] - last[T]) <= 0.5
                        and np.hypot(sample[X] - last[X], sample[Y] - last[Y])
                        <= self.CROWD_RADIUS * size
                    ):
                        return True
                    break
        return False

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

    def same_look(self, tid: int, since: float) -> float | None:
        """How alike the object looked at the start and at the end of the time since
        ``since`` (its lineage's kept signatures: the mean of the first two against the mean
        of the last two, correlated); None with fewer than four kept. Low: the tracker
        likely swapped people within one id."""
        snaps = sorted(
            (s for k in self.lineage(tid) for s in self._snaps.get(k, ()) if s[0] >= since),
            key=lambda s: s[0],
        )
        if len(snaps) < 4:
            return None
        first = np.mean([s[1] for s in snaps[:2]], axis=0)
        last = np.mean([s[1] for s in snaps[-2:]], axis=0)
        return similarity(first, last)

    def swapped_at(self, tid: int, t: float, heading: np.ndarray) -> bool:
        """Whether the object ``tid`` (its lineage) may have swapped ids with someone at time
        ``t``, where its path turned back from ``heading`` (a unit vector): another object
        was within ``CROWD_RADIUS`` box heights of it then (their samples nearest to ``t``,
        within 0.6 s), walked on the way it had been going (over the next second), and
        looks after ``t`` more like this object before ``t`` than this object itself does
        (colour signatures; unknown counts as a swap). Where two people meet a tracker swaps
        their ids, and one's "turn" is the other walking away."""
        mine = self.samples(tid)
        if not len(mine):
            return False
        k = int(np.argmin(np.abs(mine[:, T] - t)))
        if abs(mine[k, T] - t) > 0.6:
            return False
        own = set(self.lineage(tid))
        for other, s in self._tracks.items():
            if other in own or not s or s[0][T] > t + 0.6 or s[-1][T] < t - 0.6:
                continue
            arr = np.asarray(s, dtype=np.float64)
            j = int(np.argmin(np.abs(arr[:, T] - t)))
            if abs(arr[j, T] - t) > 0.6:
                continue
            size = max(mine[k, H], arr[j, H])
            if np.hypot(arr[j, X] - mine[k, X], arr[j, Y] - mine[k, Y]) > self.CROWD_RADIUS * size:
                continue
            later = arr[(arr[:, T] > arr[j, T]) & (arr[:, T] <= arr[j, T] + 1.0)]
            if not len(later):
                continue
            move = later[-1, [X, Y]] - arr[j, [X, Y]]
            dist = float(np.hypot(*move))
            if dist < 0.15 * size or float(np.dot(move / dist, heading)) <= 0.5:
                continue
            # It walked on our way: a swap if it now looks more like us before the turn
            # than we do after it (people who both turned back keep their own looks).
            before = self._look_near(list(own), t - 1.0)
            mine_after = self._look_near(list(own), t + 1.0)
            its_after = self._look_near([other], t + 1.0)
            s_mine, s_its = similarity(before, mine_after), similarity(before, its_after)
            if s_mine is None or s_its is None or s_its > s_mine:
                return True
        return False

    def _look_near(self, tids: list[int], t: float) -> np.ndarray | None:
        """The kept colour signature of these tracks nearest to time ``t`` (within 1 s)."""
        best: tuple[float, np.ndarray] | None = None
        for k in tids:
            for at, look in self._snaps.get(k, ()):
                if abs(at - t) <= 1.0 and (best is None or abs(at - t) < best[0]):
                    best = (abs(at - t), look)
        return None if best is None else best[1]

    def look(self, tid: int) -> np.ndarray | None:
        """The track's running colour signature (None: never seen big enough)."""
        return self._looks.get(tid)

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

    def moved(self, tid: int, since: float) -> float | None:
        """How far this track's anchor has been from where it is now, at most, since
        ``since``, in its box heights (None: under two samples). This track id only, read
        from the newest sample back: cheap enough for every analysed frame."""
        samples = self._tracks.get(tid)
        if samples is None or len(samples) < 2:
            return None
        last = samples[-1]
        x, y = last[X], last[Y]
        far, n = 0.0, 0
        for sample in reversed(samples):
            if sample[T] < since:
                break
            far = max(far, abs(sample[X] - x) + abs(sample[Y] - y))
            n += 1
        return far / max(last[H], 1.0) if n >= 2 else None

    def __contains__(self, tid: int) -> bool:
        """Whether the object (any track of its lineage) still has samples."""
        return any(k in self._tracks for k in self.lineage(tid))
