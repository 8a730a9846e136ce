"""The dependency aliases every route uses, defined once.

``session: SessionDep`` is a database session for the request; ``services: ServicesDep``
the hub's services; the narrow ports (``LiveDep``, ``AlertsDep``, ``SiteDep``,
``HealthDep``, ``AnalyticsDep``) are the same object typed as only what a route needs;
``principal: CameraReader`` (and the other permission aliases) authenticates the caller
and checks one permission (403 otherwise). ``CurrentPrincipal`` only authenticates.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from accounts.domain import Principal
from api.auth import CurrentPrincipal, require
from api.ports import (
    AlertsPort,
    AnalyticsPort,
    CameraLivePort,
    HealthPort,
    HubServices,
    RegistryPort,
    SitePort,
)
from api.providers import SessionDep, get_services, get_session


def _live(request: Request) -> CameraLivePort:
    return request.app.state.services  # type: ignore[no-any-return]


def _alerts(request: Request) -> AlertsPort:
    return request.app.state.services  # type: ignore[no-any-return]


def _site(request: Request) -> SitePort:
    return request.app.state.services  # type: ignore[no-any-return]


def _health(request: Request) -> HealthPort:
    return request.app.state.services  # type: ignore[no-any-return]


def _analytics(request: Request) -> AnalyticsPort:
    return request.app.state.services  # type: ignore[no-any-return]


def _registry(request: Request) -> RegistryPort:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[HubServices, Depends(get_services)]
LiveDep = Annotated[CameraLivePort, Depends(_live)]
AlertsDep = Annotated[AlertsPort, Depends(_alerts)]
SiteDep = Annotated[SitePort, Depends(_site)]
HealthDep = Annotated[HealthPort, Depends(_health)]
AnalyticsDep = Annotated[AnalyticsPort, Depends(_analytics)]
RegistryDep = Annotated[RegistryPort, Depends(_registry)]

CameraReader = Annotated[Principal, Depends(require("cameras:read"))]
CameraConfigurer = Annotated[Principal, Depends(require("cameras:configure"))]
CameraManager = Annotated[Principal, Depends(require("cameras:manage"))]  # the registry
AreaManager = Annotated[Principal, Depends(require("areas:manage"))]  # the area tree
AlertReader = Annotated[Principal, Depends(require("alerts:read"))]
AlertHandler = Annotated[Principal, Depends(require("alerts:handle"))]
EvidenceReader = Annotated[Principal, Depends(require("evidence:read"))]
EvidenceExporter = Annotated[Principal, Depends(require("evidence:export"))]
RoutingReader = Annotated[Principal, Depends(require("routing:read"))]
RoutingWriter = Annotated[Principal, Depends(require("routing:write"))]
DispatchManager = Annotated[Principal, Depends(require("dispatch:manage"))]
UserManager = Annotated[Principal, Depends(require("users:manage"))]
AuditReader = Annotated[Principal, Depends(require("audit:read"))]

__all__ = [
    "AlertHandler",
    "AlertReader",
    "AlertsDep",
    "AnalyticsDep",
    "AreaManager",
    "AuditReader",
    "CameraConfigurer",
    "CameraManager",
    "CameraReader",
    "CurrentPrincipal",
    "DispatchManager",
    "EvidenceExporter",
    "EvidenceReader",
    "HealthDep",
    "LiveDep",
    "RegistryDep",
    "RoutingReader",
    "RoutingWriter",
    "ServicesDep",
    "SessionDep",
    "SiteDep",
    "UserManager",
    "get_services",
    "get_session",
]
