"""The distributed-mode adapters: Redis for live state, fencing and the alert feed;
the worker (a hub that analyses the cameras it holds a lease on) and the services the
API role serves from Redis and the database.

Same code paths as the embedded hub otherwise: the worker *is* a :class:`Hub` with
other adapters (bus, status), started without the alert service and dispatcher, whose
cameras come and go with its leases.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from typing import Any

import cv2
import numpy as np
import redis
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from accounts.service import audit
from alerts.adapters.redis_bus import UNAVAILABLE, ForwardingSpool, RedisEventBus
from alerts.adapters.sql import SqlUnitOfWork
from alerts.config import AreaNode
from alerts.domain.routing import Router
from alerts.feed import AlertFeed, FeedKind
from alerts.links import EvidenceLinks
from alerts.messages import EVENTS_TOPIC
from alerts.ports import Delivery, EventBus
from alerts.producer import CameraInfo
from alerts.service import CONSUMER_GROUP, AlertService
from analytics.config import CameraConfig
from analytics.detectors import Detector
from camera_registry.leases import Fences, WorkerLeases
from camera_registry.status import CameraStatus, StatusBoard
from camera_registry.store import CameraRecord, set_analytics_override
from core.storage import EvidenceStorage
from ingest.live import LiveFeed
from shaobing import metrics
from shaobing.config import LoadedConfig
from shaobing.hub import Hub, build_router, evidence_storage, state_counts
from shaobing.media import MediaServer, live_key, signed_path

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

    def frame(self, camera_id: str) -> bytes | None:
        raw: Any = self.r.get(f"{self.prefix}:frame:{camera_id}")
        return None if raw is None else bytes(raw)


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


# -- the worker -------------------------------------------------------------------------


class WorkerHub(Hub):
    """Ingest + analytics + evidence for the cameras this worker holds a lease on."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        name: str = "worker",
        detector: Detector | None = None,
        worker_id: str | None = None,
    ) -> None:
        bus_cfg = loaded.config.bus
        self.r = redis_connection(loaded)
        redis_bus = RedisEventBus(self.r, prefix=bus_cfg.prefix, maxlen=bus_cfg.maxlen,
                                  claim_idle_s=bus_cfg.claim_idle_s)  # fmt: skip
        self.worker_id = worker_id or f"{name}@{redis_bus.consumer}"
        self.leases = WorkerLeases(self.r, bus_cfg.prefix, self.worker_id, bus_cfg.lease_s)
        self.spool = ForwardingSpool(redis_bus, loaded.data_dir / "spool" / name)
        self.live_state = RedisLiveState(self.r, bus_cfg.prefix, ttl_s=bus_cfg.lease_s * 2)
        super().__init__(
            loaded, detector=detector, bus=FencedPublisher(self.spool, self.leases.token)
        )
        self._leases_thread = threading.Thread(target=self._lease_loop, name="leases",
                                               daemon=True)  # fmt: skip
        self._state_thread = threading.Thread(target=self._state_loop, name="live-state",
                                              daemon=True)  # fmt: skip
        self._known: dict[str, CameraConfig] = {}
        self._known_at = float("-inf")
        self._changed = self.r.pubsub(ignore_subscribe_messages=True)
        self._changed_channel = f"{bus_cfg.prefix}:camera-changed"
        self.media = MediaServer(live_key(self.cipher), self._held_feed, bus_cfg.media_listen,
                                 bus_cfg.media_advertise)  # fmt: skip

    def _held_feed(self, camera_id: str) -> LiveFeed | None:
        """The live feed of a camera this worker reads now (None: not held here)."""
        return self.live.get(camera_id) if camera_id in self.readers else None

    def start(self) -> None:  # not Hub.start: no alert service, no dispatcher here
        self.spool.recover()
        self.producer.start()
        self.tracks.start()
        self.pool.start()
        self._watchdog.start()
        self._leases_thread.start()
        self._state_thread.start()
        self.media.start()
        self._started = True
        log.info("worker %s started (detector %s)", self.worker_id, self.detector.name)

    def stop(self) -> None:
        self._stop.set()
        self._leases_thread.join(5)
        self.media.stop()
        for camera_id in list(self.readers):
            self.stop_camera(camera_id)
        try:
            self.leases.leave()
        except UNAVAILABLE:
            pass
        self.pool.stop()
        self.tracks.stop()  # index the open tracks; their clips are cut next
        self.producer.stop()
        self.spool.stop()
        self.engine.dispose()
        log.info("worker %s stopped", self.worker_id)

    def service_threads(self) -> list[threading.Thread]:
        return [*self.pool.threads, *self.producer.threads, *self.tracks.threads,
                self._watchdog, self._leases_thread, self._state_thread,
                self.media.thread]  # fmt: skip

    # -- cameras come and go with the leases ---------------------------------------------

    def start_camera(self, cam: CameraConfig) -> None:
        self.cameras[cam.id] = cam
        self.producer.cameras[cam.id] = CameraInfo(cam.name or cam.id, cam.area, cam.gb28181_id)
        self._start_camera(cam)

    def stop_camera(self, camera_id: str) -> None:
        """Stop reading and analysing a camera (its lease is gone or given up)."""
        reader = self.readers.pop(camera_id, None)
        if reader is not None:
            reader.stop()
            reader.join(timeout=5)
        slot = self.pool.slots.pop(camera_id, None)
        if slot is not None:
            with slot.lock:
                slot.pending.clear()
        feed = self.live.get(camera_id)
        if feed is not None:
            feed.end()  # its viewers reconnect through the API node to the new holder
        self.status.update(camera_id, state="stopped")
        log.info("camera %s stopped on worker %s", camera_id, self.worker_id)

    def _cameras(self) -> dict[str, CameraConfig]:
        """The enabled cameras of the registry (re-read every 10 s)."""
        if time.monotonic() - self._known_at > 10:
            try:
                self._known = {c.id: c for c in self.load_cameras() if c.enabled}
            except SQLAlchemyError as exc:  # the database away: go on with what we know
                log.warning("camera registry not re-read (%s); using the last list", exc)
            self._known_at = time.monotonic()
        return self._known

    def _lease_loop(self) -> None:
        interval = self.leases.lease_s / 3
        subscribed = False
        while not self._stop.is_set():
            try:
                self._lease_round()
                if not subscribed:
                    self._changed.subscribe(self._changed_channel)
                    subscribed = True
                self._apply_changes()
            except UNAVAILABLE as exc:
                log.warning("leases: Redis unavailable (%s)", exc)
                subscribed = False
            except Exception:  # noqa: BLE001 - the lease loop must outlive any error
                log.exception("lease round failed")
            self._stop.wait(interval)

    def _lease_round(self) -> None:
        for camera_id in self.leases.renew():  # first: stop what is no longer ours
            self.stop_camera(camera_id)
        self.leases.heartbeat()
        cameras = self._cameras()
        give_up, candidates, share = self.leases.plan(sorted(cameras))
        for camera_id in give_up:
            self.stop_camera(camera_id)  # stop writing before the lease is free
            self.leases.release(camera_id)
        for camera_id in candidates:
            if len(self.leases.held) >= share:
                break
            if self.leases.try_acquire(camera_id) is not None:
                self.start_camera(cameras[camera_id])

    def _apply_changes(self) -> None:
        """Zones and rules changed through an API node: apply them to a held camera."""
        while (message := self._changed.get_message(timeout=0)) is not None:
            camera_id = message["data"].decode()
            if camera_id not in self.pool.slots:
                continue
            self._known_at = float("-inf")
            cam = self._cameras().get(camera_id)
            if cam is not None:
                self.cameras[camera_id] = cam
                self.pool.replace_analytics(self._analytics(cam))
                log.info("camera %s: new zones and rules applied", camera_id)

    def _state_loop(self) -> None:
        frame_every = self.loaded.config.bus.frame_interval_s
        last_frames = float("-inf")
        while not self._stop.wait(1.0):
            try:
                with_frames = time.monotonic() - last_frames >= frame_every
                self._publish_state(with_frames)
                if with_frames:
                    last_frames = time.monotonic()
            except UNAVAILABLE:
                pass  # Redis away: the next round
            except Exception:  # noqa: BLE001
                log.exception("publishing live state failed")

    def _publish_state(self, with_frames: bool) -> None:
        entries: dict[str, dict[str, Any]] = {}
        frames: dict[str, bytes] = {}
        for camera_id in list(self.leases.held):
            st = self.status.snapshot(camera_id)
            if st is None:
                continue
            entries[camera_id] = {
                "status": asdict(st), "counters": self.counters(camera_id),
                "media": self.media_stats(camera_id), "worker": self.worker_id,
                "token": self.leases.token(camera_id), "overlay": self.overlay(camera_id),
                "live_base": self.media.base_url,
            }  # fmt: skip
            frame = self.latest_frame(camera_id) if with_frames else None
            if frame is not None:
                ok, buf = cv2.imencode(".jpg", frame.source_bgr(), [cv2.IMWRITE_JPEG_QUALITY, 80])
                if ok:
                    frames[camera_id] = buf.tobytes()
        if entries:
            self.live_state.put(entries, frames)

    def health(self) -> dict[str, object]:
        counts: dict[str, int] = {}
        for st in self.status.all():
            if st.camera_id in self.leases.held:
                counts[st.state] = counts.get(st.state, 0) + 1
        threads = {t.name: t.is_alive() for t in self.service_threads()}
        return {"status": "ok" if self._started and all(threads.values()) else "degraded",
                "cameras": counts, "dispatch_pending": 0, "dispatch_dead": 0,
                "events_pending": self.spool.backlog() + self.producer.backlog(),
                "threads": threads}  # fmt: skip


