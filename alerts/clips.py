"""Evidence clips and evidence retention.

:class:`ClipRecorder` keeps a :class:`~ingest.ring.PacketRing` per camera and, on its
own ``clips`` thread, waits until the seconds after an alert have been buffered,
remuxes the packets from the keyframe before the window to its end into an MP4 (no
re-encoding: the camera's own H.264, muxed in memory), stores it through the evidence
storage port (:mod:`core.storage`) next to the snapshots (``<camera>/<day>/<alert>.mp4``)
with its SHA-256 and publishes a :class:`~alerts.messages.ClipMessage` so the alert
service attaches it to the stored alert. Analysis workers only queue a request.

:class:`EvidenceRetention` deletes evidence objects past ``alerts.retention_days`` or
beyond ``alerts.evidence_quota_gb`` (oldest first), never those of an open alert, and
never the track index's (``tracks/``: its own retention deletes them with their rows).
"""

from __future__ import annotations

import hashlib
import io
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av

from alerts.config import AlertsConfig
from alerts.evidence import evidence_key
from alerts.messages import EVENTS_TOPIC, ClipMessage
from alerts.ports import EventBus
from core import metrics
from core.storage import TRACKS_PREFIX, EvidenceStorage, StorageError, as_storage
from ingest.ring import ClipPackets, PacketRing

log = logging.getLogger(__name__)

#: How long after a clip's end to wait for its packets (a stalled camera) before
#: writing what the ring holds.
GRACE_S = 10.0


def _timestamps(clip: ClipPackets) -> list[tuple[bytes, int, int, int, bool]]:
    """(data, pts, dts, duration, key) rebased so the first packet is at 0, in stream order;
    packets without a timestamp or with a dts going backwards are dropped (the muxer
    would refuse the file)."""
    rows = []
    for p in clip.packets:
        pts = p.pts if p.pts is not None else p.dts
        dts = p.dts if p.dts is not None else p.pts
        if pts is not None and dts is not None:
            rows.append((p.data, pts, dts, p.duration, p.keyframe))
    if not rows:
        return []
    base = min(rows[0][1], rows[0][2])
    out: list[tuple[bytes, int, int, int, bool]] = []
    for data, pts, dts, duration, key in rows:
        if out and dts - base <= out[-1][2]:
            continue
        out.append((data, pts - base, dts - base, duration, key))
    return out


