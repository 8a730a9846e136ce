"""The distributed mode's state on Redis: the workers' live state (camera status,
counters, overlay, latest frame), the read-only status view the API role serves from it,
the alert feed across processes, and the fencing wrappers of the event bus (a worker's
events stamped with its lease token; the alert consumer dropping a stale worker's)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import cv2
import numpy as np
import redis

from alerts.feed import AlertFeed, FeedKind
from alerts.ports import Delivery, EventBus
from camera_registry.status import CameraStatus, StatusBoard
from core import metrics
from shaobing.adapters.leases import Fences
from shaobing.adapters.redis_bus import UNAVAILABLE, redis_client
from shaobing.config import LoadedConfig

log = logging.getLogger(__name__)

_STATUS_FIELDS = {f.name for f in fields(CameraStatus)}


# -- live state: camera status and the latest frame -----------------------------------


class RedisLiveState:
    """``<prefix>:cam:<id>``: a camera's status, counters and holder (JSON);
    ``<prefix>:frame:<id>``: its latest frame (JPEG). Both expire when nobody renews
    them (a dead worker's cameras do not look online)."""

    def __init__(self, r: redis.Redis, prefix: str, ttl_s: float) -> None:
        self.r = r
        self.prefix = prefix
        self.ttl_ms = int(ttl_s * 1000)

    def put(self, entries: dict[str, dict[str, Any]], frames: dict[str, bytes]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for camera_id, entry in entries.items():
            pipe.set(f"{self.prefix}:cam:{camera_id}", json.dumps(entry), px=self.ttl_ms)
        for camera_id, jpeg in frames.items():
            pipe.set(f"{self.prefix}:frame:{camera_id}", jpeg, px=self.ttl_ms)
        pipe.execute()

    def entry(self, camera_id: str) -> dict[str, Any] | None:
        raw = self.r.get(f"{self.prefix}:cam:{camera_id}")
        return None if raw is None else dict(json.loads(raw))

    def entries(self) -> dict[str, dict[str, Any]]:
        keys = list(self.r.scan_iter(f"{self.prefix}:cam:*", count=1000))
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(keys), 1000):
            chunk = keys[i : i + 1000]
            for key, raw in zip(chunk, self.r.mget(chunk), strict=True):
                if raw is not None:
                    name = key.decode() if isinstance(key, bytes) else str(key)
                    out[name.rsplit(":", 1)[-1]] = json.loads(raw)
        return out

    #: Camera state changes kept in the stream (a console further behind reads all again).
    CHANGES_MAXLEN = 10_000

    def record_changes(self, changes: list[tuple[str, str]]) -> None:
        """Append ``(camera id, new state)`` to the state-change stream."""
        pipe = self.r.pipeline(transaction=False)
        for camera_id, state in changes:
            pipe.xadd(f"{self.prefix}:states", {"camera": camera_id, "state": state},
                      maxlen=self.CHANGES_MAXLEN, approximate=True)  # fmt: skip
        pipe.execute()

    def changes(self, since: str) -> tuple[str, list[str] | None]:
        """:meth:`StatusBoard.changes` from the state-change stream (cursor: a stream id)."""
        key = f"{self.prefix}:states"
        newest = self.r.xrevrange(key, count=1)
        cursor = _text(newest[0][0]) if newest else "0-0"
        if not since:
            return cursor, None
        oldest = self.r.xrange(key, count=1)
        if oldest and since != "0-0" and _stream_id(_text(oldest[0][0])) > _stream_id(since):
            return cursor, None  # trimmed past the reader: read everything again
        out: list[str] = []
        start = f"({since}"
        while True:
            batch: list[Any] = list(self.r.xrange(key, min=start, count=1000) or [])
            out += [_text(fields[b"camera"]) for _, fields in batch]
            if len(batch) < 1000:
                break
            start = f"({_text(batch[-1][0])}"
        last = _text(batch[-1][0]) if batch else since
        return last, out

    def frame(self, camera_id: str) -> bytes | None:
        raw: Any = self.r.get(f"{self.prefix}:frame:{camera_id}")
        return None if raw is None else bytes(raw)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


def status_from(data: dict[str, Any]) -> CameraStatus:
    values = {k: v for k, v in data.items() if k in _STATUS_FIELDS}
    if values.get("resolution") is not None:
        values["resolution"] = tuple(values["resolution"])
    return CameraStatus(**values)


class RedisStatusView(StatusBoard):
    """The status board the API role reads: the workers' entries in Redis (read-only;
    an ``update`` here is kept locally and shadowed by what Redis says)."""

    def __init__(self, live: RedisLiveState, cache_s: float = 1.0) -> None:
        super().__init__()
        self.live = live
        self.cache_s = cache_s  # the console's feed looks at every camera each second
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}

    def snapshot(self, camera_id: str) -> CameraStatus | None:
        now = time.monotonic()
        cached = self._cache.get(camera_id)
        if cached is not None and now - cached[0] < self.cache_s:
            entry = cached[1]
        else:
            try:
                entry = self.live.entry(camera_id)
            except UNAVAILABLE:
                entry = None
            self._cache[camera_id] = (now, entry)
        if entry is None:
            return super().snapshot(camera_id)
        return status_from(entry["status"])

    def get(self, camera_id: str) -> CameraStatus:
        return self.snapshot(camera_id) or CameraStatus(camera_id)

    def all(self) -> list[CameraStatus]:
        try:
            return [status_from(e["status"]) for e in self.live.entries().values()]
        except UNAVAILABLE:
            return super().all()

    def states(self) -> dict[str, str]:
        try:
            return {cid: str(e["status"]["state"]) for cid, e in self.live.entries().items()}
        except UNAVAILABLE:
            return super().states()

    def changes(self, since: str) -> tuple[str, list[str] | None]:
        """The cameras whose state a worker changed after ``since`` (the workers' stream)."""
        try:
            cursor, changed = self.live.changes(since)
        except UNAVAILABLE:
            return since, []
        for camera_id in changed or ():
            self._cache.pop(camera_id, None)  # read its new state, not the cached one
        return cursor, changed


