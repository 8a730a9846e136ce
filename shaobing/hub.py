"""Wiring (bootstrap): registry, ingest readers, analysis pool, alert producer,
event bus, alert service, dispatcher, accounts.

Kept thin on purpose: each piece lives in its own package; this module only
connects them. The embedded mode wires the in-process bus and SQLite; the
distributed mode swaps adapters, not code paths.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from accounts.service import audit, ensure_initial_admin, list_audit
from alerts.adapters.memory_bus import MemoryEventBus
from alerts.adapters.spool import SpoolingEventBus
from alerts.adapters.sql import (
    OutboxRecord,
    SqlUnitOfWork,
    routing_rule_configs,
    sync_config_routing,
)
from alerts.config import AreaNode, RoutingRuleConfig
from alerts.dispatcher import Dispatcher
from alerts.domain.routing import Router
from alerts.export import open_evidence_paths
from alerts.feed import AlertFeed
from alerts.links import EvidenceLinks, load_or_create_key
from alerts.ports import EventBus
from alerts.producer import AlertProducer, CameraInfo
from alerts.routing_setup import make_router
from alerts.service import AlertService, AlertWorkers
from analytics.config import CameraConfig, CameraFaultRule
from analytics.detectors import Detector, create_detector
from analytics.pipeline import CameraAnalytics, CameraRulesConfig
from analytics.scheduler import AnalysisPool
from analytics.types import Event
from camera_registry.status import DOWN_STATES, CameraStatus, StatusBoard
from camera_registry.store import (
    CameraRecord,
    analytics_override,
    encrypt_plain_secrets,
    invalid_config_error,
    list_cameras,
    remove_stale_config_cameras,
    set_analytics_override,
    set_resolved_url,
    upsert_camera,
)
from camera_registry.urls import mask_url, with_credentials
from core.secrets import SecretCipher, load_or_create_cipher, make_private_dir
from core.storage import EvidenceStorage, open_evidence_storage
from ingest.live import LiveFeed, TeeSink
from ingest.reader import SampledFrame, StreamReader
from shaobing.config import LoadedConfig
from shaobing.db import open_database
from tracks.service import CameraPlace, TrackIndex

log = logging.getLogger(__name__)


def camera_secrets(cam: CameraConfig) -> tuple[str, ...]:
    secrets = [cam.source.password or ""]
    if cam.source.onvif is not None:
        secrets.append(cam.source.onvif.password or "")
    return tuple(s for s in secrets if s)


class UrlResolver:
    """The URL to open for a camera, credentials added at the last moment.

    ONVIF cameras are probed for their stream URI (re-probed after a failed
    connection, since a rebooted device may hand out another URI).
    """

    def __init__(
        self,
        loaded: LoadedConfig,
        cam: CameraConfig,
        on_resolved: Callable[[str, str], None] | None = None,
    ) -> None:
        self.loaded = loaded
        self.cam = cam
        self.on_resolved = on_resolved
        self._probed: str | None = None

    def __call__(self) -> str:
        src = self.cam.source
        if src.onvif is None:
            url = self.loaded.source_url(self.cam)
            assert url is not None
            return with_credentials(url, src.username, src.password) if src.username else url
        from camera_registry.onvif_probe import probe_onvif_sync

        onvif = src.onvif
        result = probe_onvif_sync(
            onvif.host,
            onvif.port,
            onvif.username,
            onvif.password,
            profile=onvif.profile,
            timeout=self.loaded.config.ingest.open_timeout_s,
        )
        uri = result.sub_uri if onvif.stream == "sub" and result.sub_uri else result.main_uri
        if not uri:
            raise RuntimeError(f"ONVIF device {onvif.host}:{onvif.port} reported no stream URI")
        if uri != self._probed:
            log.info("camera %s: ONVIF stream URI %s", self.cam.id, mask_url(uri))
            self._probed = uri
            if self.on_resolved is not None:
                self.on_resolved(self.cam.id, uri)
        user = src.username or onvif.username
        password = src.password or onvif.password
        return with_credentials(uri, user, password) if user else uri


def offline_event(st: CameraStatus, now: float, limit: float) -> Event:
    down = now - st.since
    return Event(
        camera_id=st.camera_id, rule="camera-offline", type="camera_fault", ts=now, pts=0.0,
        track_ids=[], object_class="", zone="frame", severity="medium",
        measured=round(down, 1), threshold=limit, unit="s",
        explanation=f"camera offline for {down:.0f} s ≥ {limit:g} s (last error: {st.last_error})",
        confidence=1.0, started_pts=-down, key=f"offline-{st.since:.0f}",
        extra={"fault": st.state},  # offline, or auth_failed (a wrong password)
    )  # fmt: skip


def open_store(loaded: LoadedConfig) -> tuple[Engine, sessionmaker[Session], SecretCipher]:
    """The database (migrated) with the config's cameras and routing rules in it, and the
    camera-password cipher. Every role calls it; two processes doing it at once on
    PostgreSQL may collide on an insert: the loser tries again."""
    cfg = loaded.config
    for folder in (loaded.data_dir, loaded.snapshot_dir):  # owner only (0700)
        make_private_dir(folder)
    for attempt in range(5):  # several roles starting at once race on the migrations:
        try:  # PostgreSQL's DDL is transactional, the loser's rolled back; it tries again
            engine, sessions = open_database(loaded.database_url)
            break
        except (IntegrityError, ProgrammingError, OperationalError):
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
    # Camera passwords are stored encrypted with a key kept outside the database.
    cipher = load_or_create_cipher(loaded.secret_key_path)
    for attempt in range(5):
        try:
            with sessions.begin() as session:
                for cam in cfg.cameras:
                    upsert_camera(session, cam, origin="config", cipher=cipher)
                removed = remove_stale_config_cameras(session, {c.id for c in cfg.cameras})
                encrypted = encrypt_plain_secrets(session, cipher)
                sync_config_routing(
                    session, {r.name: r.model_dump(mode="json") for r in cfg.routing}
                )
            break
        except (IntegrityError, OperationalError):  # another role inserted first / locked
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    if removed:
        log.info("cameras no longer in the config removed: %s", ", ".join(removed))
    if encrypted:
        log.info("camera passwords stored in plain text encrypted: %s", ", ".join(encrypted))
    return engine, sessions, cipher


def evidence_links(loaded: LoadedConfig) -> EvidenceLinks:
    """Signed evidence links (every API node of a deployment needs the same key)."""
    api = loaded.config.api
    public_url = (api.public_url or f"http://{api.host}:{api.port}").rstrip("/")
    key = load_or_create_key(api.link_secret, loaded.data_dir / "link.key")
    return EvidenceLinks(public_url, key, api.link_ttl_s)


def evidence_storage(loaded: LoadedConfig) -> EvidenceStorage:
    """The evidence storage of a process (``storage.evidence``; see core/storage.py): the
    directory ``alerts.snapshot_dir`` (shared in distributed mode) or an S3 bucket.
    ``<data_dir>/tracks``, where older versions kept the track index's files, stays
    readable for the rows written then."""
    cfg = loaded.config.storage.evidence
    ca_file = getattr(cfg, "ca_file", None)
    return open_evidence_storage(
        cfg, loaded.snapshot_dir, legacy_roots=[loaded.data_dir / "tracks"],
        ca_file=loaded.resolve(ca_file, loaded.base_dir) if ca_file else None,
    )  # fmt: skip


def build_router(loaded: LoadedConfig, sessions: sessionmaker[Session]) -> Router:
    """The router of the config's departments and targets and the stored routing rules."""
    cfg = loaded.config
    with sessions() as session:
        stored = routing_rule_configs(session)
    rules = []
    for _, data in stored:
        try:
            rules.append(RoutingRuleConfig.model_validate(data))
        except ValueError as exc:  # written by another version: say so, route the rest
            log.error("routing rule %s is invalid, skipped: %s", data.get("name"), exc)
    return make_router(cfg.departments, cfg.dispatch, rules, cfg.escalation)


