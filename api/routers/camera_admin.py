"""The camera registry from the console (``cameras:manage``): add, edit, disable, move,
delete, import a CSV/YAML list, probe an ONVIF camera for its profiles.

The same validation (``analytics.config.CameraConfig``, the importer of ``shaobing
cameras import``) and the same encryption of passwords at rest (``upsert_camera`` with the
hub's key) as the command line; every change is audited and applied at once by whoever
reads the camera (``HubServices.camera_registry_changed``: started, restarted, stopped),
no restart. Scope: a caller limited to an area writes only cameras inside it, and moves
them only within it. Passwords are never answered: ``has_password`` says whether one is
stored; an edit that leaves the password out keeps it for the same device
(``camera_registry.edit``). Cameras of the config file stay the file's (409).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, StrictBool, ValidationError
from sqlalchemy.orm import Session

from accounts.domain import Principal, sees_area
from analytics.config import CameraConfig
from api.access import record_area, visible_camera
from api.auth import audit_request
from api.deps import CameraManager, RegistryDep, SessionDep
from api.ports import RegistryPort
from camera_registry.config import Programme, RecordConfig, SourceConfig
from camera_registry.edit import merge_edit
from camera_registry.importer import ImportError_, load_camera_bytes
from camera_registry.onvif_probe import OnvifProbeError, probe_onvif_sync
from camera_registry.store import (
    CameraRecord,
    clear_analytics_override,
    clear_patrol_sightings,
    invalid_config_error,
    upsert_camera,
)
from camera_registry.urls import mask_secrets, mask_url
from core.area import Area
from core.model import StrictModel

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/cameras", tags=["camera registry"])


#: Import file suffixes and what they are read as.
IMPORT_FORMATS = (".csv", ".yaml", ".yml")


# -- schemas ---------------------------------------------------------------------------


class CameraPatch(StrictModel):
    """The fields to change; the others stay. ``source`` replaces the whole source: a
    password left out is kept for the same device (host and port), dropped for another;
    ``clear_password: true`` drops it."""

    name: str | None = Field(None, max_length=200)
    enabled: StrictBool | None = None
    source: SourceConfig | None = None
    area: Area | None = Field(None, description="moves the camera (within your area)")
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    programme: Programme | None = None
    gb28181_id: str | None = None
    detect_fps: float | None = Field(None, gt=0, le=30)
    analysis: Literal["continuous", "patrol"] | None = None
    record: RecordConfig | None = None
    clear_password: bool = False


class OnvifSourceOut(BaseModel):
    host: str
    port: int
    username: str | None = None
    has_password: bool
    profile: str | None = None
    stream: str


class SourceOut(BaseModel):
    """A camera's source without its secrets."""

    url: str | None = Field(None, description="credential-free, secrets in it masked")
    sub_url: str | None = Field(None, description="the sub stream (子码流), secrets masked")
    onvif: OnvifSourceOut | None = None
    username: str | None = None
    has_password: bool
    transport: str


class CameraRegistryOut(BaseModel):
    """What the add/edit dialog shows of a camera (never a password)."""

    id: str
    name: str
    enabled: bool
    area: Area
    lat: float | None = None
    lon: float | None = None
    programme: str
    gb28181_id: str | None = None
    detect_fps: float
    analysis: str
    origin: str = Field(description="config: the config file's (read-only here); import; api")
    source: SourceOut
    record: RecordConfig = Field(description="the camera's recording (录像)")
    editable: bool = Field(description="false: the camera comes from the config file")


class ImportOut(BaseModel):
    imported: int
    created: list[str]
    updated: list[str]


class ProbeIn(StrictModel):
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(80, gt=0, lt=65536)
    username: str | None = Field(None, max_length=128)
    password: str | None = Field(None, max_length=128, repr=False)
    camera_id: str | None = Field(
        None, max_length=64,
        description="probe with this registered camera's stored password (same host)",
    )  # fmt: skip
    timeout_s: float = Field(8.0, gt=0, le=30)


class ProfileOut(BaseModel):
    token: str
    name: str
    encoding: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    stream_uri: str | None = Field(None, description="credentials masked")


class ProbeOut(BaseModel):
    host: str
    port: int
    manufacturer: str
    model: str
    firmware: str
    serial: str
    profiles: list[ProfileOut]
    main_profile: str | None = None
    sub_profile: str | None = None


