"""GB/T 28181 devices registered to the hub (admin and supervisor: cameras:configure).

No password or digest ever appears here: a device's credentials live in the config.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from accounts.domain import Principal
from api.access import visible_camera
from api.auth import audit_request
from api.deps import (
    CameraConfigurer,
    EvidenceExporter,
    EvidenceReader,
    ServicesDep,
    SessionDep,
)
from api.evidence import case_zip_response
from api.ports import HubServices
from camera_registry.store import CameraRecord
from gb28181.channels import SCHEME, parse_source_url
from gb28181.channels import camera_id as channel_camera_id
from gb28181.export import write_device_export
from gb28181.playback import MAX_RANGE_S, Clip, epoch_of, fetch_clip, local_time
from gb28181.server import InviteFailed
from gb28181.sync import set_channel_enabled

router = APIRouter(prefix="/api/gb28181", tags=["gb28181"])


log = logging.getLogger(__name__)


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
    camera_enabled: bool | None = Field(
        None, description="whether that camera is analysed (PUT /channels/{id}/enabled)"
    )


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
def list_devices(services: ServicesDep, _: CameraConfigurer) -> list[GbDeviceOut]:
    return [GbDeviceOut.model_validate(d) for d in _server(services).devices()]


@router.get("/devices/{device_id}/channels", response_model=list[GbChannelOut],
            summary="A device's catalog")  # fmt: skip
def list_channels(device_id: str, session: SessionDep, services: ServicesDep,
                  _: CameraConfigurer) -> list[GbChannelOut]:  # fmt: skip
    channels = _server(services).channels(device_id)
    if channels is None:
        raise HTTPException(404, f"no GB/T 28181 device {device_id}")
    ids = [c["camera_id"] for c in channels if c.get("camera_id")]
    enabled: dict[str, bool] = {}
    for start in range(0, len(ids), 500):
        enabled.update(session.execute(select(CameraRecord.id, CameraRecord.enabled).where(
            CameraRecord.id.in_(ids[start : start + 500]))).tuples().all())  # fmt: skip
    return [GbChannelOut.model_validate({**c, "camera_enabled": enabled.get(c["camera_id"])})
            for c in channels]  # fmt: skip


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


@router.put("/channels/{channel_id}/enabled", response_model=ChannelEnabled,
            summary="Analyse an imported channel (or stop): applied without a restart")  # fmt: skip
def enable_channel(channel_id: str, body: ChannelEnable, request: Request, session: SessionDep,
                   services: ServicesDep, who: CameraConfigurer) -> ChannelEnabled:  # fmt: skip
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
    services.camera_registry_changed(cam_id)  # at once (the registry follower would in ~2 s)
    return ChannelEnabled(camera_id=cam_id, enabled=body.enabled)


@router.get("/live", response_model=list[LiveOnDemandOut],
            summary="Streams open on demand for live views (channels nobody analyses)")  # fmt: skip
def live_on_demand(services: ServicesDep, _: CameraConfigurer) -> list[LiveOnDemandOut]:
    platform = getattr(services, "sip", None)
    if platform is None:
        raise HTTPException(404, "GB/T 28181 is not enabled in this process (sip.enabled)")
    live = getattr(platform, "live", None)
    return [LiveOnDemandOut.model_validate(v) for v in (live.states() if live else [])]


# -- recordings on the device (RecordInfo, playback) -------------------------------------


class DeviceRecordOut(BaseModel):
    start: float | None = Field(description="epoch seconds (the device's local time read "
                                "in the hub's time zone)")  # fmt: skip
    end: float | None
    start_time: str | None = Field(description="as the device sent it (local time)")
    end_time: str | None
    name: str
    type: str | None = Field(description="time, alarm, manual")
    file_path: str | None
    file_size: int | None
    secrecy: str | None


class DeviceRecordsOut(BaseModel):
    channel_id: str
    camera_id: str
    complete: bool = Field(description="false: the device stopped sending pages before SumNum")
    items: list[DeviceRecordOut]


class PlaybackIn(BaseModel):
    start: float = Field(description="epoch seconds")
    end: float = Field(description=f"epoch seconds; at most {MAX_RANGE_S} s after start")


class PlaybackExportIn(PlaybackIn):
    case_number: str = Field(min_length=1, max_length=64, description="案件编号")
    reason: str = Field(min_length=1, max_length=500, description="why the evidence is exported")


def _gb_channel(session: Session, channel_id: str, who: Principal) -> tuple[CameraRecord, str]:
    """The camera of a GB channel the caller may see, and its device id (404 otherwise)."""
    records = session.execute(select(CameraRecord).where(
        CameraRecord.gb28181_id == channel_id)).scalars().all()  # fmt: skip
    for record in records:
        if record.source_display.startswith(f"{SCHEME}://"):
            visible_camera(session, record.id, who)  # 404 outside the caller's area
            return record, parse_source_url(record.source_display)[0]
    raise HTTPException(404, f"no GB/T 28181 channel {channel_id!r}")


def _fetch(server: Any, device_id: str, channel_id: str, start: int, end: int
           ) -> tuple[Path, Clip]:  # fmt: skip
    """The device's recording of the range in a temporary MP4 (the caller deletes it)."""
    fd, name = tempfile.mkstemp(prefix="shaobing-gb-playback-", suffix=".mp4")
    os.close(fd)
    path = Path(name)
    try:
        return path, fetch_clip(server, device_id, channel_id, start, end, path)
    except InviteFailed as exc:
        path.unlink(missing_ok=True)
        raise HTTPException(409, f"{exc.state}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the device's failure, said plainly
        path.unlink(missing_ok=True)
        log.warning("GB playback of %s failed: %s", channel_id, exc)
        raise HTTPException(502, f"playback of {channel_id} failed: {exc}") from None


def _range(start: float, end: float) -> tuple[int, int]:
    if not 0 < end - start <= MAX_RANGE_S:
        raise HTTPException(422, f"end must be after start, at most {MAX_RANGE_S} s")
    return int(start), int(end + 0.999)


@router.get(
    "/channels/{channel_id}/records",
    response_model=DeviceRecordsOut,
    summary="Recordings on the device (RecordInfo) of a channel in a time range",
)
def device_records(
    channel_id: str, request: Request, session: SessionDep, services: ServicesDep,
    who: EvidenceReader,
    start: Annotated[float, Query(description="epoch seconds")],
    end: Annotated[float, Query(description="epoch seconds")],
) -> DeviceRecordsOut:  # fmt: skip
    server = _server(services)
    if not 0 < end - start <= 31 * 86400:
        raise HTTPException(422, "end must be after start, at most 31 days")
    record, device_id = _gb_channel(session, channel_id, who)
    tz = services.timezone
    try:
        items, complete = server.call(
            server.query_records(device_id, channel_id, local_time(start, tz), local_time(end, tz)),
            timeout=30,
        )
    except InviteFailed as exc:
        raise HTTPException(409, f"{exc.state}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the device's answer, said plainly
        raise HTTPException(502, f"RecordInfo query to {device_id} failed: {exc}") from None
    audit_request(request, session, who, "gb28181_record_query", f"camera:{record.id}",
                  f"{start:.0f}-{end:.0f}: {len(items)} recording(s)")  # fmt: skip
    session.commit()
    return DeviceRecordsOut(channel_id=channel_id, camera_id=record.id, complete=complete, items=[
        DeviceRecordOut(start=epoch_of(i.start_time, tz), end=epoch_of(i.end_time, tz),
                        start_time=i.start_time, end_time=i.end_time, name=i.name, type=i.type,
                        file_path=i.file_path, file_size=i.file_size, secrecy=i.secrecy)
        for i in items])  # fmt: skip


@router.post("/channels/{channel_id}/playback", response_class=FileResponse,
             responses={200: {"content": {"video/mp4": {}}}, 404: {}, 409: {}, 422: {}},
             summary="Fetch a range of the device's recording as an MP4 (playback INVITE; "
             "remuxed, no re-encoding; takes about as long as the range)")  # fmt: skip
def device_playback(channel_id: str, body: PlaybackIn, request: Request, session: SessionDep,
                    services: ServicesDep, who: EvidenceReader) -> FileResponse:  # fmt: skip
    server = _server(services)
    start, end = _range(body.start, body.end)
    record, device_id = _gb_channel(session, channel_id, who)
    path, clip = _fetch(server, device_id, channel_id, start, end)
    audit_request(request, session, who, "gb28181_playback", f"camera:{record.id}",
                  f"{start}-{end}: {clip.duration_s:.1f} s ({clip.ended_by})")  # fmt: skip
    session.commit()
    headers = {"X-Playback-Start": str(start), "X-Playback-Duration": f"{clip.duration_s:.3f}",
               "Cache-Control": "no-store"}  # fmt: skip
    return FileResponse(path, media_type="video/mp4", headers=headers,
                        filename=f"{record.id}-{start}.mp4",
                        background=BackgroundTask(path.unlink, missing_ok=True))  # fmt: skip


@router.post("/channels/{channel_id}/playback/export", response_class=FileResponse,
             responses={200: {"content": {"application/zip": {}}}, 404: {}, 409: {}, 422: {}},
             summary="A range of the device's recording as a signed case export (zip)")  # fmt: skip
def device_playback_export(channel_id: str, body: PlaybackExportIn, request: Request,
                           session: SessionDep, services: ServicesDep,
                           who: EvidenceExporter) -> FileResponse:  # fmt: skip
    server = _server(services)
    start, end = _range(body.start, body.end)
    record, device_id = _gb_channel(session, channel_id, who)
    mp4, clip = _fetch(server, device_id, channel_id, start, end)
    fd, name = tempfile.mkstemp(prefix="shaobing-export-", suffix=".zip")
    os.close(fd)
    path = Path(name)
    camera = {"id": record.id, "name": record.name, "gb28181_id": record.gb28181_id}
    try:
        write_device_export(path, camera, device_id, clip, start, end, services.links.key,
                            user=who.username, case_number=body.case_number,
                            reason=body.reason)  # fmt: skip
    except OSError as exc:
        path.unlink(missing_ok=True)
        log.error("device recording export of %s failed: %s", channel_id, exc)
        raise HTTPException(503, "could not write the export") from None
    finally:
        mp4.unlink(missing_ok=True)
    audit_request(request, session, who, "gb28181_playback_export", f"case:{body.case_number}",
                  f"camera {record.id} {start}-{end} ({clip.duration_s:.1f} s from the device); "
                  f"reason: {body.reason}"[:250])  # fmt: skip
    session.commit()
    return case_zip_response(path, body.case_number, record.id, start)
