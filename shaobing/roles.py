"""Running the program: ``shaobing run`` (every role, embedded), ``shaobing <role>`` (one
role of the distributed mode) and ``shaobing run --workers N`` (alerts, dispatcher and the
API here, N worker processes beside, through Redis). The roles themselves are built in
``shaobing/bootstrap.py``; this module starts them, serves the API, waits for a signal
and stops them in order.

``worker`` (ingest + analytics + evidence for the cameras it holds a lease on),
``alerts`` (event consumer: alerts stored and routed, escalation), ``dispatcher``
(outbox → targets), ``api`` (REST API and console). Any number of each on any host,
sharing Redis (``bus.kind: redis``) and the database (PostgreSQL across hosts).
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

from shaobing import metrics
from shaobing.bootstrap import (
    DispatcherRole,
    Hub,
    Role,
    RoleError,
    build_alerts,
    build_api,
    build_worker,
    require_redis,
)
from shaobing.config import LoadedConfig
from shaobing.services import ApiServices
from shaobing.store import Store, evidence_links, open_store

log = logging.getLogger(__name__)

ROLES = ("worker", "alerts", "dispatcher", "api")

__all__ = ["ROLES", "RoleError", "run_all", "run_embedded", "run_role", "serve_api"]


def serve_api(loaded: LoadedConfig, services: Any) -> None:
    """Serve the API until SIGTERM/SIGINT (uvicorn handles them), then return."""
    import uvicorn

    from api.app import create_app

    api = loaded.config.api
    app = create_app(
        services,
        services.sessions,
        allowed_hosts=api.hosts(),
        token_ttl_s=api.token_ttl_s,
        metrics_public=api.metrics_public,
        console=api.console.enabled,
        max_body_bytes=api.max_body_kb * 1024,
    )
    from api.streams import ApiServer  # ends open feeds and live streams on a signal

    server = ApiServer(uvicorn.Config(app, host=api.host, port=api.port, log_level="warning",
                                      access_log=False), app.state.streams)  # fmt: skip
    log.info("API on http://%s:%d (OpenAPI at /docs)", api.host, api.port)
    # uvicorn stops on SIGTERM/SIGINT, then re-raises the signal to the handler that was
    # there before it: make that one a no-op, so the roles stop cleanly (readers, queued
    # events, deliveries) and the process exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        server.run()
    finally:
        sub_streams = getattr(services, "sub_streams", None)
        if sub_streams is not None:  # the sub streams opened for the wall
            sub_streams.close()


def wait_for_signal() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()


def announce_admin(store: Store) -> None:
    """On a first start with no user: create ``admin`` (``SHAOBING_ADMIN_PASSWORD`` or a
    random password, printed once — never logged: logs are kept and shipped)."""
    given = os.environ.get("SHAOBING_ADMIN_PASSWORD")
    created = store.ensure_admin(given)
    if created is None:
        return
    if given:
        print("created user 'admin' with the password from SHAOBING_ADMIN_PASSWORD", flush=True)
        return
    bar = "*" * 64
    print(f"{bar}\nFirst start: created user 'admin' with password\n\n    {created}\n\n"
          f"Log in and change it (shaobing users passwd admin). It is not shown again.\n{bar}",
          flush=True)  # fmt: skip


def serve_or_wait(loaded: LoadedConfig, services: ApiServices | None) -> None:
    """The API when it is enabled (until a signal), else just wait for one."""
    if services is not None and loaded.config.api.enabled:
        serve_api(loaded, services)
        log.info("stop requested")
    else:
        wait_for_signal()


# -- shaobing run -----------------------------------------------------------------------------


def run_embedded(hub: Hub) -> int:
    """``shaobing run``: every role in this process until SIGTERM/SIGINT."""
    announce_admin(hub.store)
    hub.start()
    metrics.register(hub.collector())
    try:
        serve_or_wait(hub.loaded, hub.services)
    finally:
        hub.stop()
    return 0


# -- shaobing <role> and shaobing run --workers N ---------------------------------------------


class StartedRole:
    """A started role and what was opened for it: ``stop()`` stops the role, then closes
    the rest (the database last)."""

    def __init__(self, role: Role, store: Store, *closers: Callable[[], None]) -> None:
        self.role = role
        self.name = role.name
        self.store = store
        self.closers = closers
        role.start()

    @property
    def threads(self) -> list[threading.Thread]:
        return self.role.threads

    def stop(self) -> None:
        self.role.stop()
        for close in self.closers:
            close()
        self.store.dispose()


def start_role(role: str, loaded: LoadedConfig, *, name: str = "worker") -> StartedRole:
    """Build and start one role other than the API, and register its /metrics values."""
    if role == "worker":
        worker, store = build_worker(loaded, name=name)
        started = StartedRole(worker, store)
        metrics.register(worker.collector())
    elif role == "alerts":
        alerts, store, feed = build_alerts(loaded)
        started = StartedRole(alerts, store, feed.stop)
        metrics.register(metrics.HubCollector(
            role="alerts", queues=lambda: {"events": alerts.pending()}))  # fmt: skip
    elif role == "dispatcher":
        store = open_store(loaded)
        dispatcher = DispatcherRole(loaded, store, evidence_links(loaded))
        started = StartedRole(dispatcher, store)
        metrics.register(metrics.HubCollector(role="dispatcher", outbox=store.outbox_counts))
        log.info("dispatcher role started (%s)", dispatcher.dispatcher.id)
    else:
        raise RoleError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    return started


def api_role(loaded: LoadedConfig) -> ApiServices:
    services, collector = build_api(loaded)
    services.feed.start()  # type: ignore[attr-defined]
    metrics.register(collector)
    return services


def run_role(role: str, loaded: LoadedConfig, *, name: str = "worker",
             metrics_port: int | None = None, metrics_host: str = "127.0.0.1") -> int:  # fmt: skip
    """Run one role in this process until SIGTERM/SIGINT."""
    if role not in ROLES:
        raise RoleError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    if role == "api":
        services = api_role(loaded)
        try:
            announce_admin(services.store)
            serve_api(loaded, services)
        finally:
            services.feed.stop()  # type: ignore[attr-defined]
            services.store.dispose()
        return 0
    if metrics_port:
        metrics.serve(metrics_port, metrics_host)
    started = start_role(role, loaded, name=name)
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
    alerts = start_role("alerts", loaded)
    dispatcher = start_role("dispatcher", loaded)
    procs.start()
    services = api_role(loaded) if loaded.config.api.enabled else None
    if services is not None:
        # the API here steers PTZ and speaks through the alerts role's linkage (one
        # arbiter: an operator's hold and a linkage's move know of each other)
        services.linkage = getattr(alerts.role, "linkage", None)
        announce_admin(services.store)
    try:
        serve_or_wait(loaded, services)
    finally:
        procs.stop()
        if services is not None:
            services.feed.stop()  # type: ignore[attr-defined]
            services.store.dispose()
        alerts.stop()
        dispatcher.stop()
    return 0