# -- helpers ---------------------------------------------------------------------------


def _refuse_config(record: CameraRecord, hub: RegistryPort) -> None:
    if record.origin == "config":
        raise HTTPException(
            409, f"camera {record.id!r} comes from the config file {hub.config_path}: "
            "change it there",
        )  # fmt: skip


def _check_place(principal: Principal, area: Area) -> None:
    if not sees_area(principal, area):
        raise HTTPException(403, f"area {area.label()} is outside your area "
                                 f"{principal.area.label()}")  # fmt: skip


def _check_source(cam: CameraConfig) -> None:
    """A camera added through the API reads a network stream or an ONVIF device: a path
    on the hub's disk (file sources) only from the config file."""
    url = cam.source.url
    if url is not None and ("://" not in url or url.lower().startswith("file:")):
        raise HTTPException(422, f"camera {cam.id!r}: source.url: local files cannot be "
                                 "registered through the API (config file only)")  # fmt: skip


def _validated(data: dict[str, Any]) -> CameraConfig:
    try:
        return CameraConfig.model_validate(data)
    except ValidationError as exc:
        raise HTTPException(422, invalid_config_error(exc).split(": ", 1)[1]) from None


def _stored(record: CameraRecord, hub: RegistryPort) -> dict[str, Any]:
    try:
        return record.config_data(hub.cipher)
    except ValueError as exc:
        raise HTTPException(409, f"camera {record.id!r}: {invalid_config_error(exc)}; "
                                 "import it again") from None  # fmt: skip


def _apply(hub: RegistryPort, camera_id: str) -> None:
    """Have the change applied now; a failure is logged (the change is stored and the
    next start or lease round applies it)."""
    try:
        hub.camera_registry_changed(camera_id)
    except Exception:  # noqa: BLE001 - the change is committed; say so, do not fail it
        log.exception("camera %s: the change is stored but could not be applied now", camera_id)


def _describe(cam: CameraConfig) -> str:
    source = (f"onvif://{cam.source.onvif.host}:{cam.source.onvif.port}" if cam.source.onvif
              else mask_url(cam.source.url or ""))  # fmt: skip
    return mask_secrets(f"name={cam.name or cam.id} area={cam.area.label()} source={source} "
                        f"enabled={cam.enabled}")  # fmt: skip


def registry_out(record: CameraRecord) -> CameraRegistryOut:
    data = record.public_config_data()
    src = data.get("source") or {}
    raw_src = record.raw_config().get("source") or {}
    onvif, raw_onvif = src.get("onvif"), raw_src.get("onvif") or {}
    url = src.get("url")
    return CameraRegistryOut(
        id=record.id, name=record.name, enabled=record.enabled, area=record_area(record),
        lat=record.lat, lon=record.lon, programme=record.programme,
        gb28181_id=record.gb28181_id, detect_fps=record.detect_fps,
        analysis=str(data.get("analysis") or "continuous"), origin=record.origin,
        editable=record.origin != "config",
        record=RecordConfig.model_validate(data.get("record") or {}),
        source=SourceOut(
            url=mask_url(url) if isinstance(url, str) else None,
            sub_url=mask_url(src["sub_url"]) if isinstance(src.get("sub_url"), str) else None,
            username=src.get("username"), has_password=bool(raw_src.get("password")),
            transport=str(src.get("transport") or "tcp"),
            onvif=OnvifSourceOut(
                host=onvif["host"], port=int(onvif.get("port") or 80),
                username=onvif.get("username"), has_password=bool(raw_onvif.get("password")),
                profile=onvif.get("profile"), stream=str(onvif.get("stream") or "main"),
            ) if isinstance(onvif, dict) else None,
        ),
    )  # fmt: skip


# -- routes ----------------------------------------------------------------------------


@router.post(
    "",
    response_model=CameraRegistryOut,
    status_code=201,
    responses={409: {"description": "a camera with this id exists"}},
    summary="Add a camera (started at once when enabled)",
)
def post_camera(
    cam: CameraConfig,
    request: Request,
    hub: RegistryDep,
    session: SessionDep,
    principal: CameraManager,
) -> CameraRegistryOut:
    """The body is a camera as in the config file or an import (zones and rules may
    come later from the analytics editor); its password is stored encrypted."""
    _check_place(principal, cam.area)
    _check_source(cam)
    if session.get(CameraRecord, cam.id) is not None:
        raise HTTPException(409, f"camera {cam.id!r} exists")
    record = upsert_camera(session, cam, origin="api", cipher=hub.cipher)
    audit_request(request, session, principal, "camera_create", f"camera:{cam.id}",
                  _describe(cam))  # fmt: skip
    session.commit()
    _apply(hub, cam.id)
    return registry_out(record)