def encode_clip(clip: ClipPackets) -> bytes:
    """Remux ``clip`` into MP4 bytes (in memory: a few MB)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as out:
        stream = out.add_stream_from_template(clip.template.stream)
        stream.time_base = clip.template.time_base
        for data, pts, dts, duration, key in _timestamps(clip):
            packet = av.Packet(data)
            packet.pts, packet.dts, packet.duration = pts, dts, duration
            packet.time_base = clip.template.time_base
            packet.is_keyframe = key
            packet.stream = stream
            out.mux(packet)
    return buffer.getvalue()


def write_clip(clip: ClipPackets, path: Path) -> str:
    """Remux ``clip`` into an MP4 file at ``path`` (atomically, outside any evidence
    storage: tools and tests); its SHA-256."""
    data = encode_clip(clip)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


#: Told when a requested window's clip is stored: its reference, SHA-256 and size in
#: bytes, or (None, None, 0) when no clip could be written.
ClipDone = Callable[[str | None, str | None, int], None]


@dataclass
class ClipRequest:
    alert_id: str
    camera_id: str
    start: float  # clip clock: keyframe at or before this
    end: float
    created_at: float  # names the day folder, like the snapshots
    # A window requested by another user of the ring (the track index): the key to
    # store it under, and who to tell (reference, SHA-256, size; None when not written).
    key: str | None = None
    on_done: ClipDone | None = None

    @property
    def deadline(self) -> float:
        return self.end + GRACE_S

    @property
    def what(self) -> str:
        return f"{'clip' if self.on_done else 'alert'} {self.alert_id}"


class ClipRecorder:
    """Rings per camera and the ``clips`` thread that cuts and publishes clips."""

    def __init__(
        self,
        bus: EventBus,
        cfg: AlertsConfig,
        storage: EvidenceStorage | Path,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``storage``: where clips are stored (a plain folder: references are paths)."""
        self.bus = bus
        self.cfg = cfg
        self.storage = as_storage(storage)
        self.clock = clock
        self.rings: dict[str, PacketRing] = {}
        self._requests: queue.Queue[ClipRequest | None] = queue.Queue()
        self._pending: list[ClipRequest] = []
        self._thread = threading.Thread(target=self._run, name="clips", daemon=True)
        self.written = 0
        self.failed = 0

    @property
    def threads(self) -> list[threading.Thread]:
        return [self._thread] if self.cfg.clips_enabled else []

    def ring(self, camera_id: str) -> PacketRing | None:
        """The camera's ring (the reader's packet sink); None when clips are off."""
        if not self.cfg.clips_enabled:
            return None
        if camera_id not in self.rings:
            max_bytes = int(self.cfg.clip_buffer_mb * 1024 * 1024)
            self.rings[camera_id] = PacketRing(self.cfg.clip_buffer_s, max_bytes)
        return self.rings[camera_id]

    def memory(self) -> dict[str, int]:
        """Bytes of encoded video held per camera."""
        return {cam: ring.bytes_held for cam, ring in self.rings.items()}

    def start(self) -> None:
        if self.cfg.clips_enabled:
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what can be written now, then stop (clips still waiting are cut short)."""
        if self._thread.is_alive():
            self._requests.put(None)
            self._thread.join(timeout)

    def request(self, alert_id: str, camera_id: str, started_at: float, created_at: float) -> bool:
        """Queue the clip of an alert (cheap; called by analysis workers)."""
        if camera_id not in self.rings or not self._thread.is_alive():
            return False
        start = min(started_at, created_at) - self.cfg.clip_pre_s
        end = created_at + self.cfg.clip_post_s
        self._requests.put(ClipRequest(alert_id, camera_id, start, end, created_at))
        return True

    def request_window(
        self,
        camera_id: str,
        start: float,
        end: float,
        key: str,
        on_done: ClipDone,
    ) -> bool:
        """Queue a clip of [start, end] (the ring's clock; capped to what it holds) to be
        stored under ``key``; ``on_done`` is called on the clips thread, instead of a
        ClipMessage being published. False when there is no ring or thread."""
        if camera_id not in self.rings or not self._thread.is_alive():
            return False
        name = key.rsplit("/", 1)[-1].removesuffix(".mp4")
        self._requests.put(ClipRequest(name, camera_id, start, end, end, key, on_done))
        return True

    def _run(self) -> None:
        stopping = False
        while self._pending or not stopping:
            try:
                item = self._requests.get(timeout=0.2)
                if item is None:
                    stopping = True
                else:
                    self._pending.append(item)
                self._write_ready(force=stopping)
            except queue.Empty:
                self._write_ready(force=False)
            except Exception:  # noqa: BLE001 - the thread must outlive any one clip
                log.exception("clip thread: pass failed; going on")

    def _write_ready(self, force: bool) -> None:
        now = self.clock()
        for req in list(self._pending):
            ring = self.rings[req.camera_id]
            newest = ring.newest_time()
            if force or (newest is not None and newest >= req.end) or now >= req.deadline:
                self._pending.remove(req)
                self._write(req, ring)

    def _write(self, req: ClipRequest, ring: PacketRing) -> None:
        clip = ring.cut(req.start, req.end)
        if clip is None:
            log.warning("%s: no clip (no keyframe of camera %s buffered in the window)",
                        req.what, req.camera_id)  # fmt: skip
            self.failed += 1
            if req.on_done is not None:
                req.on_done(None, None, 0)
            return
        key = req.key or evidence_key(req.camera_id, req.created_at, f"{req.alert_id}.mp4")
        try:
            data = encode_clip(clip)
            ref = self.storage.put(key, data)
        except (OSError, StorageError, av.error.FFmpegError) as exc:
            log.error("%s: clip not saved: %s", req.what, exc)
            self.failed += 1
            metrics.EVIDENCE_DROPPED.labels("clip").inc()
            if req.on_done is not None:
                req.on_done(None, None, 0)
            return
        sha = hashlib.sha256(data).hexdigest()
        if req.on_done is not None:
            self.written += 1
            req.on_done(ref, sha, len(data))
            return
        message = ClipMessage(req.alert_id, ref, sha, clip.start, clip.end)
        self.bus.publish(EVENTS_TOPIC, message.to_dict())
        self.written += 1


# -- retention ---------------------------------------------------------------------


class EvidenceRetention:
    """Deletes old evidence hourly on the ``retention`` thread; never dies silently
    (a failed pass is logged and the next one runs)."""

    def __init__(
        self,
        cfg: AlertsConfig,
        storage: EvidenceStorage | Path,
        protected: Callable[[], set[str]],
        *,
        interval_s: float = 3600.0,
        exclude: tuple[str, ...] = (TRACKS_PREFIX,),
    ) -> None:
        """``protected``: the references of open alerts' evidence; ``exclude``: key
        prefixes another retention owns."""
        self.cfg = cfg
        self.storage = as_storage(storage)
        self.protected = protected
        self.exclude = exclude
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self.deleted = 0

    @property
    def threads(self) -> list[threading.Thread]:
        return [self._thread]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while True:
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - retention must keep running
                log.exception("evidence retention pass failed; retrying next hour")
            if self._stop.wait(self.interval_s):
                return

    def sweep(self, now: float | None = None) -> list[str]:
        """One pass; the keys deleted."""
        now = time.time() if now is None else now
        keep = set()
        for ref in self.protected():
            try:
                keep.add(self.storage.key(ref))
            except StorageError:  # a row pointing outside the storage: nothing to keep
                continue
        every = [o for o in self.storage.objects() if not o.key.startswith(self.exclude)]
        # Open alerts' files count towards the quota but are never deleted.
        total = sum(o.size for o in every)
        files = sorted((o.mtime, o.size, o.key) for o in every if o.key not in keep)
        quota = int((self.cfg.evidence_quota_gb or 0) * 1024**3)
        cutoff = now - self.cfg.retention_days * 86400
        deleted = []
        for mtime, size, key in files:  # oldest first
            if mtime >= cutoff and (not quota or total <= quota):
                break
            self.storage.delete(key)
            total -= size
            deleted.append(key)
        if deleted:
            log.info("evidence retention: %d file(s) deleted from %s", len(deleted),
                     self.storage.describe())  # fmt: skip
        self.deleted += len(deleted)
        return deleted
