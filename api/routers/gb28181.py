"""GB/T 28181 devices registered to the hub (admin and supervisor: cameras:configure).

No password or digest ever appears here: a device's credentials live in the config.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel

from api.auth import audit_request
from api.deps import CameraConfigurer, ServicesDep, SessionDep
from api.ports import HubServices

router = APIRouter(prefix="/api/gb28181", tags=["gb28181"])



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


def _server(services: HubServices) -> Any:
    platform = getattr(services, "sip", None)
    if platform is None:
        raise HTTPException(404, "GB/T 28181 is not enabled in this process (sip.enabled)")
    return platform.server


@router.get("/devices", response_model=list[GbDeviceOut], summary="Registered GB/T 28181 devices")
def list_devices(services: ServicesDep, _: CameraConfigurer) -> list[GbDeviceOut]:
    return [GbDeviceOut.model_validate(d) for d in _server(services).devices()]


@router.get("/devices/{device_id}/channels", response_model=list[GbChannelOut],
            summary="A device's catalog")  # fmt: skip
def list_channels(device_id: str, services: ServicesDep, _: CameraConfigurer) -> list[GbChannelOut]:
    channels = _server(services).channels(device_id)
    if channels is None:
        raise HTTPException(404, f"no GB/T 28181 device {device_id}")
    return [GbChannelOut.model_validate(c) for c in channels]


@router.post("/devices/{device_id}/catalog", response_model=CatalogQueued, status_code=202,
             summary="Query the device's catalog again")  # fmt: skip
def query_catalog(device_id: str, request: Request, session: SessionDep, services: ServicesDep,
                  who: CameraConfigurer) -> CatalogQueued:  # fmt: skip
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
                  who: CameraConfigurer) -> Response:  # fmt: skip
    server = _server(services)
    if not server.call(server.remove_device(device_id), timeout=15):
        raise HTTPException(404, f"no GB/T 28181 device {device_id}")
    audit_request(request, session, who, "gb28181_device_removed", device_id)
    session.commit()
    return Response(status_code=204)