@router.get(
    "/{camera_id}/registry",
    response_model=CameraRegistryOut,
    summary="A camera as the add/edit dialog shows it (no password)",
)
def get_camera_registry(
    camera_id: str, hub: RegistryDep, session: SessionDep, principal: CameraManager
) -> CameraRegistryOut:
    return registry_out(visible_camera(session, camera_id, principal))


@router.patch(
    "/{camera_id}",
    response_model=CameraRegistryOut,
    responses={409: {"description": "the camera comes from the config file"}},
    summary="Edit, disable / enable or move a camera (applied at once)",
)
def patch_camera(
    camera_id: str, body: CameraPatch, request: Request, hub: RegistryDep, session: SessionDep,
    principal: CameraManager,
) -> CameraRegistryOut:  # fmt: skip
    record = visible_camera(session, camera_id, principal)
    _refuse_config(record, hub)
    changes = body.model_dump(mode="json", exclude_unset=True, exclude={"clear_password"})
    if body.area is not None:
        _check_place(principal, body.area)
    merged = merge_edit(_stored(record, hub), changes, clear_password=body.clear_password)
    cam = _validated(merged)
    _check_source(cam)
    before = record_area(record)
    upsert_camera(session, cam, origin=record.origin, cipher=hub.cipher)
    action = ("camera_move" if set(changes) == {"area"} else
              "camera_enable" if changes == {"enabled": True} else
              "camera_disable" if changes == {"enabled": False} else "camera_update")  # fmt: skip
    fields = ", ".join(sorted(changes)) + (", password cleared" if body.clear_password else "")
    detail = f"{fields or 'no change'}; {_describe(cam)}"
    if "area" in changes:
        detail = f"from {before.label()}; {detail}"
    audit_request(request, session, principal, action, f"camera:{camera_id}", detail)
    session.commit()
    _apply(hub, camera_id)
    return registry_out(record)


@router.delete(
    "/{camera_id}",
    status_code=204,
    responses={409: {"description": "the camera comes from the config file"}},
    summary="Delete a camera (stopped at once; its alerts and evidence stay)",
)
def delete_camera(
    camera_id: str,
    request: Request,
    hub: RegistryDep,
    session: SessionDep,
    principal: CameraManager,
) -> Response:
    record = visible_camera(session, camera_id, principal)
    _refuse_config(record, hub)
    detail = f"name={record.name} area={record_area(record).label()} " \
             f"source={mask_url(record.source_display)}"  # fmt: skip
    session.delete(record)
    clear_analytics_override(session, camera_id)
    clear_patrol_sightings(session, camera_id)
    audit_request(request, session, principal, "camera_delete", f"camera:{camera_id}", detail)
    session.commit()
    _apply(hub, camera_id)
    return Response(status_code=204)


