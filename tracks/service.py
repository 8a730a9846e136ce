"""The ``tracks`` thread: analysed frames in, indexed tracks (row, thumbnail, clip) out.

Analysis workers hand over each camera's tracked boxes with :meth:`TrackIndex.submit`,
which only puts them on a bounded queue (when it is full the frame is dropped and
counted: search must never slow detection). The thread runs the pure
:class:`~tracks.indexer.TrackIndexer`, crops and names the colour of a track's best
sighting, and when a confirmed track ends stores its thumbnail, inserts its row and
asks the clip recorder for the video from ``clip_margin_s`` before its first to
``clip_margin_s`` after its last sighting. Files go through the evidence storage port
(:mod:`core.storage`) under ``tracks/<camera>/<YYYYMMDD>/<track>.jpg|.mp4``, so API
nodes on other hosts serve them too. An hourly sweep deletes tracks past
``tracks.retention_days`` or beyond ``tracks.max_disk_mb``, rows and files. The
thread never dies: a failed step is logged and the next one runs.
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
from typing import Protocol

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter
from sqlalchemy.orm import Session, sessionmaker

from analytics.types import Detections, class_name
from core import metrics
from core.area import Area
from core.secrets import make_private_dir
from core.storage import (
    TRACKS_PREFIX,
    EvidenceStorage,
    OutsideStorage,
    StorageError,
)
from core.storage_directory import SharedDirectory
from tracks import store
from tracks.colour import dominant_colour
from tracks.config import TracksConfig
from tracks.indexer import Crop, CropRequest, FinishedTrack, IndexerConfig, TrackIndexer

log = logging.getLogger(__name__)

#: Longest side of a thumbnail (pixels) and its JPEG quality.
THUMBNAIL_SIDE = 192
THUMBNAIL_QUALITY = 80
#: Context kept around the box in the thumbnail (share of its size on each side).
THUMBNAIL_MARGIN = 0.1
#: A camera that sent no frame this long (after ``end_after_s``) has its tracks ended.
IDLE_GRACE_S = 10.0


class TrackedFrame(Protocol):
    """What the index needs of an analysed frame (``ingest.reader.SampledFrame`` is one)."""

    @property
    def wall_ts(self) -> float: ...

    @property
    def frame_size(self) -> tuple[int, int]: ...

    @property
    def source(self) -> av.VideoFrame: ...


class ClipSink(Protocol):
    """Cuts a camera's video of a time window into the evidence storage under a key
    (``alerts.clips.ClipRecorder``); ``on_done(ref, sha256, size)`` (None, None, 0 when
    no clip was written)."""

    def request_window(
        self,
        camera_id: str,
        start: float,
        end: float,
        key: str,
        on_done: Callable[[str | None, str | None, int], None],
    ) -> bool: ...


@dataclass(frozen=True)
class CameraPlace:
    """Where a camera is, copied onto its tracks."""

    name: str
    area: Area


class _Frame:
    """One queued frame; its full-resolution picture converted once, when first cropped.

    With the index's own reformatter: a frame's built-in one (``to_ndarray``) is shared
    with the evidence thread converting the same frame, and FFmpeg's scaler context is
    not safe to use from two threads at once.
    """

    def __init__(self, frame: TrackedFrame, reformatter: VideoReformatter) -> None:
        self.frame = frame
        self.reformatter = reformatter
        self._image: np.ndarray | None = None

    def image(self) -> tuple[np.ndarray, float, float]:
        """The picture and the scale from analysed-frame pixels to it."""
        if self._image is None:
            bgr = self.reformatter.reformat(self.frame.source, format="bgr24")
            self._image = bgr.to_ndarray()
        w, h = self.frame.frame_size
        return self._image, self._image.shape[1] / w, self._image.shape[0] / h


def crop_box(image: np.ndarray, box: tuple[float, float, float, float], margin: float = 0.0
             ) -> np.ndarray:  # fmt: skip
    """The pixels of ``box`` (image pixels) widened by ``margin`` of its size, clipped."""
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    h, w = image.shape[:2]
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    return image[top:bottom, left:right]


def thumbnail_jpeg(crop: np.ndarray) -> bytes:
    """A small JPEG of a crop (its longest side at most ``THUMBNAIL_SIDE``)."""
    h, w = crop.shape[:2]
    scale = min(1.0, THUMBNAIL_SIDE / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def make_crop(frame: _Frame, req: CropRequest) -> Crop | None:
    image, sx, sy = frame.image()
    x1, y1, x2, y2 = req.box
    box = (x1 * sx, y1 * sy, x2 * sx, y2 * sy)
    exact = crop_box(image, box)
    if exact.size == 0:
        return None
    thumb = thumbnail_jpeg(crop_box(image, box, THUMBNAIL_MARGIN))
    return Crop(thumb, dominant_colour(exact), req.area, req.score)


class TrackIndex:
    """The track index of a hub: queue, indexer, files, rows and clips."""

    def __init__(
        self,
        cfg: TracksConfig,
        sessions: sessionmaker[Session],
        storage: EvidenceStorage | Path,
        class_names: tuple[str, ...] | list[str],
        place: Callable[[str], CameraPlace | None],
        clips: ClipSink | None = None,
        *,
        queue_size: int = 64,
        sweep_interval_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``storage``: the evidence storage (files under ``tracks/``; ``clips`` must store
        into the same one), or a plain folder of the index's own (files at its top,
        references absolute paths: tests and tools)."""
        self.cfg = cfg
        self.sessions = sessions
        self.storage: EvidenceStorage
        if isinstance(storage, Path):
            self.storage, self.prefix = SharedDirectory(storage, absolute_refs=True), ""
            self.directory: Path | None = storage
        else:
            self.storage, self.prefix = storage, TRACKS_PREFIX
            self.directory = storage.local_path(TRACKS_PREFIX)
        self.class_names = tuple(class_names)
        self.place = place
        self.clips = clips if cfg.clips else None
        self.sweep_interval_s = sweep_interval_s
        self.clock = clock
        self.indexer = TrackIndexer(
            IndexerConfig(cfg.min_frames, cfg.min_score, cfg.end_after_s, cfg.max_track_s)
        )
        self._queue: queue.Queue[tuple[str, TrackedFrame, Detections] | None] = queue.Queue(
            maxsize=queue_size
        )
        self._thread = threading.Thread(target=self._run, name="tracks", daemon=True)
        self._reformatter = VideoReformatter()  # used by the tracks thread only
        self._stopping = False
        self.dropped = 0  # frames not indexed: the queue was full
        self.indexed = 0
        self.clips_written = 0
        self.deleted = 0
        self.errors = 0
        self.thumbnails_dropped = 0  # indexed without a thumbnail: the write failed

    @property
    def threads(self) -> list[threading.Thread]:
        return [self._thread] if self.cfg.enabled else []

    def start(self) -> None:
        if self.cfg.enabled:
            if self.directory is not None:
                make_private_dir(self.directory)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Index the tracks still open, then stop (before the clip recorder stops, so
        their clips are still written)."""
        if self._thread.is_alive():
            self._stopping = True
            self._queue.put(None)
            self._thread.join(timeout)

    # -- called by analysis workers ------------------------------------------------

    def submit(self, camera_id: str, frame: TrackedFrame, tracked: Detections) -> None:
        """Hand over one analysed frame's tracks (returns at once)."""
        if self._stopping or not self._thread.is_alive():
            return
        try:
            self._queue.put_nowait((camera_id, frame, tracked))
        except queue.Full:
            self.dropped += 1

    # -- the tracks thread ------------------------------------------------------------

    def _run(self) -> None:
        next_idle = next_sweep = time.monotonic()
        while True:
            try:
                items = [self._queue.get(timeout=0.5)]
            except queue.Empty:
                items = []
            if items and items[0] is None:
                break
            try:
                for item in items:
                    if item is not None:
                        self._handle(*item)
                now = time.monotonic()
                if now >= next_idle:
                    next_idle = now + 1.0
                    idle_s = self.cfg.end_after_s + IDLE_GRACE_S
                    self._finish(self.indexer.expire_idle(now, idle_s))
                if now >= next_sweep:
                    next_sweep = now + self.sweep_interval_s
                    self.sweep()
            except Exception:  # noqa: BLE001 - the index must outlive any one frame
                self.errors += 1
                log.exception("tracks: pass failed; going on")
        try:
            self._finish(self.indexer.flush())
        except Exception:  # noqa: BLE001
            log.exception("tracks: open tracks not indexed at stop")

    def _handle(self, camera_id: str, frame: TrackedFrame, tracked: Detections) -> None:
        observed = self.indexer.observe(camera_id, frame.wall_ts, tracked,
                                        received=time.monotonic())  # fmt: skip
        held = _Frame(frame, self._reformatter)
        for req in observed.crops:
            try:
                crop = make_crop(held, req)
            except (ValueError, cv2.error, av.error.FFmpegError) as exc:
                log.warning("camera %s track %d: no thumbnail: %s", camera_id, req.track_id, exc)
                continue
            if crop is not None:
                self.indexer.set_crop(camera_id, req.track_id, crop)
        self._finish(observed.ended)

    def _finish(self, ended: list[FinishedTrack]) -> None:
        for track in ended:
            if track.confirmed:
                self._index(track)

    def _key(self, camera_id: str, at: float, name: str) -> str:
        return f"{self.prefix}{camera_id}/{time.strftime('%Y%m%d', time.gmtime(at))}/{name}"

    def _index(self, track: FinishedTrack) -> None:
        place = self.place(track.camera_id) or CameraPlace(track.camera_id, Area())
        track_id = str(uuid.uuid4())
        thumbnail: str | None = None
        if track.crop is not None:
            try:
                thumbnail = self.storage.put(
                    self._key(track.camera_id, track.first_seen, f"{track_id}.jpg"),
                    track.crop.thumbnail,
                )
            except (OSError, StorageError) as exc:  # a full disk: the row matters more
                self.thumbnails_dropped += 1
                metrics.EVIDENCE_DROPPED.labels("track_thumbnail").inc()
                log.warning("camera %s track %d: thumbnail not written (%s); indexed without",
                            track.camera_id, track.track_id, exc)  # fmt: skip
        area = place.area
        record = store.TrackRecord(
            id=track_id, camera_id=track.camera_id, camera_name=place.name,
            county=area.county, township=area.township, village=area.village, grid=area.grid,
            track_id=track.track_id, object_class=class_name(track.class_id, self.class_names),
            colour=track.crop.colour if track.crop else None, first_seen=track.first_seen,
            last_seen=track.last_seen, frames=track.frames, score=track.score,
            thumbnail_path=thumbnail,
            size_bytes=len(track.crop.thumbnail) if track.crop else 0, created_at=self.clock(),
        )  # fmt: skip
        try:
            with self.sessions.begin() as session:
                store.add_track(session, record)
        except Exception:
            if thumbnail is not None:
                self.storage.delete(thumbnail)
            raise
        self.indexed += 1
        if self.clips is not None:
            margin = self.cfg.clip_margin_s
            self.clips.request_window(
                track.camera_id, track.first_seen - margin, track.last_seen + margin,
                self._key(track.camera_id, track.first_seen, f"{track_id}.mp4"),
                lambda ref, sha, size: self._clip_done(track_id, ref, sha, size),
            )  # fmt: skip

    def _clip_done(self, track_id: str, ref: str | None, sha256: str | None, size: int) -> None:
        """On the clips thread: attach the clip (or delete it if the track is gone)."""
        if ref is None or sha256 is None:
            return
        try:
            with self.sessions.begin() as session:
                attached = store.set_clip(session, track_id, ref, sha256, size)
        except Exception:  # noqa: BLE001 - a clip lost is logged, the clips thread goes on
            log.exception("track %s: clip not attached", track_id)
            attached = False
        if not attached:
            try:
                self.storage.delete(ref)
            except (OSError, StorageError) as exc:
                log.warning("track %s: unattached clip not deleted: %s", track_id, exc)
            return
        self.clips_written += 1

    # -- retention ---------------------------------------------------------------------

    def sweep(self, now: float | None = None) -> int:
        """Delete tracks past the retention period or beyond the disk quota (rows and
        files, oldest first); the number deleted."""
        now = self.clock() if now is None else now
        before = now - self.cfg.retention_days * 86400
        quota = int(self.cfg.max_disk_mb * 1024 * 1024)
        deleted = 0
        while True:
            with self.sessions.begin() as session:
                old = store.expired(session, before, quota)
                for record in old:
                    for ref in (record.thumbnail_path, record.clip_path):
                        if ref:
                            self._delete(record.id, ref)
                store.delete_tracks(session, [r.id for r in old])
            deleted += len(old)
            if len(old) < 500:
                break
        if deleted:
            log.info("tracks retention: %d track(s) deleted", deleted)
        self.deleted += deleted
        return deleted

    def _delete(self, track_id: str, ref: str) -> None:
        """Delete one file of a track being deleted; a reference outside the storage (a
        row pointing elsewhere) is left alone and logged, the row still goes. A failing
        storage raises: the pass is rolled back and the next one tries again."""
        try:
            self.storage.delete(ref)
        except OutsideStorage as exc:
            log.warning("track %s: file not deleted: %s", track_id, exc)
