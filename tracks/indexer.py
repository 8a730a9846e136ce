"""Open tracks per camera → finished tracks worth indexing (pure: no I/O, no clock).

Each analysed frame's tracked boxes update the camera's open tracks: frames seen,
scores, a vote on the class, first and last sighting. A track not seen for
``end_after_s`` (on its camera's frame clock) has ended; it is indexed only when
confirmed: seen in at least ``min_frames`` frames with a median score of at least
``min_score``, so detector noise (a flicker of a few frames) never reaches the
index. A presence longer than ``max_track_s`` (a parked car) ends there and goes
on as a new entry, so each entry has a clip the packet buffer can still cut.

The indexer asks for a crop when a track's box is the best so far (the largest
with a good score); the caller crops, names the colour, encodes the thumbnail and
hands them back with :meth:`TrackIndexer.set_crop`.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from analytics.types import Detections

#: A better crop must be this much larger than the one kept (fewer re-encodings).
CROP_GROWTH = 1.2
#: A frame clock this far behind the camera's last frame is a new stream (reconnect,
#: a looped file): its open tracks end.
CLOCK_JUMP_S = 1.0


@dataclass(frozen=True)
class IndexerConfig:
    min_frames: int = 5
    min_score: float = 0.45
    end_after_s: float = 3.0
    max_track_s: float = 600.0
    max_open: int = 500  # per camera: memory stays bounded whatever the detector does


@dataclass
class Crop:
    """What the caller keeps of a track's best sighting."""

    thumbnail: bytes
    colour: str | None
    area: float
    score: float


@dataclass
class OpenTrack:
    camera_id: str
    track_id: int
    first_seen: float
    last_seen: float
    frames: int = 0
    scores: list[float] = field(default_factory=list)
    votes: Counter[int] = field(default_factory=Counter)
    crop: Crop | None = None

    def object_class(self) -> int:
        """The class most frames said (ties: the one seen first)."""
        return self.votes.most_common(1)[0][0]

    def median_score(self) -> float:
        return float(statistics.median(self.scores)) if self.scores else 0.0


@dataclass(frozen=True)
class FinishedTrack:
    """A track that ended; ``confirmed`` says whether it belongs in the index."""

    camera_id: str
    track_id: int
    class_id: int
    first_seen: float
    last_seen: float
    frames: int
    score: float
    crop: Crop | None
    confirmed: bool


@dataclass(frozen=True)
class CropRequest:
    """Crop this box (analysed-frame pixels) of this frame for the track."""

    camera_id: str
    track_id: int
    box: tuple[float, float, float, float]
    score: float
    area: float


@dataclass
class Observed:
    crops: list[CropRequest] = field(default_factory=list)
    ended: list[FinishedTrack] = field(default_factory=list)


@dataclass
class _Camera:
    open: dict[int, OpenTrack] = field(default_factory=dict)
    last_ts: float | None = None
    last_received: float = 0.0


class TrackIndexer:
    """Open tracks of every camera. Not thread-safe: one thread (``tracks``) drives it."""

    def __init__(self, cfg: IndexerConfig | None = None) -> None:
        self.cfg = cfg or IndexerConfig()
        self._cameras: dict[str, _Camera] = {}
        self.rejected = 0  # ended tracks that were not confirmed

    def open_tracks(self, camera_id: str) -> list[OpenTrack]:
        cam = self._cameras.get(camera_id)
        return [] if cam is None else list(cam.open.values())

    def observe(
        self, camera_id: str, ts: float, tracked: Detections, *, received: float = 0.0
    ) -> Observed:
        """One analysed frame of a camera at frame time ``ts`` (epoch seconds);
        ``received`` is the caller's clock, for :meth:`expire_idle`."""
        cam = self._cameras.setdefault(camera_id, _Camera())
        out = Observed()
        if cam.last_ts is not None and ts < cam.last_ts - CLOCK_JUMP_S:
            out.ended += self._end(cam, list(cam.open))
        cam.last_ts, cam.last_received = ts, received
        for i in np.flatnonzero(tracked.tracker_id >= 0):
            request = self._update(cam, camera_id, ts, tracked, int(i), out)
            if request is not None:
                out.crops.append(request)
        gone = [tid for tid, t in cam.open.items() if ts - t.last_seen > self.cfg.end_after_s]
        out.ended += self._end(cam, gone)
        if len(cam.open) > self.cfg.max_open:  # the least recently seen go first
            stale = sorted(cam.open.values(), key=lambda t: t.last_seen)
            out.ended += self._end(cam, [t.track_id for t in stale[: -self.cfg.max_open]])
        return out

    def _update(
        self, cam: _Camera, camera_id: str, ts: float, tracked: Detections, i: int, out: Observed
    ) -> CropRequest | None:
        tid = int(tracked.tracker_id[i])
        track = cam.open.get(tid)
        if track is not None and ts - track.first_seen >= self.cfg.max_track_s:
            out.ended += self._end(cam, [tid])  # a long stay: go on as a new entry
            track = None
        if track is None:
            track = cam.open[tid] = OpenTrack(camera_id, tid, ts, ts)
        score = float(tracked.confidence[i])
        track.last_seen = max(track.last_seen, ts)
        track.frames += 1
        track.scores.append(score)
        track.votes[int(tracked.class_id[i])] += 1
        x1, y1, x2, y2 = (float(v) for v in tracked.xyxy[i])
        area = max(0.0, x2 - x1) * max(0.0, y2 - y1)
        if area <= 0 or score < self.cfg.min_score:
            return None
        if track.crop is not None and area < track.crop.area * CROP_GROWTH:
            return None
        return CropRequest(camera_id, tid, (x1, y1, x2, y2), score, area)

    def set_crop(self, camera_id: str, track_id: int, crop: Crop) -> None:
        """The crop asked for by a :class:`CropRequest` (ignored if the track ended)."""
        cam = self._cameras.get(camera_id)
        track = None if cam is None else cam.open.get(track_id)
        if track is not None:
            track.crop = crop

    def expire_idle(self, now: float, idle_s: float) -> list[FinishedTrack]:
        """End the tracks of cameras that sent no frame for ``idle_s`` of the caller's
        clock (a camera gone offline sends nothing that would end them)."""
        out: list[FinishedTrack] = []
        for cam in self._cameras.values():
            if cam.open and now - cam.last_received > idle_s:
                out += self._end(cam, list(cam.open))
        return out

    def flush(self) -> list[FinishedTrack]:
        """End every open track (the hub is stopping)."""
        out: list[FinishedTrack] = []
        for cam in self._cameras.values():
            out += self._end(cam, list(cam.open))
        return out

    def _end(self, cam: _Camera, track_ids: list[int]) -> list[FinishedTrack]:
        out = []
        for tid in track_ids:
            track = cam.open.pop(tid)
            score = track.median_score()
            confirmed = track.frames >= self.cfg.min_frames and score >= self.cfg.min_score
            if not confirmed:
                self.rejected += 1
            out.append(
                FinishedTrack(
                    track.camera_id,
                    tid,
                    track.object_class(),
                    track.first_seen,
                    track.last_seen,
                    track.frames,
                    round(score, 3),
                    track.crop,
                    confirmed,
                )  # fmt: skip
            )
        return out