@router.post(
    "/import",
    response_model=ImportOut,
    responses={409: {"description": "a camera of the file comes from the config file"},
               413: {"description": "over api.max_body_kb"}},
    summary="Import a CSV or YAML camera list (UTF-8 or GBK), all or nothing",
    openapi_extra={"requestBody": {"required": True, "content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/yaml": {"schema": {"type": "string"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    }}},
)  # fmt: skip
async def post_import(
    request: Request,
    hub: RegistryDep,
    principal: CameraManager,
    filename: Annotated[
        str, Query(min_length=1, max_length=200, description="the file's name: .csv, .yaml, .yml")
    ],
) -> ImportOut:
    """The body is the file itself (the columns of ``shaobing cameras import``; CSV in
    UTF-8 or GBK/GB18030). Every row is checked first and every problem named
    (``file: row N (id=…): field: reason``); one problem and nothing is stored.
    Existing cameras (in your area) are updated, the others added; each is started,
    restarted or stopped at once. The size limit is ``api.max_body_kb``."""
    if not filename.lower().endswith(IMPORT_FORMATS):
        raise HTTPException(422, f"filename: {filename!r}: expected one of "
                                 f"{', '.join(IMPORT_FORMATS)}")  # fmt: skip
    data = await request.body()
    return await run_in_threadpool(_import, data, filename, request, hub, principal)


def _import(
    data: bytes, filename: str, request: Request, hub: RegistryPort, principal: Principal
) -> ImportOut:
    with request.app.state.sessions() as session:
        result = _store_import(data, filename, request, hub, session, principal)
    for camera_id in [*result.created, *result.updated]:
        _apply(hub, camera_id)
    return result


def _store_import(
    data: bytes, filename: str, request: Request, hub: RegistryPort, session: Session,
    principal: Principal,
) -> ImportOut:  # fmt: skip
    try:
        cameras = load_camera_bytes(data, filename, CameraConfig)
    except ImportError_ as exc:
        raise HTTPException(422, "\n".join(exc.problems)) from None
    problems: list[str] = []
    created: list[str] = []
    updated: list[str] = []
    for cam in cameras:
        record = session.get(CameraRecord, cam.id)
        if not sees_area(principal, cam.area):
            problems.append(f"{filename}: id={cam.id}: area: {cam.area.label()} is outside "
                            f"your area {principal.area.label()}")  # fmt: skip
        elif record is not None and not sees_area(principal, record_area(record)):
            problems.append(f"{filename}: id={cam.id}: id: taken by a camera outside your area")
        elif record is not None and record.origin == "config":
            problems.append(f"{filename}: id={cam.id}: id: a camera of the config file "
                            f"{hub.config_path} (change it there)")  # fmt: skip
        url = cam.source.url
        if url is not None and ("://" not in url or url.lower().startswith("file:")):
            problems.append(f"{filename}: id={cam.id}: source.url: local files cannot be "
                            "registered through the API (config file only)")  # fmt: skip
        (updated if record is not None else created).append(cam.id)
    if problems:
        raise HTTPException(422, "\n".join(problems))
    for cam in cameras:
        upsert_camera(session, cam, origin="import", cipher=hub.cipher)
    audit_request(request, session, principal, "camera_import", f"file:{filename[:100]}",
                  f"{len(cameras)} camera(s): {len(created)} added, {len(updated)} updated: "
                  + ", ".join(c.id for c in cameras[:50]))  # fmt: skip
    session.commit()
    return ImportOut(imported=len(cameras), created=created, updated=updated)


@router.post(
    "/probe",
    response_model=ProbeOut,
    responses={502: {"description": "the camera could not be reached or refused the login"}},
    summary="Probe an ONVIF camera: device, profiles and their streams (credentials masked)",
)
def post_probe(
    body: ProbeIn, request: Request, hub: RegistryDep, session: SessionDep, principal: CameraManager
) -> ProbeOut:
    """What the add dialog shows to pick a profile. ``camera_id`` instead of a password:
    the stored password of that camera (of the same host), for the edit dialog."""
    password = body.password
    if body.camera_id and password is None:
        record = visible_camera(session, body.camera_id, principal)
        onvif = (_stored(record, hub).get("source") or {}).get("onvif") or {}
        if str(onvif.get("host", "")).lower() == body.host.lower() and \
                int(onvif.get("port") or 80) == body.port:  # fmt: skip
            password = onvif.get("password")
    try:
        result = probe_onvif_sync(body.host, body.port, body.username, password,
                                  timeout=body.timeout_s)  # fmt: skip
    except OnvifProbeError as exc:
        raise HTTPException(502, mask_secrets(f"ONVIF probe of {body.host}:{body.port} "
                                              f"failed: {exc}")) from None  # fmt: skip
    audit_request(
        request,
        session,
        principal,
        "camera_probe",
        f"onvif:{body.host}:{body.port}",
        f"{result.manufacturer} {result.model}, {len(result.profiles)} profile(s)",
    )
    session.commit()
    return ProbeOut(
        host=result.host, port=result.port, manufacturer=result.manufacturer,
        model=result.model, firmware=result.firmware, serial=result.serial,
        main_profile=result.main_profile, sub_profile=result.sub_profile,
        profiles=[ProfileOut(token=p.token, name=p.name, encoding=p.encoding, width=p.width,
                             height=p.height, fps=p.fps,
                             stream_uri=mask_url(p.stream_uri) if p.stream_uri else None)
                  for p in result.profiles],
    )  # fmt: skip
