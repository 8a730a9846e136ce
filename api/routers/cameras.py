"""Cameras in the caller's area: list, detail with live status, latest snapshot."""

from __future__ import annotations

from typing import Annotated

import cv2
from fastapi import APIRouter, Depends, HTTPException, Response
from sqlalchemy.orm import Session

from accounts.domain import Principal, sees_area
from analytics.config import CameraConfig
from api.auth import require
from api.deps import get_services, get_session
from api.ports import HubServices
from api.schemas import CameraOut, CameraStatusOut
from camera_registry.store import CameraRecord, list_cameras
from core.area import Area

router = APIRouter(prefix="/api/cameras", tags=["cameras"])

HubDep = Annotated[HubServices, Depends(get_services)]
SessionDep = Annotated[Session, Depends(get_session)]
Reader = Annotated[Principal, Depends(require("cameras:read"))]


def record_area(record: CameraRecord) -> Area:
    return Area(
        county=record.county, township=record.township, village=record.village, grid=record.grid
    )


def visible_camera(session: Session, camera_id: str, principal: Principal) -> CameraRecord:
    """The camera, or 404 — also when it is outside the caller's area (no leak)."""
    record = session.get(CameraRecord, camera_id)
    if record is None or not sees_area(principal, record_area(record)):
        raise HTTPException(404, f"no camera {camera_id!r}")
    return record


def camera_out(record: CameraRecord, hub: HubServices) -> CameraOut:
    cam = CameraConfig.model_validate(record.config_data())
    status = hub.status.snapshot(record.id)
    return CameraOut(
        id=record.id,
        name=record.name,
        enabled=record.enabled,
        programme=record.programme,
        area=record_area(record),
        lat=record.lat,
        lon=record.lon,
        gb28181_id=record.gb28181_id,
        source=record.source_display,
        stream_url=(status.stream_url if status else None) or record.resolved_url,
        detect_fps=record.detect_fps,
        origin=record.origin,
        zones=[z.name for z in cam.zones],
        rules=[r.model_dump(mode="json") for r in cam.rules],
        counters=hub.counters(record.id),
        status=CameraStatusOut.model_validate(status.to_dict()) if status else None,
    )


@router.get("", response_model=list[CameraOut], summary="All cameras with their live status")
def get_cameras(hub: HubDep, session: SessionDep, principal: Reader) -> list[CameraOut]:
    return [
        camera_out(r, hub) for r in list_cameras(session) if sees_area(principal, record_area(r))
    ]


@router.get("/{camera_id}", response_model=CameraOut, summary="One camera with its live status")
def get_camera(camera_id: str, hub: HubDep, session: SessionDep, principal: Reader) -> CameraOut:
    return camera_out(visible_camera(session, camera_id, principal), hub)


@router.get(
    "/{camera_id}/snapshot.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {}, 503: {}},
    summary="The latest decoded frame of a camera, as JPEG",
)
def get_camera_snapshot(
    camera_id: str, hub: HubDep, session: SessionDep, principal: Reader
) -> Response:
    visible_camera(session, camera_id, principal)
    frame = hub.latest_frame(camera_id)
    if frame is None:
        raise HTTPException(503, f"camera {camera_id!r} has delivered no frame yet")
    ok, buf = cv2.imencode(".jpg", frame.source_bgr(), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise HTTPException(500, "JPEG encoding failed")
    return Response(buf.tobytes(), media_type="image/jpeg", headers={"Cache-Control": "no-store"})