class JpegFrame:
    """A latest frame read back from Redis (``LatestFrame`` for the API)."""

    def __init__(self, jpeg: bytes) -> None:
        self.jpeg = jpeg

    def source_bgr(self) -> np.ndarray:
        image = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError("stored frame is not a JPEG")
        return np.asarray(image)


# -- the alert feed across processes ----------------------------------------------------


class RedisAlertFeed(AlertFeed):
    """Alert notifications to every process: ``publish`` goes to a Redis channel; a
    listener thread hands what arrives (own messages included) to local subscribers.
    Best effort, like the in-process feed (the database stays the truth)."""

    def __init__(self, r: redis.Redis, prefix: str) -> None:
        super().__init__()
        self.r = r
        self.channel = f"{prefix}:feed"
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._listen, name="feed", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    def publish(self, kind: FeedKind, alert_id: str) -> None:
        try:
            self.r.publish(self.channel, json.dumps([kind, alert_id]))
        except UNAVAILABLE as exc:
            log.warning("alert feed: notification not sent (%s)", exc)

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                pubsub = self.r.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    kind, alert_id = json.loads(message["data"])
                    super().publish(kind, alert_id)
            except UNAVAILABLE:
                self._stop.wait(1.0)
            except Exception:  # noqa: BLE001 - the feed must outlive a bad message
                log.exception("alert feed listener failed; resubscribing")
                self._stop.wait(1.0)


# -- fencing ----------------------------------------------------------------------------


class FencedPublisher:
    """A worker's bus: each event carries the fencing token of the camera's lease."""

    def __init__(self, inner: EventBus, token: Callable[[str], int | None]) -> None:
        self.inner = inner
        self.token = token
        self.last: dict[str, int] = {}  # the token of a camera given up, for its last events

    def subscribe(self, topic: str, group: str) -> None:
        self.inner.subscribe(topic, group)

    def publish(self, topic: str, payload: dict[str, Any]) -> str:
        event = payload.get("event")
        if isinstance(event, dict):
            camera_id = str(event.get("camera_id"))
            token = self.token(camera_id) or self.last.get(camera_id)
            if token is not None:
                self.last[camera_id] = token
                payload = {**payload, "fence": {"camera_id": camera_id, "token": token}}
        return self.inner.publish(topic, payload)

    def consume(self, topic: str, group: str, timeout_s: float) -> Delivery | None:
        return self.inner.consume(topic, group, timeout_s)

    def pending(self, topic: str, group: str) -> int:
        return self.inner.pending(topic, group)

    def recover(self) -> int:
        recover = getattr(self.inner, "recover", None)
        return int(recover()) if recover is not None else 0


class FenceCheckingBus:
    """The alert consumer's bus: an event from a worker that had lost its camera's lease
    when it made it (a newer token was issued before) is acknowledged and dropped."""

    def __init__(self, inner: EventBus, fences: Fences) -> None:
        self.inner = inner
        self.fences = fences
        self.rejected = 0

    def subscribe(self, topic: str, group: str) -> None:
        self.inner.subscribe(topic, group)

    def publish(self, topic: str, payload: dict[str, Any]) -> str:
        return self.inner.publish(topic, payload)

    def pending(self, topic: str, group: str) -> int:
        return self.inner.pending(topic, group)

    def consume(self, topic: str, group: str, timeout_s: float) -> Delivery | None:
        delivery = self.inner.consume(topic, group, timeout_s)
        if delivery is None:
            return None
        fence = delivery.payload.get("fence")
        if not isinstance(fence, dict):
            return delivery
        try:
            stale = self.fences.is_stale(
                str(fence["camera_id"]), int(fence["token"]),
                float(delivery.payload.get("created_at") or 0),
            )  # fmt: skip
        except UNAVAILABLE:
            delivery.nack(1.0)  # cannot check now: later
            return None
        if not stale:
            return delivery
        self.rejected += 1
        metrics.STALE_EVENTS.inc()
        log.warning("event %s of camera %s rejected: fencing token %s is stale (its worker had "
                    "lost the lease)", delivery.payload.get("alert_id"), fence["camera_id"],
                    fence["token"])  # fmt: skip
        delivery.ack()
        return None


def redis_connection(loaded: LoadedConfig) -> redis.Redis:
    """The Redis client of ``bus.url`` (one per process and role)."""
    return redis_client(loaded.config.bus.url)