def state_counts(
    status: StatusBoard, sessions: sessionmaker[Session]
) -> tuple[dict[str, int], dict[str, int]]:
    """For /healthz: cameras by state, and outbox rows pending and dead."""
    counts: dict[str, int] = {}
    for st in status.all():
        counts[st.state] = counts.get(st.state, 0) + 1
    with sessions() as session:
        by_state = dict(
            session.execute(
                select(OutboxRecord.state, func.count())
                .where(OutboxRecord.state.in_(("pending", "dead")))
                .group_by(OutboxRecord.state)
            ).all()
        )
    return counts, by_state


class Hub:
    """The embedded hub: everything in one process, SQLite and the in-process bus."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        detector: Detector | None = None,
        bus: EventBus | None = None,
        status: StatusBoard | None = None,
    ) -> None:
        """``bus``/``status``: other adapters (distributed mode, ``shaobing.roles``)."""
        self.loaded = loaded
        cfg = loaded.config
        self.engine, self.sessions, self.cipher = open_store(loaded)
        self._audit_config()
        self.detector = detector or create_detector(
            cfg.detector, loaded.models_dir, loaded.mirror_dir
        )
        self.status = status if status is not None else StatusBoard()
        self.links = evidence_links(loaded)
        self.evidence = evidence_storage(loaded)  # snapshots, clips, track files
        self.public_url = self.links.base_url
        self.dispatcher = Dispatcher(self.sessions, cfg.dispatch, links=self.links)
        # Events are spooled to disk until their alert is committed: a crash loses none.
        if bus is None:
            bus = SpoolingEventBus(MemoryEventBus(), loaded.data_dir / "spool")
        self.bus: EventBus = bus
        self.cameras: dict[str, CameraConfig] = {}
        self.producer = AlertProducer(
            self.bus, cfg.alerts, self.evidence,
            protected=lambda: open_evidence_paths(self.sessions),
        )  # fmt: skip
        self._router_lock = threading.Lock()
        self._router = self._build_router()
        self.feed = AlertFeed()  # alert notifications for the console's live feed
        self.alerts = AlertService(
            lambda: SqlUnitOfWork(self.sessions, links=self.links),
            self.router,
            timezone=cfg.timezone,
            incidents=cfg.alerts.incidents.policy(),
            on_committed=self.dispatcher.notify,
            feed=self.feed,
        )
        self.alert_workers = AlertWorkers(
            self.alerts, self.bus, escalation_interval_s=cfg.escalation.check_interval_s
        )
        # The investigator search index: confirmed tracks, their clips cut from the ring.
        self.tracks = TrackIndex(cfg.tracks, self.sessions, self.evidence,
                                 self.detector.class_names, self._camera_place,
                                 self.producer.clips)  # fmt: skip
        self.pool = AnalysisPool(
            self.detector,
            self.status,
            self._on_event,
            workers=cfg.detector.workers,
            batch_size=cfg.detector.batch_size,
            batch_timeout_s=cfg.detector.batch_timeout_ms / 1000,
            on_tracked=self.tracks.submit if cfg.tracks.enabled else None,
        )
        self.readers: dict[str, StreamReader] = {}
        self.live: dict[str, LiveFeed] = {}  # the cameras' packets for live view
        self._stop = threading.Event()
        self._offline_alerted: set[str] = set()
        self._published_states: dict[str, str] = {}
        self._started = False
        self._watchdog = threading.Thread(target=self._watch_cameras, name="watchdog", daemon=True)

    def _audit_config(self) -> None:
        """Record in the audit log a start with a config that differs from the last one."""
        cfg = self.loaded.config
        digest = hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:16]
        with self.sessions.begin() as session:
            last, _ = list_audit(session, limit=1, action="config_loaded")
            if last and (last[0].detail or "").startswith(digest):
                return
            audit(session, "system", "config_loaded", str(self.loaded.path or "(defaults)"),
                  f"{digest} {len(cfg.cameras)} camera(s), {len(cfg.dispatch)} dispatch "
                  f"target(s), {len(cfg.departments)} department(s), {len(cfg.routing)} routing "
                  f"rule(s), {len(cfg.feedback)} feedback source(s)")  # fmt: skip

    # -- routing ---------------------------------------------------------------

    def _build_router(self) -> Router:
        return build_router(self.loaded, self.sessions)

    def router(self) -> Router:
        with self._router_lock:
            return self._router

    def reload_routing(self) -> None:
        """Re-read the routing rules (after the API changed them)."""
        router = self._build_router()
        with self._router_lock:
            self._router = router

    # -- lifecycle ------------------------------------------------------------

    def load_cameras(self) -> list[CameraConfig]:
        """The stored cameras this version can use. One it cannot (written by another
        version, or its password encrypted with another key) is skipped, logged and
        shown as ``invalid_config`` in its status: the other cameras still start."""
        with self.sessions() as session:
            records = [(r, analytics_override(session, r.id)) for r in list_cameras(session)]
        cameras = []
        for record, override in records:
            try:
                data = record.config_data(self.cipher)
            except ValueError as exc:  # ValidationError and SecretError are ValueErrors
                self._report_invalid(record, exc)
                continue
            if override is not None:  # zones and rules edited in the console
                try:
                    cameras.append(CameraConfig.model_validate({**data, **override.data()}))
                    continue
                except ValueError as exc:
                    log.error("camera %s: the zones and rules saved by %s cannot be used, "
                              "the config's are: %s", record.id, override.updated_by,
                              invalid_config_error(exc))  # fmt: skip
            try:
                cameras.append(CameraConfig.model_validate(data))
            except ValueError as exc:
                self._report_invalid(record, exc)
        return cameras

    def update_camera_analytics(
        self, camera_id: str, analytics: dict[str, object], actor: str
    ) -> CameraConfig:
        """Save a camera's zones, rules and motion gate (validated with the camera) and
        apply them at once: its analysis restarts with them, the stream does not.

        Raises KeyError for an unknown camera and ValueError (a pydantic
        ValidationError) for an invalid combination.
        """
        with self.sessions.begin() as session:
            record = session.get(CameraRecord, camera_id)
            if record is None:
                raise KeyError(camera_id)
            cam = CameraConfig.model_validate({**record.config_data(self.cipher), **analytics})
            set_analytics_override(session, camera_id, analytics, actor)
            audit(session, actor, "camera_analytics_changed", camera_id,
                  f"{len(cam.zones)} zone(s), {len(cam.rules)} rule(s): "
                  + ", ".join(f"{r.name} ({r.type})" for r in cam.rules))  # fmt: skip
        previous = self.cameras.get(camera_id)
        self.cameras[camera_id] = cam
        if previous is not None and camera_id in self.pool.slots:
            self.pool.replace_analytics(self._analytics(cam))
        log.info("camera %s: zones and rules changed by %s, applied", camera_id, actor)
        return cam

    def _analytics(self, cam: CameraConfig) -> CameraAnalytics:
        rules = list(cam.rules)
        if self.loaded.config.alerts.video_quality and not any(
            r.type == "camera_fault" for r in rules
        ):  # every camera's picture is diagnosed, rules or not
            rules.append(CameraFaultRule(name="video-quality", type="camera_fault"))
        return CameraAnalytics(
            CameraRulesConfig(cam.id, cam.detect_fps, cam.zones, rules, cam.motion, cam.detect),
            self.detector.class_names,
            timezone=self.loaded.config.timezone,
        )

    def _report_invalid(self, record: CameraRecord, exc: ValueError) -> None:
        error = invalid_config_error(exc)
        log.error("camera %s: stored config cannot be used, skipped: %s", record.id, error)
        self.status.update(record.id, state="invalid_config", last_error=error,
                           last_error_at=time.time())  # fmt: skip

    def ensure_admin(self, password: str | None = None) -> str | None:
        """On a first start with no user: create ``admin``; its password (shown once)."""
        with self.sessions.begin() as session:
            return ensure_initial_admin(session, password)

    def start(self) -> None:
        self.dispatcher.start()
        self.alert_workers.start()
        recover = getattr(self.bus, "recover", None)  # the spools: what a crash left
        if recover is not None:
            recover()
        self.producer.start()
        for cam in self.load_cameras():
            self.cameras[cam.id] = cam
            self.producer.cameras[cam.id] = CameraInfo(cam.name or cam.id, cam.area,
                                                       cam.gb28181_id)  # fmt: skip
            if not cam.enabled:
                self.status.update(cam.id, state="disabled")
                continue
            self._start_camera(cam)
        self.tracks.start()
        self.pool.start()
        self._watchdog.start()
        self._started = True
        log.info("hub started: %d camera(s), detector %s", len(self.readers), self.detector.name)

    def _start_camera(self, cam: CameraConfig) -> None:
        self.pool.add_camera(self._analytics(cam))
        self.status.get(cam.id)
        reader = StreamReader(
            cam.id,
            UrlResolver(self.loaded, cam, self._record_resolved),
            cam.source,
            self.loaded.config.ingest,
            detect_fps=cam.detect_fps,
            box=self.detector.input_size,
            on_frame=self.pool.submit,
            status=self.status,
            secrets=camera_secrets(cam),
            # evidence clips (the ring; None when clips are off) and live view
            packet_sink=TeeSink(self.producer.clips.ring(cam.id), self.live_feed(cam.id)),
        )
        self.status.update(cam.id, stream_url=self._display_url(cam))
        self.readers[cam.id] = reader
        reader.start()

    def _display_url(self, cam: CameraConfig) -> str:
        if cam.source.onvif is not None:
            return f"onvif://{cam.source.onvif.host}:{cam.source.onvif.port}"
        return mask_url(self.loaded.source_url(cam) or "")

    def _record_resolved(self, camera_id: str, uri: str) -> None:
        self.status.update(camera_id, stream_url=mask_url(uri))
        with self.sessions.begin() as session:
            set_resolved_url(session, camera_id, uri)

    def stop(self) -> None:
        self._stop.set()
        for reader in self.readers.values():
            reader.stop()
        for reader in self.readers.values():
            reader.join(timeout=5)
        self.pool.stop()
        self.tracks.stop()  # index the open tracks; their clips are cut next
        self.producer.stop()  # render and publish what is queued
        self.alert_workers.stop()  # store what was published
        self.dispatcher.stop()
        self.dispatcher.join(timeout=10)
        self.engine.dispose()
        log.info("hub stopped")

    # -- events ---------------------------------------------------------------

    def _camera_place(self, camera_id: str) -> CameraPlace | None:
        cam = self.cameras.get(camera_id)
        return None if cam is None else CameraPlace(cam.name or cam.id, cam.area)

    def _on_event(self, event: Event, frame: SampledFrame, analytics: CameraAnalytics) -> None:
        """Called by an analysis worker: hand over and return at once."""
        polygon = analytics.zones_for_drawing().get(event.rule)
        self.producer.on_event(event, frame, polygon, t=frame.t)

    def _watch_cameras(self) -> None:
        """Raise a camera_fault alert when a camera stays offline (a dead camera sends
        no picture for the frame-based rules to look at). Never dies: a failed pass is
        logged and the next one runs."""
        limit = self.loaded.config.alerts.camera_offline_s
        while not self._stop.wait(1.0):
            try:
                if limit is not None:
                    self._check_offline(limit)
                self._publish_states()
            except Exception:  # noqa: BLE001 - the watchdog must outlive any error
                log.exception("watchdog pass failed; retrying")

    def _publish_states(self) -> None:
        """Camera state changes to the targets that publish them (MQTT, retained)."""
        for st in self.status.all():
            if self._published_states.get(st.camera_id) == st.state:
                continue
            self._published_states[st.camera_id] = st.state
            self.dispatcher.camera_status(st.camera_id, {
                "state": st.state, "since": st.since, "last_error": st.last_error,
                "reported_at": time.time(),
            })  # fmt: skip

    def _check_offline(self, limit: float) -> None:
        now = time.time()
        for st in self.status.all():
            if st.state not in DOWN_STATES:
                self._offline_alerted.discard(st.camera_id)
                continue
            if st.camera_id in self._offline_alerted or now - st.since < limit:
                continue
            self.producer.on_event(offline_event(st, now, limit), None, None)
            self._offline_alerted.add(st.camera_id)

    # -- what the API reads -----------------------------------------------------

    def counters(self, camera_id: str) -> dict[str, dict[str, int]]:
        slot = self.pool.slots.get(camera_id)
        return {} if slot is None else slot.analytics.counters()

    def live_feed(self, camera_id: str) -> LiveFeed:
        feed = self.live.get(camera_id)
        if feed is None:
            feed = self.live[camera_id] = LiveFeed()
        return feed

    def remote_live_url(self, camera_id: str) -> str | None:
        return None  # this process reads its cameras: live_feed() has the packets

    def media_stats(self, camera_id: str) -> dict[str, object]:
        """What a camera's video costs in memory: the clip ring, the live viewers."""
        ring = self.producer.clips.rings.get(camera_id)
        live = self.live.get(camera_id)
        return {
            "ring_bytes": ring.bytes_held if ring is not None else 0,
            "ring_seconds": round(ring.span_s(), 1) if ring is not None else 0.0,
            "live_viewers": live.viewers if live is not None else 0,
        }

    def overlay(self, camera_id: str) -> dict[str, object] | None:
        """The latest tracked boxes and the zones of a camera, in analysed-frame pixels."""
        slot = self.pool.slots.get(camera_id)
        if slot is None or slot.latest is None:
            return None
        frame, tracked = slot.latest, slot.last_tracked
        names = self.detector.class_names
        boxes = []
        if tracked is not None:
            for i in range(len(tracked)):
                cls = int(tracked.class_id[i])
                boxes.append({
                    "x1": float(tracked.xyxy[i, 0]), "y1": float(tracked.xyxy[i, 1]),
                    "x2": float(tracked.xyxy[i, 2]), "y2": float(tracked.xyxy[i, 3]),
                    "cls": names[cls] if 0 <= cls < len(names) else str(cls),
                    "track_id": int(tracked.tracker_id[i]),
                    "score": round(float(tracked.confidence[i]), 3),
                })  # fmt: skip
        zones = [
            {"name": name, "kind": "line" if len(points) == 2 else "polygon",
             "points": [[float(x), float(y)] for x, y in points]}
            for name, points in slot.analytics.zones_for_drawing().items()
        ]  # fmt: skip
        width, height = frame.frame_size
        return {"width": width, "height": height, "ts": frame.wall_ts, "boxes": boxes,
                "zones": zones}  # fmt: skip

    def latest_frame(self, camera_id: str) -> SampledFrame | None:
        slot = self.pool.slots.get(camera_id)
        return None if slot is None else slot.latest

    def health(self) -> dict[str, object]:
        counts, by_state = state_counts(self.status, self.sessions)
        threads = {t.name: t.is_alive() for t in self.service_threads()}
        return {
            "status": "ok" if self._started and all(threads.values()) else "degraded",
            "cameras": counts,
            "dispatch_pending": int(by_state.get("pending", 0)),
            "dispatch_dead": int(by_state.get("dead", 0)),
            "events_pending": self.alert_workers.pending() + self.producer.backlog(),
            "threads": threads,
        }

    def service_threads(self) -> list[threading.Thread]:
        """The hub's long-lived threads (camera readers report through camera status)."""
        return [*self.pool.threads, *self.producer.threads, *self.alert_workers.threads,
                *self.tracks.threads, self.dispatcher, self._watchdog]  # fmt: skip

    @property
    def snapshot_dir(self) -> Path:
        """``alerts.snapshot_dir`` resolved (the evidence root of ``kind: directory``)."""
        return self.loaded.snapshot_dir

    @property
    def areas(self) -> list[AreaNode]:
        return self.loaded.config.areas

    @property
    def console_settings(self) -> dict[str, object]:
        return self.loaded.config.api.console.model_dump(exclude={"enabled"})

    @property
    def feedback_secrets(self) -> dict[str, str]:
        return {f.name: f.secret for f in self.loaded.config.feedback}
