"""The composition root: the one place that builds adapters and wires roles from them.

Two adapter sets, the same roles:

====================  ==================================  =======================================
port                  embedded (``shaobing run``)          distributed (``bus.kind: redis``)
====================  ==================================  =======================================
event bus             in-process queue behind a spool      Redis Streams behind a spool, fenced
camera assignment     every enabled camera here            leases on Redis (``LeasedCameras``)
camera state (API)    the worker's status board            the workers' entries in Redis
live video (API)      the worker's packets                 signed URLs of the worker holding it
alert feed            in-process                           Redis pub/sub
routing               the database, re-read after changes  the same (every process)
zones/rules changed   applied by the worker here           announced on Redis to the holder
unit of work          SQLAlchemy (SQLite or PostgreSQL)    the same (PostgreSQL across hosts)
evidence storage      a directory or an S3 bucket          the same (shared)
linkage engine        in-process, on the alert feed        the alerts role, each alert claimed
                                                           once in Redis; returns home in Redis
====================  ==================================  =======================================

Roles are compositions with ``start()``, ``stop()``, ``threads`` and ``health()``:
``worker`` (ingest + analytics + evidence), ``alerts`` (event consumer, lifecycle,
routing, escalation), ``dispatcher`` (outbox → targets) and the API's services. ``run``
is every role on the embedded adapters (:class:`Hub`); ``run --workers N`` and the single
roles are the same roles on the Redis adapters. Nothing below ``shaobing/`` imports this.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from alerts.adapters.memory_bus import MemoryEventBus
from alerts.adapters.spool import ForwardingSpool, SpoolingEventBus
from alerts.dispatcher import Dispatcher
from alerts.feed import AlertFeed
from alerts.links import EvidenceLinks
from alerts.messages import EVENTS_TOPIC
from alerts.ports import EventBus
from alerts.service import CONSUMER_GROUP, AlertService, AlertWorkers
from analytics.config import CameraConfig
from analytics.detectors import Detector, create_detector
from camera_registry.status import StatusBoard
from camera_registry.store import SqlPatrolSightings, invalid_config_error
from core.diskwatch import with_reasons
from gb28181 import forward as gb_forward
from gb28181.component import GbPlatform
from ingest.substream import SubStreams
from linkage.gb_ptz import route_gb_ptz
from linkage.gb_voice import route_gb_voice
from linkage.wiring import Linkage
from recording.service import RecordingService
from shaobing import metrics
from shaobing.adapters.leases import Fences, WorkerLeases
from shaobing.adapters.redis_bus import RedisEventBus
from shaobing.adapters.redis_linkage import RedisAlertClaim, RedisHomeTimers
from shaobing.adapters.redis_state import (
    FenceCheckingBus,
    FencedPublisher,
    RedisAlertFeed,
    RedisLiveState,
    RedisStatusView,
    redis_connection,
)
from shaobing.config import LoadedConfig
from shaobing.disk_alerts import watch_disks
from shaobing.distributed import (
    LeasedCameras,
    LiveStatePublisher,
    RedisCameraLive,
    announce_change,
)
from shaobing.follow import RegistryFollower
from shaobing.media import MediaServer, live_key
from shaobing.patrol import Patroller
from shaobing.services import ApiServices, alert_service
from shaobing.store import (
    RoutingCache,
    Store,
    audit_config,
    check_evidence,
    evidence_links,
    evidence_storage,
    health_report,
    open_store,
)
from shaobing.worker import Worker

log = logging.getLogger(__name__)


class RoleError(RuntimeError):
    """A role cannot run with this configuration (exit code 2)."""


class Role(Protocol):
    """A started or startable part of the program."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    @property
    def threads(self) -> list[threading.Thread]: ...

    def health(self) -> dict[str, Any]: ...


def require_redis(loaded: LoadedConfig, what: str) -> None:
    if loaded.config.bus.kind != "redis":
        raise RoleError(f"{what} needs the distributed mode: set bus.kind: redis (and bus.url)")


# -- the roles ------------------------------------------------------------------------------


