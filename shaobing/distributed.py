"""The distributed mode's parts around a :class:`~shaobing.worker.Worker` and the API.

* :class:`LeasedCameras`: which cameras a worker reads — the ones it holds a lease on
  (``shaobing/adapters/leases.py``), taken and given up as workers come and go; zones and
  rules changed through an API node reach it over a Redis channel.
* :class:`LiveStatePublisher`: the worker's cameras' status, counters, overlay and latest
  frame in Redis every second, with the address of its live-video server.
* :class:`RedisCameraLive`: the API node's view of the same (``CameraLive``), and signed
  URLs of the worker's live video (``shaobing/media.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict
from typing import Any

import cv2
import redis
from sqlalchemy.exc import SQLAlchemyError

from analytics.config import CameraConfig
from camera_registry.store import invalid_config_error
from ingest.live import LiveFeed
from shaobing.adapters.leases import WorkerLeases
from shaobing.adapters.redis_bus import UNAVAILABLE
from shaobing.adapters.redis_state import JpegFrame, RedisLiveState
from shaobing.media import MediaServer, signed_path
from shaobing.patrol import Patroller
from shaobing.store import Store
from shaobing.worker import Worker, same_stream

log = logging.getLogger(__name__)


def changes_channel(prefix: str) -> str:
    """The Redis channel on which API nodes name a camera whose zones and rules changed."""
    return f"{prefix}:camera-changed"


def announce_change(r: redis.Redis, prefix: str, camera_id: str) -> None:
    """Tell the worker holding a camera to apply its new config (zones and rules, or a
    registry edit: its source, disabled, deleted)."""
    try:
        r.publish(changes_channel(prefix), camera_id)
    except UNAVAILABLE:
        log.warning("camera %s: change saved; its worker applies it on its next lease",
                    camera_id)  # fmt: skip


class LeasedCameras:
    """A worker's cameras in distributed mode: those it holds a lease on.

    A lease round costs O(cameras held + registry changes), never a re-read of the
    registry: the enabled camera ids are read once, then only the rows changed since the
    last read (``updated_at``, with a margin for other hosts' clocks) each round, the whole id
    list again every :attr:`SWEEP_S` (cameras deleted). A camera's config is decrypted and
    validated only when this worker is about to take it; one that cannot be used is
    reported once (``invalid_config``) and tried again only when its row changes.
    """

    #: Seconds between full reads of the enabled ids (deletions leave no changed row).
    SWEEP_S = 60.0
    #: Rows changed this long before the last read are read again (other hosts' clocks,
    #: transactions committed late).
    MARGIN_S = 30.0
    #: Free candidates looked at per round (their holders read in one MGET).
    CANDIDATES = 200

    def __init__(
        self,
        worker: Worker,
        store: Store,
        r: redis.Redis,
        prefix: str,
        leases: WorkerLeases,
        patrol: Patroller | None = None,
    ) -> None:
        self.worker = worker
        self.patrol = patrol
        self.store = store
        self.leases = leases
        self._stop = threading.Event()
        self._enabled: dict[str, float] = {}  # enabled camera id -> its row's updated_at
        self._read_at = 0.0  # wall clock of the last registry read
        self._swept = float("-inf")
        self._invalid: dict[str, float] = {}  # camera id -> updated_at of the unusable row
        self._changed = r.pubsub(ignore_subscribe_messages=True)
        self._channel = changes_channel(prefix)
        self.rounds = 0
        self.thread = threading.Thread(target=self._loop, name="leases", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stop the held cameras (before their leases are free) and leave."""
        self._stop.set()
        self.thread.join(5)
        for camera_id in list(self.leases.held):
            self._drop(camera_id)
        try:
            self.leases.leave()
        except UNAVAILABLE:
            pass

    # -- the registry, as a change feed ----------------------------------------------------

    def enabled(self) -> dict[str, float]:
        """The enabled cameras (id -> row time), kept up to date from the changed rows."""
        asked = time.time()
        try:
            if time.monotonic() - self._swept > self.SWEEP_S:
                rows = self.store.camera_index(enabled_only=True)
                self._enabled = {cid: at for cid, on, at in rows if on}
                self._swept = time.monotonic()
            else:
                rows = self.store.camera_index(since=self._read_at - self.MARGIN_S)
                for cid, on, at in rows:
                    if on:
                        self._enabled[cid] = at
                    else:
                        self._enabled.pop(cid, None)
        except SQLAlchemyError as exc:  # the database away: go on with what we know
            log.warning("camera registry not read (%s); using the last list", exc)
            return self._enabled
        self._read_at = asked
        return self._enabled

    def _config(self, camera_id: str) -> CameraConfig | None:
        """The camera's config, or None if it cannot be used (reported once per row)."""
        at = self._enabled.get(camera_id, 0.0)
        if self._invalid.get(camera_id) == at:
            return None
        try:
            cam = self.store.load_camera(camera_id)
        except ValueError as exc:
            error = invalid_config_error(exc)
            log.error("camera %s: stored config cannot be used, skipped: %s", camera_id, error)
            self.worker.report_invalid(camera_id, error)
            self._invalid[camera_id] = at
            return None
        self._invalid.pop(camera_id, None)
        return cam if cam is not None and cam.enabled else None

    def _take(self, cam: CameraConfig) -> None:
        if self.patrol is not None and cam.analysis == "patrol":
            self.patrol.add(cam)  # visited in turn: read only during its visits
        else:
            self.worker.start_camera(cam)

    def _drop(self, camera_id: str) -> None:
        if self.patrol is not None and camera_id in self.patrol:
            self.patrol.remove(camera_id)
        self.worker.stop_camera(camera_id)

    # -- the rounds ------------------------------------------------------------------------

    def _loop(self) -> None:
        interval = self.leases.lease_s / 3
        subscribed = False
        while not self._stop.is_set():
            try:
                self._round()
                if not subscribed:
                    self._changed.subscribe(self._channel)
                    subscribed = True
                self._apply_changes()
            except UNAVAILABLE as exc:
                log.warning("leases: Redis unavailable (%s)", exc)
                subscribed = False
            except Exception:  # noqa: BLE001 - the lease loop must outlive any error
                log.exception("lease round failed")
            self._stop.wait(interval)

    def _round(self) -> None:
        self.rounds += 1
        for camera_id in self.leases.renew():  # first: stop what is no longer ours
            self._drop(camera_id)
        self.leases.heartbeat()
        enabled = self.enabled()
        give_up, candidates, share = self.leases.plan(list(enabled))
        for camera_id in give_up:
            self._drop(camera_id)  # stop writing before the lease is free
            self.leases.release(camera_id)
        held_elsewhere = self.leases.holders(candidates[: self.CANDIDATES])
        for camera_id in candidates[: self.CANDIDATES]:
            if len(self.leases.held) >= share:
                break
            if camera_id in held_elsewhere:
                continue
            cam = self._config(camera_id)
            if cam is not None and self.leases.try_acquire(camera_id) is not None:
                self._take(cam)

    def _apply_changes(self) -> None:
        """A held camera changed through an API node: new zones and rules are applied to
        its analysis; a new source restarts it; disabled or deleted, it is given up."""
        while (message := self._changed.get_message(timeout=0)) is not None:
            camera_id = message["data"].decode()
            patrolled = self.patrol is not None and camera_id in self.patrol
            if camera_id not in self.leases.held and not patrolled:
                continue  # a new or freed camera is taken by the lease rounds
            self._enabled[camera_id] = time.time()  # read the row again
            cam = self._config(camera_id)
            if cam is None:  # deleted, disabled or unusable: stop, free the lease
                self._enabled.pop(camera_id, None)
                self._drop(camera_id)
                if camera_id in self.leases.held:
                    self.leases.release(camera_id)
                continue
            previous = self.worker.cameras.get(camera_id)
            if previous is not None and (cam.analysis == "patrol") == patrolled and (
                same_stream(previous, cam)
            ):
                if self.patrol is not None:
                    self.patrol.update(cam)
                self.worker.apply_analytics(cam)
            else:
                self._drop(camera_id)
                self._take(cam)

    def holders(self) -> dict[str, str]:
        """For /metrics: this worker as the holder of each camera it holds."""
        return {c: self.leases.worker_id for c in self.leases.held}


class LiveStatePublisher:
    """The held cameras' live state in Redis every second (frames every
    ``frame_interval_s``), so that any API node can show them."""

    def __init__(
        self,
        worker: Worker,
        leases: WorkerLeases,
        live_state: RedisLiveState,
        media: MediaServer,
        frame_interval_s: float,
    ) -> None:
        self.worker = worker
        self.leases = leases
        self.live_state = live_state
        self.media = media
        self.frame_interval_s = frame_interval_s
        self._published: dict[str, str] = {}  # camera -> the state last put in the stream
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="live-state", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        last_frames = float("-inf")
        while not self._stop.wait(1.0):
            try:
                with_frames = time.monotonic() - last_frames >= self.frame_interval_s
                self.publish(with_frames)
                if with_frames:
                    last_frames = time.monotonic()
            except UNAVAILABLE:
                pass  # Redis away: the next round
            except Exception:  # noqa: BLE001
                log.exception("publishing live state failed")

    def publish(self, with_frames: bool) -> None:
        worker = self.worker
        entries: dict[str, dict[str, Any]] = {}
        frames: dict[str, bytes] = {}
        for camera_id in list(self.leases.held):
            st = worker.status.snapshot(camera_id)
            if st is None:
                continue
            entries[camera_id] = {
                "status": asdict(st), "counters": worker.counters(camera_id),
                "media": worker.media_stats(camera_id), "worker": self.leases.worker_id,
                "token": self.leases.token(camera_id), "overlay": worker.overlay(camera_id),
                "live_base": self.media.base_url,
            }  # fmt: skip
            frame = worker.latest_frame(camera_id) if with_frames else None
            if frame is not None:
                ok, buf = cv2.imencode(".jpg", frame.source_bgr(), [cv2.IMWRITE_JPEG_QUALITY, 80])
                if ok:
                    frames[camera_id] = buf.tobytes()
        if entries:
            self.live_state.put(entries, frames)
        changes = [(cid, str(e["status"]["state"])) for cid, e in entries.items()
                   if self._published.get(cid) != e["status"]["state"]]  # fmt: skip
        if changes:
            self.live_state.record_changes(changes)
            self._published.update(changes)


class RedisCameraLive:
    """``CameraLive`` of an API node: what the workers put in Redis, and live video from
    the worker holding the camera (a signed URL); the node itself reads no camera."""

    def __init__(self, live_state: RedisLiveState, live_key: bytes) -> None:
        self.live_state = live_state
        self._live_key = live_key
        self._live_feeds: dict[str, LiveFeed] = {}

    def _entry(self, camera_id: str) -> dict[str, Any]:
        try:
            return self.live_state.entry(camera_id) or {}
        except UNAVAILABLE:
            return {}

    def counters(self, camera_id: str) -> dict[str, dict[str, int]]:
        return dict(self._entry(camera_id).get("counters") or {})

    def media_stats(self, camera_id: str) -> dict[str, Any]:
        media = self._entry(camera_id).get("media")
        return dict(media) if media else {"ring_bytes": 0, "ring_seconds": 0.0, "live_viewers": 0}

    def latest_frame(self, camera_id: str) -> JpegFrame | None:
        try:
            jpeg = self.live_state.frame(camera_id)
        except UNAVAILABLE:
            return None
        return None if jpeg is None else JpegFrame(jpeg)

    def live_feed(self, camera_id: str) -> LiveFeed:
        """An empty feed: live video comes through :meth:`remote_live_url`."""
        return self._live_feeds.setdefault(camera_id, LiveFeed())

    def remote_live_url(self, camera_id: str) -> str | None:
        """A signed URL of the camera's live video on the worker that holds it now
        (shaobing/media.py); None when no worker holds it."""
        base = self._entry(camera_id).get("live_base")
        return f"{base}{signed_path(self._live_key, camera_id)}" if base else None

    def overlay(self, camera_id: str) -> dict[str, Any] | None:
        """The worker's latest boxes and zones (refreshed every second)."""
        overlay = self._entry(camera_id).get("overlay")
        return dict(overlay) if overlay else None
