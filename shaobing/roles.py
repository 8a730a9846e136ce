"""The roles of one program (distributed mode) and how each is composed.

``worker`` (ingest + analytics + evidence for the cameras it holds a lease on),
``alerts`` (event consumer: alerts stored and routed, escalation), ``dispatcher``
(outbox → targets), ``api`` (REST API and console). Any number of each on any host,
sharing Redis (``bus.kind: redis``) and the database (PostgreSQL across hosts).
``shaobing run`` stays the all-in-one embedded hub; ``shaobing run --workers N`` runs
the alerts, dispatcher and API roles in its own process and N worker processes,
through the same Redis mechanism, to use every core of one machine.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alerts.adapters.redis_bus import RedisEventBus
from alerts.adapters.sql import SqlUnitOfWork
from alerts.dispatcher import Dispatcher
from alerts.messages import EVENTS_TOPIC
from alerts.service import CONSUMER_GROUP, AlertService, AlertWorkers
from camera_registry.leases import Fences
from core.storage import EvidenceStorage
from shaobing import metrics
from shaobing.config import LoadedConfig
from shaobing.distributed import (
    ApiServices,
    FenceCheckingBus,
    RedisAlertFeed,
    RoutingCache,
    WorkerHub,
    redis_connection,
)
from shaobing.hub import Hub, evidence_links, evidence_storage, open_store

log = logging.getLogger(__name__)

ROLES = ("worker", "alerts", "dispatcher", "api")


class RoleError(RuntimeError):
    """A role cannot run with this configuration (exit code 2)."""


def require_redis(loaded: LoadedConfig, what: str) -> None:
    if loaded.config.bus.kind != "redis":
        raise RoleError(f"{what} needs the distributed mode: set bus.kind: redis (and bus.url)")


def check_evidence(storage: EvidenceStorage, loaded: LoadedConfig) -> None:
    """Warn when the evidence storage (the process's one, core/storage.py) is not writable
    or cannot serve several hosts (a directory under data_dir)."""
    log.info("evidence storage: %s", storage.describe())
    for problem in storage.check(shared_required=True, data_dir=loaded.data_dir):
        log.warning("%s (fine when every role runs on this one host)", problem)


# -- metrics ------------------------------------------------------------------------------


def hub_collector(hub: Hub) -> metrics.HubCollector:
    """Scrape-time values of an embedded hub (or a worker)."""

    def queues() -> dict[str, int]:
        return {
            "analysis": sum(len(s.pending) for s in list(hub.pool.slots.values())),
            "evidence": hub.producer.backlog(),
            "events": int(hub.health().get("events_pending", 0) or 0),  # type: ignore[call-overload]
        }

    leases = None
    if isinstance(hub, WorkerHub):
        worker = hub

        def leases() -> dict[str, str]:
            return {c: worker.worker_id for c in worker.leases.held}

    outbox = None if isinstance(hub, WorkerHub) else (lambda: metrics.outbox_counts(hub.sessions))
    return metrics.HubCollector(
        role="worker" if isinstance(hub, WorkerHub) else "hub",
        statuses=lambda: [s for s in hub.status.all() if s.camera_id in hub.readers],
        queues=queues,
        outbox=outbox,
        leases=leases,
    )


# -- the roles ----------------------------------------------------------------------------


class Role:
    """A started role: ``stop()`` ends it; ``threads`` tell whether it is alive."""

    def __init__(self, name: str, stop: Callable[[], None], threads: list[threading.Thread]):
        self.name = name
        self._stop = stop
        self.threads = threads

    def stop(self) -> None:
        self._stop()


def start_worker(loaded: LoadedConfig, *, name: str = "worker") -> tuple[Role, WorkerHub]:
    require_redis(loaded, "the worker role")
    hub = WorkerHub(loaded, name=name)
    check_evidence(hub.evidence, loaded)
    hub.start()
    metrics.register(hub_collector(hub))
    return Role("worker", hub.stop, hub.service_threads()), hub


def start_alerts(loaded: LoadedConfig) -> Role:
    """The event consumer and the escalation clock, on the Redis stream."""
    require_redis(loaded, "the alerts role")
    cfg = loaded.config
    engine, sessions, _ = open_store(loaded)
    r = redis_connection(loaded)
    links = evidence_links(loaded)
    feed = RedisAlertFeed(r, cfg.bus.prefix)
    service = AlertService(lambda: SqlUnitOfWork(sessions, links=links),
                           RoutingCache(loaded, sessions), timezone=cfg.timezone,
                           feed=feed, incidents=cfg.alerts.incidents.policy())  # fmt: skip
    bus = RedisEventBus(r, prefix=cfg.bus.prefix, maxlen=cfg.bus.maxlen,
                        claim_idle_s=cfg.bus.claim_idle_s)  # fmt: skip
    fenced = FenceCheckingBus(bus, Fences(r, cfg.bus.prefix))
    workers = AlertWorkers(service, fenced, escalation_interval_s=cfg.escalation.check_interval_s)
    workers.start()
    metrics.register(metrics.HubCollector(
        role="alerts", queues=lambda: {"events": bus.pending(EVENTS_TOPIC, CONSUMER_GROUP)},
    ))  # fmt: skip

    def stop() -> None:
        workers.stop()
        feed.stop()
        engine.dispose()

    log.info("alerts role started (consumer %s)", bus.consumer)
    return Role("alerts", stop, workers.threads)


def start_dispatcher(loaded: LoadedConfig) -> Role:
    """Outbox delivery; any number of dispatchers share the rows through leases."""
    engine, sessions, _ = open_store(loaded)
    dispatcher = Dispatcher(sessions, loaded.config.dispatch, links=evidence_links(loaded))
    dispatcher.start()
    metrics.register(metrics.HubCollector(
        role="dispatcher", outbox=lambda: metrics.outbox_counts(sessions)
    ))  # fmt: skip

    def stop() -> None:
        dispatcher.stop()
        dispatcher.join(timeout=10)
        engine.dispose()

    log.info("dispatcher role started (%s)", dispatcher.id)
    return Role("dispatcher", stop, [dispatcher])


def api_services(loaded: LoadedConfig) -> tuple[ApiServices, Callable[[], None]]:
    require_redis(loaded, "the api role")
    cfg = loaded.config
    engine, sessions, cipher = open_store(loaded)
    r = redis_connection(loaded)
    bus = RedisEventBus(r, prefix=cfg.bus.prefix)
    services = ApiServices(loaded, sessions, cipher, r, evidence_links(loaded), bus,
                           evidence_storage(loaded))  # fmt: skip
    check_evidence(services.evidence, loaded)
    services.feed.start()
    metrics.register(metrics.HubCollector(
        role="api", outbox=lambda: metrics.outbox_counts(sessions),
        queues=lambda: {"events": bus.pending(EVENTS_TOPIC, CONSUMER_GROUP)},
    ))  # fmt: skip

    def stop() -> None:
        services.feed.stop()
        engine.dispose()

    return services, stop


def serve_api(loaded: LoadedConfig, services: Any, sessions: Any) -> None:
    """Serve the API until SIGTERM/SIGINT (uvicorn handles them), then return."""
    import uvicorn

    from api.app import create_app

    api = loaded.config.api
    app = create_app(
        services,
        sessions,
        allowed_hosts=api.hosts(),
        token_ttl_s=api.token_ttl_s,
        metrics_public=api.metrics_public,
        console=api.console.enabled,
    )
    from api.streams import ApiServer  # ends open feeds and live streams on a signal

    server = ApiServer(uvicorn.Config(app, host=api.host, port=api.port, log_level="warning",
                                      access_log=False), app.state.streams)  # fmt: skip
    log.info("API on http://%s:%d (OpenAPI at /docs)", api.host, api.port)
    for sig in (signal.SIGTERM, signal.SIGINT):  # uvicorn re-raises to these: no-ops
        signal.signal(sig, lambda *_: None)
    server.run()


def wait_for_signal() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()


# -- shaobing <role> and shaobing run --workers N ------------------------------------------


def run_role(role: str, loaded: LoadedConfig, *, name: str = "worker",
             metrics_port: int | None = None, metrics_host: str = "127.0.0.1") -> int:  # fmt: skip
    """Run one role in this process until SIGTERM/SIGINT."""
    if role != "api" and metrics_port:
        metrics.serve(metrics_port, metrics_host)
    if role == "worker":
        started, _ = start_worker(loaded, name=name)
    elif role == "alerts":
        started = start_alerts(loaded)
    elif role == "dispatcher":
        started = start_dispatcher(loaded)
    elif role == "api":
        services, stop = api_services(loaded)
        try:
            _ensure_admin(services, os.environ.get("SHAOBING_ADMIN_PASSWORD"))
            serve_api(loaded, services, services.sessions)
        finally:
            stop()
        return 0
    else:
        raise RoleError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    try:
        wait_for_signal()
    finally:
        started.stop()
    return 0


class WorkerProcesses:
    """N ``shaobing worker`` processes on this machine, restarted when one dies."""

    def __init__(self, config_path: Path, count: int, metrics_port: int | None = None) -> None:
        self.config_path = config_path
        self.count = count
        self.metrics_port = metrics_port
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._supervise, name="workers", daemon=True)

    def command(self, index: int) -> list[str]:
        cmd = [sys.executable, "-m", "shaobing.cli", "worker", "--config", str(self.config_path),
               "--name", f"worker-{index}"]  # fmt: skip
        if self.metrics_port:
            cmd += ["--metrics-port", str(self.metrics_port + index)]
        return cmd

    def start(self) -> None:
        for index in range(1, self.count + 1):
            self._spawn(index)
        self.thread.start()

    def _spawn(self, index: int) -> None:
        self.procs[index] = subprocess.Popen(self.command(index))
        log.info("worker-%d started (pid %d)", index, self.procs[index].pid)

    def _supervise(self) -> None:
        while not self._stop.wait(1.0):
            for index, proc in list(self.procs.items()):
                if proc.poll() is not None and not self._stop.is_set():
                    log.error("worker-%d exited with %s; starting it again", index,
                              proc.returncode)  # fmt: skip
                    self._spawn(index)

    def stop(self, timeout: float = 20.0) -> None:
        self._stop.set()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_all(loaded: LoadedConfig, workers: int, *, metrics_port: int | None = None) -> int:
    """``shaobing run --workers N``: alerts, dispatcher and API here; N worker processes."""
    require_redis(loaded, "run --workers")
    if loaded.path is None:
        raise RoleError("run --workers needs --config (the workers read the same file)")
    procs = WorkerProcesses(Path(loaded.path).resolve(), workers, metrics_port)
    alerts = start_alerts(loaded)
    dispatcher = start_dispatcher(loaded)
    procs.start()
    try:
        if loaded.config.api.enabled:
            services, stop_api = api_services(loaded)
            try:
                admin = os.environ.get("SHAOBING_ADMIN_PASSWORD")
                _ensure_admin(services, admin)
                serve_api(loaded, services, services.sessions)
            finally:
                stop_api()
        else:
            wait_for_signal()
    finally:
        procs.stop()
        alerts.stop()
        dispatcher.stop()
    return 0


def _ensure_admin(services: ApiServices, password: str | None) -> None:
    from accounts.service import ensure_initial_admin

    with services.sessions.begin() as session:
        created = ensure_initial_admin(session, password)
    if created is not None and not password:
        print(f"First start: created user 'admin' with password\n\n    {created}\n", flush=True)
