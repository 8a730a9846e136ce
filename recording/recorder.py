"""The recorder: every recorded camera's packets into MP4 segments, indexed.

The recorder watches each camera's live feed like a viewer (:class:`ingest.live.LiveFeed`:
the reader's own encoded packets, from the last keyframe on), so it needs nothing from
the reader but the feed. The viewer callback only queues (it runs on the camera's reader
thread); the ``recorder`` thread writes:

* a segment is cut at the first keyframe after ``record.segment_s`` seconds, at a new
  connection to the camera (its timestamps and parameters start afresh) and at a
  keyframe carrying other parameter sets than the segment's (a resolution or codec
  profile change): one segment, one set of parameters;
* ``mode: events`` keeps the last ``pre_s`` seconds (whole GOPs) in memory and writes only
  from ``pre_s`` before an alert of the camera until ``post_s`` after it (alerts are read
  from the database every ``ALERT_POLL_S``, so the worker holding the camera sees those of
  any alert service); ``mode: motion`` the same around motion (the analysis motion gate),
  ``mode: objects`` around moving tracked objects (the analysis, see
  :func:`analytics.activity.moving_objects`) and alerts;
* every recorded camera's motion and moving objects are counted per segment (seconds with
  any: ``motion_s``, ``objects_s``), for the timeline's activity marks;
* a closed segment is remuxed to a faststart MP4, stored (temporary name, then rename),
  hashed and indexed with its alert count. At start, spool files left by a crash are
  repaired (their readable fragments stored and indexed) or dropped, with a log line.

Storage failures (disk full, unwritable) lose the segment, are counted and reported in
``health()`` and on /metrics, and never stop the thread or the other cameras.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from camera_registry.config import RecordConfig
from core.storage import EvidenceStorage, StorageError
from ingest.live import LiveFeed, LiveStart
from ingest.ring import BufferedPacket
from recording.params import parameter_sets
from recording.segments import (
    FinishedSegment,
    OpenSegment,
    SegmentFormat,
    finalize,
    parse_part_name,
    part_name,
    remove_quietly,
    spool_files,
)
from recording.store import SegmentRecord, new_id

log = logging.getLogger(__name__)

#: Seconds between two looks at the alerts table (events mode).
ALERT_POLL_S = 2.0
#: Events mode keeps this much more than ``pre_s`` in memory: an alert is stored a moment
#: after the event that raised it.
PRE_MARGIN_S = 10.0
#: At most one motion (or moving-object) mark a second per camera: a mark stands for a
#: second with motion in the segment's counts.
MOTION_MARK_S = 1.0
#: Marks older than this are forgotten (a segment is stored long before).
MARKS_KEPT_S = 900.0
#: A queue this long means the writer cannot keep up: the camera's packets are dropped
#: until its next keyframe (counted), the other cameras go on.
MAX_QUEUE = 20000


def segment_key(camera_id: str, start: float, prefix: str = "") -> str:
    day = datetime.fromtimestamp(start, UTC).strftime("%Y%m%d")
    return f"{prefix}{camera_id}/{day}/{int(start * 1000)}.mp4"


@dataclass
class CameraState:
    """What the recorder thread keeps for one camera."""

    camera_id: str
    record: RecordConfig
    fmt: SegmentFormat | None = None
    segment: OpenSegment | None = None
    pre: deque[BufferedPacket] = field(default_factory=deque)  # events: recent GOPs
    want_from: float = 0.0  # events: the window to write, [want_from, want_until]
    want_until: float = 0.0
    need_key: bool = True  # after a drop or a new stream: wait for a keyframe
    segments: int = 0
    failed: int = 0
    dropped: int = 0
    last_error: str | None = None
    last_segment_at: float | None = None
    # seconds with motion / with moving objects (one mark a second at most), for the
    # segments' counts
    marks: dict[str, deque[float]] = field(
        default_factory=lambda: {"motion": deque(), "objects": deque()}
    )


class Recorder:
    """Segments of the recorded cameras (``start()``, ``stop()``, ``health()``)."""

    def __init__(
        self,
        storage: EvidenceStorage,
        sessions: sessionmaker[Session],
        spool: Path,
        *,
        clock: Callable[[], float] = time.time,
        prefix: str = "",
    ) -> None:
        """``storage``: where segments are stored (keys ``<prefix><camera>/<day>/<ms>.mp4``);
        ``spool``: this host's folder for the open segments (never shared)."""
        self.storage = storage
        self.prefix = prefix
        self.sessions = sessions
        self.spool = spool
        self.clock = clock
        self.cameras: dict[str, CameraState] = {}  # the recorder thread's
        self.records: dict[str, RecordConfig] = {}  # the cameras followed, as asked
        self._unsubscribe: dict[str, Callable[[], None]] = {}
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._last_alert_poll = 0.0
        self._marked_at: dict[tuple[str, str], float] = {}  # (camera, kind): last mark queued
        self._alerts_since: float | None = None
        #: Called on the recorder thread every ALERT_POLL_S (the service follows the
        #: cameras read in this process with it).
        self.tick: Callable[[], None] | None = None
        self.repaired = 0
        self.dropped_parts = 0
        self.storage_ok = True
        self.storage_error: str | None = None
        self.cpu_s = 0.0  # the recorder thread's CPU time so far (what recording costs)

    @property
    def threads(self) -> list[threading.Thread]:
        return [self._thread]

    # -- cameras ------------------------------------------------------------------------

    def add_camera(self, camera_id: str, record: RecordConfig, feed: LiveFeed) -> bool:
        """Record ``camera_id`` from ``feed`` as ``record`` says; False when its mode is off."""
        if record.mode == "off":
            return False
        self.records[camera_id] = record
        self._queue.put((camera_id, ("add", record)))  # the thread makes its state
        self._subscribe(camera_id, feed)
        return True

    def remove_camera(self, camera_id: str) -> None:
        """Stop recording a camera (its lease moved, its mode changed): the open segment
        is closed, stored and indexed."""
        unsubscribe = self._unsubscribe.pop(camera_id, None)
        if unsubscribe is not None:
            unsubscribe()
        self.records.pop(camera_id, None)
        self._queue.put((camera_id, "remove"))

    def _subscribe(self, camera_id: str, feed: LiveFeed) -> None:
        overflowing = False

        def viewer(item: BufferedPacket | None) -> None:  # on the camera's reader thread
            nonlocal overflowing
            if item is None:  # new connection or camera stopped: close, then follow anew
                self._queue.put((camera_id, None))
                if not self._stop.is_set() and camera_id in self._unsubscribe:
                    self._subscribe(camera_id, feed)
                return
            size = self._queue.qsize()
            if overflowing and size < MAX_QUEUE // 2:
                overflowing = False  # caught up: go on from the next keyframe
            if overflowing:
                return
            if size >= MAX_QUEUE:
                overflowing = True  # said once; packets dropped until the queue drains
                self._queue.put((camera_id, "overflow"))
                return
            self._queue.put((camera_id, item))

        start, unsubscribe = feed.subscribe(viewer)
        self._unsubscribe[camera_id] = unsubscribe
        if start is not None:
            self._queue.put((camera_id, start))

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.recover()
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Close every open segment (stored and indexed), then stop."""
        for camera_id in list(self._unsubscribe):
            self._unsubscribe.pop(camera_id)()
        self._stop.set()
        self._queue.put(("", "stop"))
        if self._thread.is_alive():
            self._thread.join(timeout)

    def health(self) -> dict[str, Any]:
        cams = {
            c.camera_id: {"mode": c.record.mode, "recording": c.segment is not None,
                          "segments": c.segments, "failed": c.failed, "dropped": c.dropped,
                          "last_error": c.last_error, "last_segment_at": c.last_segment_at}
            for c in self.cameras.values()
        }  # fmt: skip
        alive = self._thread.is_alive()
        return {
            "status": "ok" if alive and self.storage_ok else "degraded",
            "thread_alive": alive,
            "storage": self.storage.describe(),
            "storage_ok": self.storage_ok,
            "storage_error": self.storage_error,
            "repaired": self.repaired,
            "dropped_parts": self.dropped_parts,
            "queue": self._queue.qsize(),
            "cpu_s": round(self.cpu_s, 3),
            "cameras": cams,
        }

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                camera_id, item = self._queue.get(timeout=0.5)
            except queue.Empty:
                camera_id, item = "", None
            try:
                if item == "stop":
                    self._close_all()
                    return
                if camera_id:
                    self._handle(camera_id, item)
                self._poll_alerts()
                self.cpu_s = time.thread_time()
            except Exception:  # noqa: BLE001 - the recorder outlives any one packet
                log.exception("recorder: camera %s: failed; going on", camera_id or "-")
                state = self.cameras.get(camera_id)
                if state is not None:  # start afresh at the next keyframe
                    self._abandon(state)

    def _handle(self, camera_id: str, item: Any) -> None:
        state = self.cameras.get(camera_id)
        if isinstance(item, tuple) and item[0] == "add":
            if state is not None:  # followed again (a lease back, a new mode)
                self._close(state)
            self.cameras[camera_id] = CameraState(camera_id, item[1])
            return
        if state is None:
            return
        if item == "remove":
            self._close(state)
            if camera_id not in self._unsubscribe:  # not added again meanwhile
                del self.cameras[camera_id]
        elif item is None:
            self._close(state)
            state.fmt, state.need_key = None, True
            state.pre.clear()
        elif item == "overflow":
            state.dropped += 1
            self._close(state)
            state.need_key = True
        elif isinstance(item, LiveStart):
            self._close(state)
            state.fmt, state.need_key = SegmentFormat.of(item.template, item.codec), True
            state.pre.clear()
            for packet in item.packets:
                self._packet(state, packet)
        elif isinstance(item, BufferedPacket):
            self._packet(state, item)
        elif isinstance(item, tuple) and item[0] == "mark":
            self._mark(state, item[1], item[2] if len(item) > 2 else "events")

    def _packet(self, state: CameraState, p: BufferedPacket) -> None:
        if state.fmt is None:
            return
        if state.need_key and not p.keyframe:
            return
        state.need_key = False
        if p.keyframe:
            params = parameter_sets(state.fmt.codec, p.data)
            if params is not None and state.fmt.params is None:
                state.fmt.params = params  # the first keyframe's: the header already has them
            elif params is not None and params != state.fmt.params:
                log.info("camera %s: stream parameters changed: new segment", state.camera_id)
                self._close(state)
                state.fmt = state.fmt.with_params(params, p.data)
                state.pre.clear()
        if state.record.mode in ("events", "motion", "objects"):
            self._events_packet(state, p)
        else:
            self._write(state, p)

    def _events_packet(self, state: CameraState, p: BufferedPacket) -> None:
        if state.want_from <= p.t <= state.want_until:
            if state.segment is None:  # the window opens: from the keyframe before it
                state.pre.append(p)
                self._flush_pre(state, state.want_from)
                return
            self._write(state, p)
            return
        if state.segment is not None and p.keyframe:
            self._close(state)
        if state.segment is not None:  # finish the GOP under way
            self._write(state, p)
            return
        state.pre.append(p)
        horizon = p.t - state.record.pre_s - PRE_MARGIN_S
        # Drop whole GOPs older than the horizon (the buffer must start on a keyframe).
        while len(state.pre) > 1:
            second_key = next((i for i, q in enumerate(state.pre) if q.keyframe and i > 0), None)
            if second_key is None or state.pre[second_key].t > horizon:
                break
            for _ in range(second_key):
                state.pre.popleft()

    def _flush_pre(self, state: CameraState, start: float) -> None:
        """Write the buffered packets from the last keyframe at or before ``start``."""
        buffered = list(state.pre)
        state.pre.clear()
        keys = [i for i, q in enumerate(buffered) if q.keyframe and q.t <= start]
        first = keys[-1] if keys else next((i for i, q in enumerate(buffered) if q.keyframe), 0)
        for q in buffered[first:]:
            if q.t <= state.want_until:
                self._write(state, q)
            else:  # past the window: the GOP under way is finished, the rest buffered
                self._events_packet(state, q)

    def mark(self, camera_id: str, t: float) -> None:
        """An alert of ``camera_id`` at ``t`` (thread-safe): events mode records around it."""
        self._queue.put((camera_id, ("mark", t)))

    def motion(self, camera_id: str, t: float) -> None:
        """Motion on ``camera_id`` at wall time ``t`` (the analysis motion gate, on an
        analysis thread): counted in the segment's ``motion_s``; motion mode records
        around it. At most one mark a second per camera is queued (the gate sees every
        analysed frame)."""
        self._activity(camera_id, t, "motion")

    def wants_objects(self, camera_id: str, t: float) -> bool:
        """Whether the analysis should look for moving objects on ``camera_id`` at wall
        time ``t``: it is recorded here (counted, and recorded around them in objects
        mode) and its last mark is a second old (one a second is all that is kept)."""
        return camera_id in self.records and (
            t - self._marked_at.get((camera_id, "objects"), 0.0) >= MOTION_MARK_S
        )

    def objects(self, camera_id: str, t: float) -> None:
        """Moving tracked objects on ``camera_id`` at wall time ``t`` (the analysis):
        counted in the segment's ``objects_s``; objects mode records around them."""
        self._activity(camera_id, t, "objects")

    def _activity(self, camera_id: str, t: float, kind: str) -> None:
        if camera_id not in self.records:
            return
        if t - self._marked_at.get((camera_id, kind), 0.0) < MOTION_MARK_S:
            return
        self._marked_at[(camera_id, kind)] = t
        self._queue.put((camera_id, ("mark", t, kind)))

    def _mark(self, state: CameraState, t: float, kind: str = "events") -> None:
        """Open (or widen) the window [t - pre_s, t + post_s] (``kind``: an alert in events
        or objects mode, motion in motion mode, moving objects in objects mode). An alert
        stored a moment after its event is in the past: what the buffer holds of its
        window is written. Motion and objects are counted in any mode."""
        marks = state.marks.get(kind)
        if marks is not None:
            marks.append(t)
            while marks and marks[0] < t - MARKS_KEPT_S:
                marks.popleft()
        if state.record.mode != kind and not (kind == "events" and state.record.mode == "objects"):
            return
        start, until = t - state.record.pre_s, t + state.record.post_s
        if start > state.want_until:  # a new window, after the last one
            state.want_from = start
        else:
            state.want_from = min(state.want_from, start)
        state.want_until = max(state.want_until, until)
        if state.segment is None and state.pre and state.pre[-1].t >= state.want_from:
            self._flush_pre(state, state.want_from)

    def _write(self, state: CameraState, p: BufferedPacket) -> None:
        seg = state.segment
        if seg is not None and p.keyframe and seg.duration_s >= state.record.segment_s:
            self._close(state)
            seg = None
        if seg is None:
            if not p.keyframe or state.fmt is None:
                return
            mode = state.record.mode
            path = self.spool / part_name(state.camera_id, p.t, mode)
            seg = state.segment = OpenSegment(path, state.fmt, p.t)
        seg.write(p)

    def _abandon(self, state: CameraState) -> None:
        if state.segment is not None:
            state.segment.close()
            remove_quietly(state.segment.path)
            state.segment = None
        state.need_key = True

    def _close(self, state: CameraState) -> None:
        seg = state.segment
        if seg is None:
            return
        state.segment = None
        seg.close()
        try:
            finished = finalize(seg.path, seg.start)
        except av.error.FFmpegError as exc:
            log.error("camera %s: segment %s unreadable, dropped: %s", state.camera_id,
                      seg.path.name, exc)  # fmt: skip
            finished = None
        if finished is not None:
            mode = state.record.mode
            counts = {k: sum(1 for t in m if finished.start <= t < finished.end)
                      for k, m in state.marks.items()}  # fmt: skip
            if self._store(state.camera_id, finished, mode, repaired=False, counts=counts):
                state.segments += 1
                state.last_segment_at = self.clock()
            else:
                state.failed += 1
                state.last_error = self.storage_error
        remove_quietly(seg.path)

    def _close_all(self) -> None:
        for state in self.cameras.values():
            self._close(state)

    # -- storing ------------------------------------------------------------------------

    def _store(
        self, camera_id: str, seg: FinishedSegment, mode: str, *, repaired: bool,
        counts: dict[str, int] | None = None,
    ) -> bool:  # fmt: skip
        key = segment_key(camera_id, seg.start, self.prefix)
        try:
            self.storage.put(key, seg.data)
        except (OSError, StorageError) as exc:
            self.storage_ok = False
            self.storage_error = f"{type(exc).__name__}: {exc}"
            log.error("camera %s: segment %s not stored (%s): lost", camera_id, key,
                      self.storage_error)  # fmt: skip
            return False
        self.storage_ok, self.storage_error = True, None
        row = SegmentRecord(
            id=new_id(), camera_id=camera_id, key=key, start=seg.start, end=seg.end,
            size_bytes=len(seg.data), sha256=hashlib.sha256(seg.data).hexdigest(),
            codec=seg.codec, width=seg.width, height=seg.height, mode=mode,
            alert_count=0, repaired=int(repaired), created_at=self.clock(),
            motion_s=(counts or {}).get("motion", 0), objects_s=(counts or {}).get("objects", 0),
        )  # fmt: skip
        try:
            with self.sessions.begin() as session:
                row.alert_count = _alerts_between(session, camera_id, seg.start, seg.end)
                session.add(row)
        except SQLAlchemyError as exc:  # the file is there; retention's orphan sweep takes it
            log.error("camera %s: segment %s stored but not indexed: %s", camera_id, key, exc)
            return False
        return True

    def recover(self) -> None:
        """Spool files left by a crash: repaired (what still reads is stored and indexed)
        or dropped, each with a log line."""
        for part in spool_files(self.spool):
            camera_id = part.parent.name
            parsed = parse_part_name(part)
            if parsed is None:
                log.warning("recording spool: %s is not a segment, left alone", part)
                continue
            start, mode = parsed
            try:
                finished = finalize(part, start)
            except (av.error.FFmpegError, OSError) as exc:
                finished = None
                log.warning("camera %s: segment %s cut short by a crash is unreadable (%s): "
                            "dropped", camera_id, part.name, exc)  # fmt: skip
            if finished is None:
                self.dropped_parts += 1
                log.warning("camera %s: segment %s cut short by a crash holds no frame: "
                            "dropped", camera_id, part.name)  # fmt: skip
            elif self._store(camera_id, finished, mode, repaired=True):
                self.repaired += 1
                log.warning("camera %s: segment %s cut short by a crash repaired: %.1f s, "
                            "%d packets kept", camera_id, part.name,
                            finished.end - finished.start, finished.packets)  # fmt: skip
            remove_quietly(part)

    # -- alerts (events mode) -------------------------------------------------------------

    def _poll_alerts(self) -> None:
        now = self.clock()
        if now - self._last_alert_poll < ALERT_POLL_S:
            return
        self._last_alert_poll = now
        if self.tick is not None:
            self.tick()
        events = {c.camera_id: c for c in self.cameras.values()
                  if c.record.mode in ("events", "objects")}  # fmt: skip
        if not events:
            return
        since = self._alerts_since if self._alerts_since is not None else now - 60.0
        from alerts.adapters.sql import AlertRecord  # the adapter: imported where used

        try:
            with self.sessions() as session:
                rows = session.execute(
                    select(AlertRecord.camera_id, AlertRecord.created_at)
                    .where(
                        AlertRecord.created_at > since, AlertRecord.camera_id.in_(sorted(events))
                    )  # fmt: skip
                    .order_by(AlertRecord.created_at)
                ).all()
        except SQLAlchemyError as exc:
            log.warning("recorder: alerts not read (%s); next try in %.0f s", exc, ALERT_POLL_S)
            return
        for camera_id, created_at in rows:
            self._mark(events[camera_id], created_at)
            since = max(since, created_at)
        self._alerts_since = since


def _alerts_between(session: Session, camera_id: str, start: float, end: float) -> int:
    from alerts.adapters.sql import AlertRecord  # the adapter: imported where used

    return int(session.scalar(
        select(func.count()).select_from(AlertRecord)
        .where(AlertRecord.camera_id == camera_id, AlertRecord.created_at >= start,
               AlertRecord.created_at < end)
    ) or 0)  # fmt: skip