class AlertsRole:
    """Events → stored, routed alerts (one transaction with their outbox rows), and the
    escalation clock; in the distributed mode also the linkage engine (issue 27), which
    acts on the alerts the feed announces (once across alerts roles: a claim in Redis)."""

    name = "alerts"

    def __init__(
        self,
        service: AlertService,
        bus: EventBus,
        escalation_interval_s: float,
        *,
        linkage: Linkage | None = None,
        feed: RedisAlertFeed | None = None,
    ):
        self.service = service
        self.bus = bus
        self.workers = AlertWorkers(service, bus, escalation_interval_s=escalation_interval_s)
        self.linkage = linkage
        self.feed = feed  # its listener runs while the linkage does

    def start(self) -> None:
        if self.linkage is not None:
            self.linkage.start()
            if self.feed is not None:
                self.feed.start()
        self.workers.start()

    def stop(self) -> None:
        self.workers.stop()  # store what was published
        if self.linkage is not None:
            self.linkage.stop()

    @property
    def threads(self) -> list[threading.Thread]:
        return self.workers.threads + (self.linkage.threads if self.linkage else [])

    def pending(self) -> int:
        return self.workers.pending()

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"events_pending": self.pending(),
                               "threads": {t.name: t.is_alive() for t in self.threads}}  # fmt: skip
        if self.linkage is not None:
            out["linkage"] = self.linkage.health()
        return out


