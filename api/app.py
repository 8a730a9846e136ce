"""The FastAPI application: REST API over the hub (OpenAPI at /docs and /openapi.json).

Every route requires authentication except ``/healthz``, ``POST /api/auth/login``
and the signed ``POST /api/feedback``; roles and area scope decide the rest. The
API answers only to the Host names it is configured for (DNS-rebinding defence).
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy.orm import Session, sessionmaker

from accounts.throttle import LoginThrottle
from accounts.throttle_sql import SqlFailures
from api.auth import install_host_check, require
from api.console import CONSOLE_ROUTES, mount_console
from api.docs import install_offline_docs
from api.errors_zh import install_error_language
from api.limits import DEFAULT_BODY, BodyLimit, PasswordSlots
from api.openapi_errors import document_errors
from api.ports import HubServices
from api.routers import (
    alerts,
    areas,  # issue 23: the area tree edited in the console
    auth,
    camera_admin,  # issue 23: the camera registry from the console
    camera_analytics,
    cameras,
    console_settings,
    deliveries,
    exports,
    feedback,
    gb28181,
    linkage,  # issue 27: PTZ, linkage, voice
    live,
    patrol,
    recordings,  # recording/ (issue 24)
    routing,
    stats,
    tracks,
    users,
)
from api.schemas import Health, HealthReport
from api.streams import OpenStreams

VERSION = "0.3.0"

#: The routes that answer without authentication (the authorisation tests check this).
#: ``/metrics`` is public unless ``api.metrics_public: false``: an internal Prometheus
#: scrapes it, and it holds counts and camera ids only (no URL, credential or alert).
PUBLIC_ROUTES = {("GET", "/healthz"), ("POST", "/api/auth/login"), ("POST", "/api/feedback"),
                 ("GET", "/metrics"), *CONSOLE_ROUTES}  # fmt: skip


def create_app(
    services: HubServices,
    sessions: sessionmaker[Session],
    *,
    allowed_hosts: list[str] | None = None,
    token_ttl_s: float = 12 * 3600,
    metrics_public: bool = True,
    console: bool = True,
    max_body_bytes: int = DEFAULT_BODY,
) -> FastAPI:
    app = FastAPI(
        title="Shaobing 哨兵",
        version=VERSION,
        description="Video-surveillance integration and analytics hub: cameras, live status, "
        "alerts with evidence and their handling (受理 → 分流 → 处置 → 反馈 → 归档).",
        docs_url=None,  # /docs and /redoc from files the hub ships (api/docs.py: no CDN)
        redoc_url=None,
    )
    install_offline_docs(app)
    app.state.services = services
    app.state.sessions = sessions
    app.state.streams = OpenStreams()  # ended when the server stops (api/streams.py)
    install_error_language(app)  # errors in Chinese for Accept-Language: zh (api/errors_zh.py)
    app.state.token_ttl_s = token_ttl_s
    # issue 21: no unauthenticated caller exhausts the hub (api/limits.py).
    # Failure counts in the database: shared by every API process, kept across restarts.
    app.state.login_throttle = LoginThrottle(store=SqlFailures(sessions))
    app.state.password_slots = PasswordSlots()
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    if allowed_hosts is not None and "*" not in allowed_hosts:
        install_host_check(app, allowed_hosts)
    for module in (
        auth,
        users,
        camera_admin,  # before cameras: POST /api/cameras/import is not a camera id
        cameras,
        camera_analytics,
        live,
        console_settings,
        alerts,
        routing,
        areas,
        feedback,
        deliveries,
        exports,
        tracks,
        stats,
        patrol,
        recordings,  # recording/ (issue 24)
        linkage,
        gb28181,
    ):
        app.include_router(module.router)
    app.include_router(console_settings.map_router)  # the offline base map (map:)

    # Not public: a monitoring system logs in with an API key (audit:read).
    guard = [] if metrics_public else [Depends(require("audit:read"))]

    @app.get("/metrics", tags=["health"], include_in_schema=False, dependencies=guard)
    def prometheus_metrics() -> Response:
        """Prometheus text exposition of this process (see shaobing/metrics.py)."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz(request: Request) -> Health:
        report: HealthReport = request.app.state.services.health()
        return Health(version=VERSION, **report.model_dump())

    if console:  # the web console at / (static files; api.console.enabled)
        mount_console(app)
    app.openapi = document_errors(app.openapi, PUBLIC_ROUTES)  # type: ignore[method-assign]
    return app
