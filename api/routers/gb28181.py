"""GB/T 28181 devices registered to the hub (admin and supervisor: cameras:configure).

No password or digest ever appears here: a device's credentials live in the config.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from accounts.domain import Principal
from api.auth import audit_request, require
from api.deps import get_services, get_session
from api.ports import HubServices
from api.routers.cameras import visible_camera
from gb28181.channels import camera_id as channel_camera_id
from gb28181.sync import set_channel_enabled

router = APIRouter(prefix="/api/gb28181", tags=["gb28181"])

SessionDep = Annotated[Session, Depends(get_session)]
ServicesDep = Annotated[HubServices, Depends(get_services)]
Manager = Annotated[Principal, Depends(require("cameras:configure"))]


class CatalogProgress(BaseModel):
    received: int
    total: int | None


class GbDeviceOut(BaseModel):
    id: str
    state: str
    since: float
    transport: str
    host: str
    port: int
    registered_at: float
    expires_at: float
    last_keepalive: float | None
    channels: int
    video_channels: int
    catalog_at: float | None
    catalog_pending: CatalogProgress | None
    name: str | None
    manufacturer: str | None
    model: str | None
    firmware: str | None
    device_status: dict[str, str]  # its DeviceStatus answer: Online, Status, Encode, Record...
    last_error: str | None


class GbChannelOut(BaseModel):
    id: str
    name: str
    manufacturer: str | None
    model: str | None
    civil_code: str | None
    parent_id: str | None
    status: str | None
    online: bool
    ptz_type: int | None
    longitude: float | None
    latitude: float | None
    camera_id: str | None  # the camera it became (video channels only)


class CatalogQueued(BaseModel):
    sn: int


class ChannelEnable(BaseModel):
    enabled: bool = Field(description="true: the channel is analysed (holds a stream); "
                          "false: streamed only while someone watches it live")  # fmt: skip


class ChannelEnabled(BaseModel):
    camera_id: str
    enabled: bool


class LiveOnDemandOut(BaseModel):
    camera_id: str
    state: str = Field(description="inviting, streaming, invite_failed, no_media, "
                       "bad_media, device_offline")  # fmt: skip
    error: str | None
    since: float
    viewers: int
    invites: int
    failures: int


def _server(services: HubServices) -> Any:
    platform = getattr(services, "sip", None)
    if platform is None:
        raise HTTPException(404, "GB/T 28181 is not enabled in this process (sip.enabled)")
    return platform.server


@router.get("/devices", response_model=list[GbDeviceOut], summary="Registered GB/T 28181 devices")
def list_devices(services: ServicesDep, _: Manager) -> list[GbDeviceOut]:
    return [GbDeviceOut.model_validate(d) for d in _server(services).devices()]


@router.get("/devices/{device_id}/channels", response_model=list[GbChannelOut],
            summary="A device's catalog")  # fmt: skip
def list_channels(device_id: str, services: ServicesDep, _: Manager) -> list[GbChannelOut]:
    channels = _server(services).channels(device_id)
    if channels is None:
        raise HTTPException(404, f"no GB/T 28181 device {device_id}")
    return [GbChannelOut.model_validate(c) for c in channels]


@router.post("/devices/{device_id}/catalog", response_model=CatalogQueued, status_code=202,
             summary="Query the device's catalog again")  # fmt: skip
def query_catalog(device_id: str, request: Request, session: SessionDep, services: ServicesDep,
                  who: Manager) -> CatalogQueued:  # fmt: skip
    server = _server(services)
    if device_id not in {d["id"] for d in server.devices()}:
        raise HTTPException(404, f"no GB/T 28181 device {device_id}")
    try:
        sn = server.call(server.query_catalog(device_id), timeout=15)
    except Exception as exc:  # noqa: BLE001 - the device's answer, said plainly
        raise HTTPException(502, f"catalog query to {device_id} failed: {exc}") from None
    audit_request(request, session, who, "gb28181_catalog_query", device_id)
    session.commit()
    return CatalogQueued(sn=sn)


@router.delete("/devices/{device_id}", status_code=204, summary="Remove a device and its "
               "channels (it may register again)")  # fmt: skip
def remove_device(device_id: str, request: Request, session: SessionDep, services: ServicesDep,
                  who: Manager) -> Response:  # fmt: skip
    server = _server(services)
    if not server.call(server.remove_device(device_id), timeout=15):
        raise HTTPException(404, f"no GB/T 28181 device {device_id}")
    audit_request(request, session, who, "gb28181_device_removed", device_id)
    session.commit()
    return Response(status_code=204)


@router.put("/channels/{channel_id}/enabled", response_model=ChannelEnabled,
            summary="Analyse an imported channel (or stop): applied without a restart")  # fmt: skip
def enable_channel(channel_id: str, body: ChannelEnable, request: Request, session: SessionDep,
                   services: ServicesDep, who: Manager) -> ChannelEnabled:  # fmt: skip
    _server(services)
    cam_id = channel_camera_id(channel_id)
    visible_camera(session, cam_id, who)  # 404 outside the caller's area
    record = set_channel_enabled(session, cam_id, body.enabled)
    if record is None:
        raise HTTPException(409, f"camera {cam_id!r} was not imported from a GB/T 28181 "
                            "catalog: enable it in its own configuration")  # fmt: skip
    audit_request(request, session, who, "gb28181_channel_enabled" if body.enabled
                  else "gb28181_channel_disabled", cam_id)  # fmt: skip
    session.commit()
    return ChannelEnabled(camera_id=cam_id, enabled=body.enabled)


@router.get("/live", response_model=list[LiveOnDemandOut],
            summary="Streams open on demand for live views (channels nobody analyses)")  # fmt: skip
def live_on_demand(services: ServicesDep, _: Manager) -> list[LiveOnDemandOut]:
    platform = getattr(services, "sip", None)
    if platform is None:
        raise HTTPException(404, "GB/T 28181 is not enabled in this process (sip.enabled)")
    live = getattr(platform, "live", None)
    return [LiveOnDemandOut.model_validate(v) for v in (live.states() if live else [])]