# -- what the API role serves -------------------------------------------------------------


class RoutingCache:
    """The router, rebuilt from the database when older than ``ttl_s`` (rules changed
    through any API node reach every alerts and API process)."""

    def __init__(self, loaded: LoadedConfig, sessions: sessionmaker[Session], ttl_s: float = 5):
        self.loaded = loaded
        self.sessions = sessions
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._router = build_router(loaded, sessions)
        self._at = time.monotonic()

    def __call__(self) -> Router:
        with self._lock:
            if time.monotonic() - self._at > self.ttl_s:
                try:
                    self._router = build_router(self.loaded, self.sessions)
                except Exception:  # noqa: BLE001 - the database away: route with the last
                    log.warning("routing rules not re-read; using the last ones", exc_info=True)
                self._at = time.monotonic()
            return self._router

    def reload(self) -> None:
        with self._lock:
            self._at = float("-inf")


class ApiServices:
    """``api.ports.HubServices`` for an API node: the database, and Redis for what the
    workers know (status, latest frame, counters). Live video stays on the workers."""

    def __init__(
        self,
        loaded: LoadedConfig,
        sessions: sessionmaker[Session],
        cipher: Any,
        r: redis.Redis,
        links: EvidenceLinks,
        bus: EventBus,
        evidence: EvidenceStorage | None = None,
    ) -> None:
        """``evidence``: the evidence storage (default: the one of the config)."""
        prefix = loaded.config.bus.prefix
        self.loaded = loaded
        self.evidence = evidence if evidence is not None else evidence_storage(loaded)
        self.sessions = sessions
        self.cipher = cipher
        self.r = r
        self.live = RedisLiveState(r, prefix, ttl_s=loaded.config.bus.lease_s * 2)
        self.status = RedisStatusView(self.live)
        self.links = links
        self.bus = bus
        self.feed = RedisAlertFeed(r, prefix)
        self.routing = RoutingCache(loaded, sessions)
        self.alerts = AlertService(lambda: SqlUnitOfWork(sessions, links=links), self.routing,
                                   timezone=loaded.config.timezone, feed=self.feed,
                                   incidents=loaded.config.alerts.incidents.policy())  # fmt: skip
        self._live_feeds: dict[str, LiveFeed] = {}
        self._live_key = live_key(cipher)
        self._prefix = prefix
        self._started = time.time()

    @property
    def snapshot_dir(self) -> Any:
        """``alerts.snapshot_dir`` resolved (the evidence root of ``kind: directory``)."""
        return self.loaded.snapshot_dir

    @property
    def areas(self) -> list[AreaNode]:
        return self.loaded.config.areas

    @property
    def feedback_secrets(self) -> dict[str, str]:
        return {f.name: f.secret for f in self.loaded.config.feedback}

    @property
    def console_settings(self) -> dict[str, Any]:
        return self.loaded.config.api.console.model_dump(exclude={"enabled"})

    def _entry(self, camera_id: str) -> dict[str, Any]:
        try:
            return self.live.entry(camera_id) or {}
        except UNAVAILABLE:
            return {}

    def counters(self, camera_id: str) -> dict[str, dict[str, int]]:
        return dict(self._entry(camera_id).get("counters") or {})

    def media_stats(self, camera_id: str) -> dict[str, Any]:
        media = self._entry(camera_id).get("media")
        return dict(media) if media else {"ring_bytes": 0, "ring_seconds": 0.0, "live_viewers": 0}

    def latest_frame(self, camera_id: str) -> JpegFrame | None:
        try:
            jpeg = self.live.frame(camera_id)
        except UNAVAILABLE:
            return None
        return None if jpeg is None else JpegFrame(jpeg)

    def live_feed(self, camera_id: str) -> LiveFeed:
        """An API node reads no camera: an empty feed (live video comes through
        :meth:`remote_live_url` from the worker holding the camera)."""
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

    def router(self) -> Router:
        return self.routing()

    def reload_routing(self) -> None:
        self.routing.reload()

    def update_camera_analytics(
        self, camera_id: str, analytics: dict[str, Any], actor: str
    ) -> CameraConfig:
        """Save (as the hub does) and tell the worker holding the camera to apply them."""
        with self.sessions.begin() as session:
            record = session.get(CameraRecord, camera_id)
            if record is None:
                raise KeyError(camera_id)
            cam = CameraConfig.model_validate({**record.config_data(self.cipher), **analytics})
            set_analytics_override(session, camera_id, analytics, actor)
            audit(session, actor, "camera_analytics_changed", camera_id,
                  f"{len(cam.zones)} zone(s), {len(cam.rules)} rule(s): "
                  + ", ".join(f"{r.name} ({r.type})" for r in cam.rules))  # fmt: skip
        try:
            self.r.publish(f"{self._prefix}:camera-changed", camera_id)
        except UNAVAILABLE:
            log.warning("camera %s: change saved; its worker applies it on its next lease",
                        camera_id)  # fmt: skip
        return cam

    def health(self) -> dict[str, Any]:
        counts, by_state = state_counts(self.status, self.sessions)
        try:
            pending = self.bus.pending(EVENTS_TOPIC, CONSUMER_GROUP)
            redis_ok = True
        except Exception:  # noqa: BLE001 - reported as degraded
            pending, redis_ok = 0, False
        return {
            "status": "ok" if redis_ok else "degraded",
            "cameras": counts,
            "dispatch_pending": int(by_state.get("pending", 0)),
            "dispatch_dead": int(by_state.get("dead", 0)),
            "events_pending": pending,
            "threads": {"redis": redis_ok, "feed": self.feed.thread.is_alive()},
        }


def redis_connection(loaded: LoadedConfig) -> redis.Redis:
    from alerts.adapters.redis_bus import redis_client

    return redis_client(loaded.config.bus.url)
