"""False-positive filters and class sanity, between the tracker and the rules.

* :class:`TrackFilter` (as Frigate's ``min_score`` / ``threshold``): a track reaches the
  rules only once it has been seen for ``min_frames`` frames and the median of its
  scores is at least ``min_median_score``; once it has, it stays (a person walking into
  shadow keeps its alerts), and a track continuing an object that passed (an id
  switch, see analytics/history.py) passes at once.
* :class:`Confirmation` (Frigate's ``threshold``, stricter, for the zone rules
  ``intrusion`` and ``pedestrian_on_road``): an object is *confirmed* only once the median
  of its recent scores reaches ``confirm_score`` and it has persisted and moved like a real
  object (seen in most detection frames, its box size steady, no jumps); a ghost at night
  (a headlight's glare scored 0.5 as a person for a few frames) is not.
* :func:`oversized_persons`: a "person" far taller than the other people at the same
  image row (a bus, a shop sign, a shadow) is not a person.
* :func:`riders`: a person on a bicycle or motorcycle (for ``pedestrian_on_road``).
* :func:`attended_two_wheelers`: a two-wheeler a person is on or at (for ``stopped_vehicle``).
* :func:`people_near`: people beside an object (a two-wheeler at walking pace among
  pedestrians is treated as pedestrian-like by ``wrong_way``).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from analytics.history import TrackHistory
from analytics.types import Detections, class_ids

TWO_WHEELERS = ("bicycle", "motorcycle")




class TrackFilter:
    """Which tracks the rules may see: long enough and confident enough (see module doc)."""

    KEEP_SCORES = 30

    def __init__(self, min_frames: int, min_median_score: float) -> None:
        self.min_frames = min_frames
        self.min_median_score = min_median_score
        self._scores: dict[int, deque[float]] = {}
        self._passed: set[int] = set()  # lineage roots that passed

    def passed(self, tracked: Detections, history: TrackHistory) -> np.ndarray:
        """A mask of ``tracked`` (this frame's tracks, after ``history.update``)."""
        keep = np.zeros(len(tracked), dtype=bool)
        for i, tid in enumerate(tracked.tracker_id.tolist()):
            root = history.root(tid)
            if root in self._passed:
                keep[i] = True
                continue
            scores = self._scores.setdefault(root, deque(maxlen=self.KEEP_SCORES))
            scores.append(float(tracked.confidence[i]))
            if len(scores) >= self.min_frames and np.median(scores) >= self.min_median_score:
                self._passed.add(root)
                self._scores.pop(root, None)
                keep[i] = True
        self._passed = {r for r in self._passed if r in history}
        self._scores = {r: s for r, s in self._scores.items() if r in history}
        return keep


class Confirmation:
    """Which tracks are *confirmed* objects (see the module doc): over the object's last
    ``RECENT`` samples (its lineage, analytics/history.py) at least ``frames`` samples, score
    median ≥ ``score``, seen in ≥ ``MIN_HITS`` of the detection frames they span, box
    heights within ``MAX_SIZE_RATIO`` of each other, and no step faster than ``MAX_SPEED``
    box heights per second. Once confirmed, an object stays confirmed (it may walk into
    shadow). ``frames`` 0 turns confirmation off (every track is confirmed)."""

    RECENT = 10
    MIN_HITS = 0.6
    MAX_SIZE_RATIO = 2.0
    MAX_SPEED = 5.0  # box heights per second: a sprint is ~4

    def __init__(self, frames: int, score: float, fps: float) -> None:
        self.frames = frames
        self.score = score
        self.fps = fps
        self._confirmed: set[int] = set()  # lineage roots
        self.refused: dict[str, int] = {}  # tracks not (yet) confirmed, by the first reason

    def check(self, samples: np.ndarray) -> str | None:
        """Why an object with these history samples is not confirmed (None: it is)."""
        from analytics.history import H, S, T, X, Y

        s = samples[-self.RECENT :]
        if len(s) < self.frames:
            return "too few frames"
        if float(np.median(s[:, S])) < self.score:
            return "score"
        span = float(s[-1, T] - s[0, T])
        if len(s) < self.MIN_HITS * (span * self.fps + 1):
            return "intermittent"
        heights = np.maximum(s[:, H], 1e-6)
        if heights.max() > self.MAX_SIZE_RATIO * heights.min():
            return "size"
        if len(s) > 1:
            dt = np.maximum(np.diff(s[:, T]), 1e-6)
            step = np.hypot(np.diff(s[:, X]), np.diff(s[:, Y])) / np.median(heights)
            if (step / dt).max() > self.MAX_SPEED:
                return "jump"
        return None

    def confirmed(self, tracked: Detections, history: TrackHistory) -> np.ndarray:
        """The track ids of ``tracked`` that are confirmed (after ``history.update``)."""
        out = []
        for tid in tracked.tracker_id.tolist():
            root = history.root(tid)
            if self.frames <= 0 or root in self._confirmed:
                out.append(tid)
                continue
            why = self.check(history.samples(tid))
            if why is None:
                self._confirmed.add(root)
                out.append(tid)
            else:
                self.refused[why] = self.refused.get(why, 0) + 1
        self._confirmed = {r for r in self._confirmed if r in history}
        return np.asarray(out, dtype=np.int64)


def oversized_persons(det: Detections, names: tuple[str, ...], ratio: float = 3.0) -> np.ndarray:
    """A mask of the "persons" at least ``ratio`` times taller than the people expected at
    their image row.

    The expected height at a row comes from the other people in view (heights grow
    linearly with the row on a ground plane); it needs at least three of them, so a
    lone person close to the camera is never dropped.
    """
    person = np.isin(det.class_id, class_ids(names, ("person",)))
    out = np.zeros(len(det), dtype=bool)
    idx = np.flatnonzero(person)
    if len(idx) < 4:
        return out
    heights = (det.xyxy[idx, 3] - det.xyxy[idx, 1]).astype(np.float64)
    rows = det.xyxy[idx, 3].astype(np.float64)
    # Leave-one-out in closed form (was a np.polyfit and a median per person: ~1 ms a
    # frame in a crowd): for each person, the median height and the least-squares line
    # height = slope * row + icpt of the *other* people.
    expected = _others_median(heights)
    y = rows - rows.mean()  # centred: the sums below keep their precision
    n = len(y) - 1
    sy, sh = y.sum() - y, heights.sum() - heights
    syy, syh = (y * y).sum() - y * y, (y * heights).sum() - y * heights
    order = np.argsort(y)
    top = np.where(np.arange(len(y)) == order[-1], y[order[-2]], y[order[-1]])
    bottom = np.where(np.arange(len(y)) == order[0], y[order[1]], y[order[0]])
    fit = top - bottom > 1e-3  # the others' rows are not all one row
    den = np.where(fit, n * syy - sy * sy, 1.0)
    slope = (n * syh - sy * sh) / den
    icpt = (sh - slope * sy) / n
    # Only ever more lenient than the median: a bad fit must not drop real people.
    expected = np.where(fit, np.maximum(expected, slope * y + icpt), expected)
    out[idx] = heights >= ratio * np.maximum(expected, 1.0)
    return out


def _others_median(values: np.ndarray) -> np.ndarray:
    """For each element, the median of all the others."""
    n = len(values)
    order = np.argsort(values, kind="stable")
    ranked = values[order]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)

    def kth(k: int) -> np.ndarray:  # the k-th smallest of the others, for each element
        return np.where(k < rank, ranked[k], ranked[min(k + 1, n - 1)])

    m = n - 1
    if m % 2:
        return kth(m // 2)
    return (kth(m // 2 - 1) + kth(m // 2)) / 2


def riders(det: Detections, names: tuple[str, ...], min_overlap: float = 0.2) -> np.ndarray:
    """A mask of the persons riding a bicycle or motorcycle: the two-wheeler's box covers
    at least ``min_overlap`` of the person's box, and the person is above its bottom
    (sitting on it, not standing beside it lower in the picture)."""
    person = np.flatnonzero(np.isin(det.class_id, class_ids(names, ("person",))))
    bikes = np.flatnonzero(np.isin(det.class_id, class_ids(names, TWO_WHEELERS)))
    out = np.zeros(len(det), dtype=bool)
    if not len(person) or not len(bikes):
        return out
    p, b = det.xyxy[person][:, None, :], det.xyxy[bikes][None, :, :]
    iw = np.clip(np.minimum(p[..., 2], b[..., 2]) - np.maximum(p[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(p[..., 3], b[..., 3]) - np.maximum(p[..., 1], b[..., 1]), 0, None)
    area = np.maximum((p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1]), 1e-6)
    share = iw * ih / area
    above = p[..., 1] < b[..., 1]  # the person's head is above the two-wheeler's top
    out[person] = ((share >= min_overlap) & above).any(axis=1)
    return out


def attended_two_wheelers(
    det: Detections, names: tuple[str, ...], min_overlap: float = 0.1
) -> np.ndarray:
    """A mask of the bicycles and motorcycles a person's box overlaps by at least
    ``min_overlap`` of the two-wheeler's box: ridden, pushed or held (and what the detector
    calls a two-wheeler beside a person: a pushchair, a wheelchair)."""
    person = np.flatnonzero(np.isin(det.class_id, class_ids(names, ("person",))))
    bikes = np.flatnonzero(np.isin(det.class_id, class_ids(names, TWO_WHEELERS)))
    out = np.zeros(len(det), dtype=bool)
    if not len(person) or not len(bikes):
        return out
    b, p = det.xyxy[bikes][:, None, :], det.xyxy[person][None, :, :]
    iw = np.clip(np.minimum(p[..., 2], b[..., 2]) - np.maximum(p[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(p[..., 3], b[..., 3]) - np.maximum(p[..., 1], b[..., 1]), 0, None)
    area = np.maximum((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]), 1e-6)
    out[bikes] = (iw * ih / area >= min_overlap).any(axis=1)
    return out


def people_near(det: Detections, box: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """A mask of the persons of ``det`` within two box heights of ``box`` (xyxy)."""
    person = np.isin(det.class_id, class_ids(names, ("person",)))
    h = max(float(box[3] - box[1]), 1.0)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    px = (det.xyxy[:, 0] + det.xyxy[:, 2]) / 2
    py = (det.xyxy[:, 1] + det.xyxy[:, 3]) / 2
    return person & (np.hypot(px - cx, py - cy) <= 2.0 * h)


def peer_heights(det: Detections, names: tuple[str, ...], upright: float = 0.75) -> np.ndarray:
    """For each box, the height of a person standing at its image row judged from the
    *other* upright people of this frame (NaN where there are none to judge from): the
    median of those whose feet are within two of their heights of its row, else, with three
    or more spread over the picture, their straight-line fit of height against row."""
    out = np.full(len(det), np.nan)
    person = np.isin(det.class_id, class_ids(names, ("person",)))
    wh = det.xyxy[:, 2:] - det.xyxy[:, :2]
    ref = np.flatnonzero(person & (wh[:, 0] <= upright * wh[:, 1]))
    if not len(ref):
        return out
    rows, heights = det.xyxy[ref, 3], wh[ref, 1]
    for i in range(len(det)):
        others = ref != i
        if not others.any():
            continue
        r, h = rows[others], heights[others]
        near = np.abs(r - det.xyxy[i, 3]) <= 2.0 * h
        if near.any():
            out[i] = float(np.median(h[near]))
        elif len(r) >= 3 and np.ptp(r) > 1e-3:
            slope, icpt = np.polyfit(r, h, 1)
            out[i] = max(float(slope * det.xyxy[i, 3] + icpt), float(h.min()))
    return out


def own_upright_height(history: TrackHistory, tid: int, upright: float = 0.75) -> float | None:
    """The median height of the object's own upright boxes seen before (its lineage, over the
    history's horizon): a person who walked and then collapsed; None with fewer than 3."""
    s = history.samples(tid)
    if not len(s):
        return None
    up = s[(s[:, 3] <= upright * s[:, 4])]
    return float(np.median(up[:, 4])) if len(up) >= 3 else None


class StandingHeights:
    """How tall an upright person is at each image row, learned from the people this camera
    has seen (a ground-plane camera: the height grows linearly with the row).

    ``expected(rows)`` is None until ``MIN_SAMPLES`` upright people spread over the picture
    have been seen.
    """

    MIN_SAMPLES = 20
    KEEP = 600
    UPRIGHT = 0.75  # box width / height at most: standing or walking

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=self.KEEP)
        self._fit: tuple[float, float] | None = None
        self._added = 0

    def add(self, det: Detections, names: tuple[str, ...]) -> None:
        person = np.isin(det.class_id, class_ids(names, ("person",)))
        wh = det.xyxy[:, 2:] - det.xyxy[:, :2]
        upright = person & (wh[:, 0] <= self.UPRIGHT * wh[:, 1])
        for y, h in zip(det.xyxy[upright, 3].tolist(), wh[upright, 1].tolist(), strict=True):
            self._samples.append((y, h))
            self._added += 1
        if self._added >= 10 and len(self._samples) >= self.MIN_SAMPLES:
            self._added = 0
            arr = np.asarray(self._samples)
            if np.ptp(arr[:, 0]) < 1.0:
                self._fit = (0.0, float(np.median(arr[:, 1])))
            else:
                slope, icpt = np.polyfit(arr[:, 0], arr[:, 1], 1)
                self._fit = (float(slope), float(icpt))

    def expected(self, rows: np.ndarray) -> np.ndarray | None:
        if self._fit is None:
            return None
        slope, icpt = self._fit
        floor = float(np.percentile(np.asarray(self._samples)[:, 1], 10))
        return np.maximum(slope * rows + icpt, floor)