class CameraLookup:
    """A camera's config by id from the database (credentials decrypted), re-read when
    older than ``ttl_s``: what a role without a worker needs for PTZ (the alerts role)."""

    def __init__(self, store: Store, ttl_s: float = 10.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cameras: dict[str, CameraConfig] = {}
        self._at = float("-inf")

    def get(self, camera_id: str) -> CameraConfig | None:
        with self._lock:
            if time.monotonic() - self._at > self.ttl_s:
                try:
                    self._cameras = {c.id: c for c in self.store.load_cameras()}
                except Exception:  # noqa: BLE001 - the database away: the last ones
                    log.warning("cameras not re-read; using the last ones", exc_info=True)
                self._at = time.monotonic()
            return self._cameras.get(camera_id)


class DispatcherRole:
    """Outbox delivery; any number of dispatchers share the rows through leases."""

    name = "dispatcher"

    def __init__(self, loaded: LoadedConfig, store: Store, links: EvidenceLinks) -> None:
        self.dispatcher = Dispatcher(store.sessions, loaded.config.dispatch, links=links)

    def start(self) -> None:
        self.dispatcher.start()

    def stop(self) -> None:
        self.dispatcher.stop()
        self.dispatcher.join(timeout=10)

    @property
    def threads(self) -> list[threading.Thread]:
        return [self.dispatcher]

    def health(self) -> dict[str, Any]:
        return {"threads": {t.name: t.is_alive() for t in self.threads}}


class WorkerRole:
    """A :class:`Worker` and what feeds it cameras: every enabled camera of the registry
    (embedded) or the leased ones, with the live state in Redis and the live-video server
    (distributed). ``spool``: the bus's disk spool (recovered at start, drained at stop)."""

    name = "worker"

    def __init__(
        self,
        worker: Worker,
        patrol: Patroller,
        *,
        spool: Any = None,
        leased: LeasedCameras | None = None,
        extras: tuple[Any, ...] = (),
    ) -> None:
        self.worker = worker
        self.patrol = patrol
        self.spool = spool
        self.leased = leased
        self.extras = extras  # components with start()/stop()/thread
        # embedded: cameras enabled or disabled in the registry later start or stop
        self.follower = (
            RegistryFollower(self.apply_registry, self._runs,
                             lambda: [*worker.readers, *patrol.cameras], worker.store)  # fmt: skip
            if leased is None
            else None
        )

    def _runs(self, camera_id: str) -> bool:
        return camera_id in self.worker.readers or camera_id in self.patrol

    def start(self) -> None:
        recover = getattr(self.spool, "recover", None)  # what a crash left in the spool
        if recover is not None:
            recover()
        self.worker.start()
        self.patrol.start()
        if self.follower is not None:
            self.follower.mark()
            for cam in self.worker.store.load_cameras(self.worker.report_invalid):
                if cam.enabled and cam.analysis == "patrol":
                    self.patrol.add(cam)
                else:
                    self.worker.add_camera(cam)
            self.follower.start()
        else:
            assert self.leased is not None
            self.leased.start()
        for extra in self.extras:
            extra.start()
        log.info("worker started: %d camera(s), detector %s", len(self.worker.readers),
                 self.worker.detector.name)  # fmt: skip

    def stop(self) -> None:
        for extra in self.extras:
            extra.stop()
        if self.follower is not None:
            self.follower.stop()
        if self.leased is not None:
            self.leased.stop()
        self.patrol.stop()
        self.worker.stop()
        stop_spool = getattr(self.spool, "stop", None)  # forward what is left, then stop
        if stop_spool is not None:
            stop_spool()

    @property
    def threads(self) -> list[threading.Thread]:
        extra = [e.thread for e in self.extras]
        leased = [self.leased.thread] if self.leased is not None else []
        if self.follower is not None:
            leased.append(self.follower.thread)
        return [*self.worker.threads, self.patrol.thread, *leased, *extra]

    def pending(self) -> int:
        backlog = getattr(self.spool, "backlog", None)
        return self.worker.backlog() + (int(backlog()) if backlog is not None else 0)

    def apply_change(self, cam: CameraConfig) -> None:
        """New zones and rules of a camera saved through the API (embedded mode)."""
        self.patrol.update(cam)
        self.worker.apply_analytics(cam)

    def apply_registry(self, camera_id: str) -> None:
        """A camera added, edited, disabled or deleted in the registry (the console, the
        API; embedded mode): started, restarted, stopped or forgotten now, no restart.
        Before the worker runs (or after it stopped) nothing is read: its start loads the
        registry as it is then."""
        if not self.worker.running:
            return
        try:
            cam = self.worker.store.load_camera(camera_id)
        except ValueError as exc:  # written by another version, or another key
            self._unschedule(camera_id)
            self.worker.stop_camera(camera_id, state=None)
            self.worker.report_invalid(camera_id, invalid_config_error(exc))
            return
        self._unschedule(camera_id)
        if cam is None:
            self.worker.forget_camera(camera_id)
        elif cam.enabled and cam.analysis == "patrol":
            self.worker.stop_camera(camera_id, state=None)
            self.patrol.add(cam)
        else:
            self.worker.reconfigure(cam)

    def _unschedule(self, camera_id: str) -> None:
        if camera_id in self.patrol:
            self.patrol.remove(camera_id)

    def health(self) -> dict[str, Any]:
        statuses = self.worker.status.all()
        if self.leased is not None:
            statuses = [s for s in statuses if s.camera_id in self.leased.leases.held]
        return health_report(
            ok=self.worker.started, statuses=statuses, events_pending=self.pending(),
            threads={t.name: t.is_alive() for t in self.threads},
        )  # fmt: skip

    def collector(self) -> metrics.HubCollector:
        if self.leased is None:
            return self.worker.collector("hub", events=self.pending)
        return self.worker.collector("worker", leases=self.leased.holders, events=self.pending)


def recording_for(
    loaded: LoadedConfig, store: Store, worker: Worker, name: str,
    sub_streams: SubStreams | None = None,
) -> RecordingService:  # fmt: skip
    """Recording (recording/, issue 24): segments of the cameras ``worker`` reads now, from
    their live feeds (or their sub streams, ``record.stream: sub``, opened in
    ``sub_streams``); its spool (open segments) is this process's own."""
    evidence = evidence_storage(loaded) if loaded.config.recording.storage == "evidence" else None
    service = RecordingService(loaded.config.recording, loaded.recording_dir,
                               loaded.data_dir / "recording-spool" / name, store.sessions,
                               evidence, sub_streams=sub_streams,
                               ingest=loaded.config.ingest)  # fmt: skip
    service.follow(lambda: [worker.cameras[c] for c in list(worker.readers)], worker.live_feed)
    worker.pool.activity = service.recorder  # motion and moving objects: modes and counts
    return service


# -- the embedded hub: every role in one process ---------------------------------------------


class Hub:
    """``shaobing run``: the worker, alerts and dispatcher roles on the embedded adapters
    (SQLite or PostgreSQL, the in-process bus behind a disk spool), and the API's services
    (:attr:`services`) over them."""

    def __init__(self, loaded: LoadedConfig, *, detector: Detector | None = None) -> None:
        cfg = loaded.config
        self.loaded = loaded
        self.store = open_store(loaded)
        audit_config(loaded, self.store)
        self.detector = detector or create_detector(
            cfg.detector, loaded.models_dir, loaded.mirror_dir
        )
        self.status = StatusBoard()
        self.links = evidence_links(loaded)
        self.evidence = evidence_storage(loaded)  # snapshots, clips, track files
        # Events are spooled to disk until their alert is committed: a crash loses none.
        self.bus = SpoolingEventBus(MemoryEventBus(), loaded.data_dir / "spool")
        self.dispatch = DispatcherRole(loaded, self.store, self.links)
        self.routing = RoutingCache(loaded, self.store.sessions)
        self.feed = AlertFeed()  # alert notifications for the console's live feed
        self.alerts = alert_service(loaded, self.store, self.links, self.routing, self.feed,
                                    on_committed=self.dispatcher.notify)  # fmt: skip
        self.alerts_role = AlertsRole(self.alerts, self.bus, cfg.escalation.check_interval_s)
        self.worker = Worker(loaded, self.store, detector=self.detector, bus=self.bus,
                             status=self.status, evidence=self.evidence,
                             publish_state=self.dispatcher.camera_status)  # fmt: skip
        self.patrol = Patroller(self.worker, cfg.patrol,
                                sightings=SqlPatrolSightings(self.store.sessions))  # fmt: skip
        # Sub streams (子码流), one pull per camera for the wall and record.stream: sub
        self.sub_streams = SubStreams(cfg.ingest)
        self.recording = recording_for(loaded, self.store, self.worker, "hub", self.sub_streams)
        self.worker_role = WorkerRole(self.worker, self.patrol, spool=self.bus,
                                      extras=(self.recording,))  # fmt: skip
        # The free space of data_dir and the evidence folder: /healthz, an alert when low.
        self.disks = watch_disks(loaded, self.worker.producer)
        self.linkage = Linkage.for_hub(self)  # acts on new alerts (the feed)
        # GB/T 28181 platform (sip.enabled; gb28181/component.py): started before the worker,
        # whose gb28181:// cameras it plays; the channels it imports named for the alerts.
        self.sip = GbPlatform.build(cfg.sip, self.store.sessions, self.store.cipher,
                                    self.status, self.worker.producer.cameras)  # fmt: skip
        gb_forward.FEEDS = self.worker.held_feed  # a superior's INVITE for a shared channel
        if self.sip is not None:  # live view of channels nobody analyses: INVITE on demand
            self.sip.attach_live(self.worker.live_feed, self.worker.readers.__contains__,
                                 cfg.ingest)  # fmt: skip
            route_gb_ptz(self.linkage, self.sip.server, self.sip.locate)  # PTZ of GB channels
            route_gb_voice(self.linkage, self.sip.server)  # speakers of kind gb28181
        self.roles: list[Role] = [self.disks, self.dispatch, self.linkage, self.alerts_role,
                                  *([self.sip] if self.sip else []), self.worker_role]
        self.services = ApiServices(
            loaded, self.store, status=self.status, alerts=self.alerts, links=self.links,
            feed=self.feed, evidence=self.evidence, routing=self.routing, live=self.worker,
            camera_changed=self.worker_role.apply_change, health=self.health,
            registry_changed=self.worker_role.apply_registry, sub_streams=self.sub_streams,
        )  # fmt: skip
        self.services.linkage = self.linkage
        self.services.sip = self.sip  # /api/gb28181
        self._started = False

    # the parts tests and benchmarks reach for
    @property
    def engine(self) -> Any:
        return self.store.engine

    @property
    def sessions(self) -> Any:
        return self.store.sessions

    @property
    def cipher(self) -> Any:
        return self.store.cipher

    @property
    def dispatcher(self) -> Dispatcher:
        return self.dispatch.dispatcher

    @property
    def alert_workers(self) -> AlertWorkers:
        return self.alerts_role.workers

    @property
    def cameras(self) -> dict[str, CameraConfig]:
        return self.worker.cameras

    @property
    def producer(self) -> Any:
        return self.worker.producer

    @property
    def tracks(self) -> Any:
        return self.worker.tracks

    @property
    def public_url(self) -> str:
        return self.links.base_url

    @property
    def snapshot_dir(self) -> Any:
        return self.loaded.snapshot_dir

    def load_cameras(self) -> list[CameraConfig]:
        return self.store.load_cameras(self.worker.report_invalid)

    def ensure_admin(self, password: str | None = None) -> str | None:
        return self.store.ensure_admin(password)

    def start(self) -> None:
        for role in self.roles:  # delivery and storage first: the spool's events land
            role.start()
        self._started = True

    def stop(self) -> None:
        for role in reversed(self.roles):  # read no more, publish what is queued, store it,
            role.stop()  # deliver it
        self.store.dispose()
        log.info("hub stopped")

    @property
    def threads(self) -> list[threading.Thread]:
        return [t for role in self.roles for t in role.threads]

    def health(self) -> dict[str, Any]:
        report = with_reasons(health_report(
            ok=self._started, statuses=self.status.all(),
            threads={t.name: t.is_alive() for t in self.threads},
            events_pending=self.alerts_role.pending() + self.worker.backlog(),
            outbox=self.store.outbox_counts(),
        ), self.disks.health(), self.bus.health())  # fmt: skip
        report["recording"] = self.recording.health()
        if self.sip is not None:
            report["sip"] = self.sip.health()
        return report

    def collector(self) -> metrics.HubCollector:
        collector = self.worker_role.collector()
        collector.outbox = self.store.outbox_counts
        return collector


# -- the distributed roles ------------------------------------------------------------------


def build_worker(
    loaded: LoadedConfig, *, name: str = "worker", detector: Detector | None = None
) -> tuple[WorkerRole, Store]:
    """The worker role on Redis: fenced events through a disk spool into the stream, the
    cameras it holds a lease on, its live state in Redis, its live-video server."""
    require_redis(loaded, "the worker role")
    cfg = loaded.config
    bus_cfg = cfg.bus
    store = open_store(loaded)
    r = redis_connection(loaded)
    redis_bus = RedisEventBus(r, prefix=bus_cfg.prefix, maxlen=bus_cfg.maxlen,
                              claim_idle_s=bus_cfg.claim_idle_s)  # fmt: skip
    worker_id = f"{name}@{redis_bus.consumer}"
    leases = WorkerLeases(r, bus_cfg.prefix, worker_id, bus_cfg.lease_s)
    spool = ForwardingSpool(redis_bus, loaded.data_dir / "spool" / name)
    evidence = evidence_storage(loaded)
    check_evidence(evidence, loaded)
    # Camera states to the targets that publish them (MQTT): this process's own
    # connectors, never started as a dispatcher (it delivers no outbox row).
    states = Dispatcher(store.sessions, cfg.dispatch, links=evidence_links(loaded))
    worker = Worker(
        loaded, store, detector=detector or create_detector(cfg.detector, loaded.models_dir,
                                                            loaded.mirror_dir),
        bus=FencedPublisher(spool, leases.token), status=StatusBoard(), evidence=evidence,
        publish_state=states.camera_status,
    )  # fmt: skip
    patrol = Patroller(worker, cfg.patrol, sightings=SqlPatrolSightings(store.sessions))
    leased = LeasedCameras(worker, store, r, bus_cfg.prefix, leases, patrol)
    media = MediaServer(live_key(store.cipher), worker.held_feed, bus_cfg.media_listen,
                        bus_cfg.media_advertise)  # fmt: skip
    live_state = RedisLiveState(r, bus_cfg.prefix, ttl_s=bus_cfg.lease_s * 2)
    publisher = LiveStatePublisher(worker, leases, live_state, media, bus_cfg.frame_interval_s)
    recording = recording_for(loaded, store, worker, name)  # recording/ (issue 24)
    disks = watch_disks(loaded, worker.producer)  # its spool and evidence: alert when low
    role = WorkerRole(worker, patrol, spool=spool, leased=leased,
                      extras=(media, publisher, recording, disks))  # fmt: skip
    log.info("worker %s (detector %s)", worker_id, worker.detector.name)
    return role, store


def build_alerts(loaded: LoadedConfig) -> tuple[AlertsRole, Store, RedisAlertFeed]:
    """The event consumer and the escalation clock, on the Redis stream."""
    require_redis(loaded, "the alerts role")
    cfg = loaded.config
    store = open_store(loaded)
    r = redis_connection(loaded)
    feed = RedisAlertFeed(r, cfg.bus.prefix)
    service = alert_service(loaded, store, evidence_links(loaded),
                            RoutingCache(loaded, store.sessions), feed)  # fmt: skip
    bus = RedisEventBus(r, prefix=cfg.bus.prefix, maxlen=cfg.bus.maxlen,
                        claim_idle_s=cfg.bus.claim_idle_s)  # fmt: skip
    fenced = FenceCheckingBus(bus, Fences(r, cfg.bus.prefix))
    log.info("alerts role (consumer %s)", bus.consumer)
    linkage = None
    if cfg.linkage.enabled:  # issue 27: here, not in the workers; once across alerts roles
        prefix = cfg.bus.prefix
        linkage = Linkage.build(
            loaded, store.sessions, evidence_links(loaded), feed, CameraLookup(store).get,
            homes=RedisHomeTimers(r, prefix), claim=RedisAlertClaim(r, prefix, bus.consumer),
        )  # fmt: skip
    role = AlertsRole(service, fenced, cfg.escalation.check_interval_s, linkage=linkage,
                      feed=feed)  # fmt: skip
    return role, store, feed


def build_api(loaded: LoadedConfig) -> tuple[ApiServices, metrics.HubCollector]:
    """An API node's services: the database, and Redis for what the workers know (status,
    latest frame, counters, live video's whereabouts)."""
    require_redis(loaded, "the api role")
    cfg = loaded.config
    prefix = cfg.bus.prefix
    store = open_store(loaded)
    r = redis_connection(loaded)
    bus = RedisEventBus(r, prefix=prefix)
    links = evidence_links(loaded)
    evidence = evidence_storage(loaded)
    check_evidence(evidence, loaded)
    live_state = RedisLiveState(r, prefix, ttl_s=cfg.bus.lease_s * 2)
    status = RedisStatusView(live_state)
    feed = RedisAlertFeed(r, prefix)
    routing = RoutingCache(loaded, store.sessions)

    def health() -> dict[str, Any]:
        try:
            pending = bus.pending(EVENTS_TOPIC, CONSUMER_GROUP)
            redis_ok = True
        except Exception:  # noqa: BLE001 - reported as degraded
            pending, redis_ok = 0, False
        return health_report(
            ok=redis_ok, statuses=status.all(), events_pending=pending,
            threads={"redis": redis_ok, "feed": feed.thread.is_alive()},
            outbox=store.outbox_counts(),
        )  # fmt: skip

    services = ApiServices(
        loaded, store, status=status, feed=feed, links=links, evidence=evidence,
        alerts=alert_service(loaded, store, links, routing, feed), routing=routing,
        live=RedisCameraLive(live_state, live_key(store.cipher)),
        camera_changed=lambda cam: announce_change(r, prefix, cam.id), health=health,
        registry_changed=lambda camera_id: announce_change(r, prefix, camera_id),
    )  # fmt: skip
    collector = metrics.HubCollector(
        role="api", outbox=store.outbox_counts,
        queues=lambda: {"events": bus.pending(EVENTS_TOPIC, CONSUMER_GROUP)},
    )  # fmt: skip
    return services, collector
