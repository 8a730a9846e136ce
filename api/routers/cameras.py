"""Cameras in the caller's area: list, detail with live status, latest snapshot."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Annotated

import cv2
from fastapi import APIRouter, HTTPException, Query, Response
from sqlalchemy import func, or_, select

from accounts.domain import sees_area
from api.access import readable_config, record_area, visible_camera
from api.deps import CameraReader, LiveDep, SessionDep
from api.ports import CameraLivePort
from api.schemas import CameraAreaOut, CameraOut, CameraStatusOut
from camera_registry.status import StatusBoard
from camera_registry.store import (
    CameraRecord,
    camera_places,
    count_by_area,
    list_cameras,
)
from camera_registry.urls import mask_url
from core.area import LEVELS

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/cameras", tags=["cameras"])



def camera_out(record: CameraRecord, hub: CameraLivePort) -> CameraOut:
    """A camera for the API; one whose stored config this version cannot read is shown
    with the state ``invalid_config`` and the reason instead of failing the whole list."""
    status = hub.status.snapshot(record.id)
    cam, error = readable_config(record)
    status_out = (
        CameraStatusOut.model_validate(
            {**status.to_dict(), **hub.media_stats(record.id).model_dump()}
        )
        if status
        else None
    )
    if error is not None:
        status_out = CameraStatusOut(state="invalid_config", since=record.updated_at,
                                     last_error=error, last_error_at=time.time())  # fmt: skip
    stream_url = (status.stream_url if status else None) or record.resolved_url
    return CameraOut(
        id=record.id,
        name=record.name,
        enabled=record.enabled,
        programme=record.programme,
        area=record_area(record),
        lat=record.lat,
        lon=record.lon,
        gb28181_id=record.gb28181_id,
        # Masked again: records of older versions masked only user:password@.
        source=mask_url(record.source_display),
        stream_url=mask_url(stream_url) if stream_url else None,
        detect_fps=record.detect_fps,
        origin=record.origin,
        zones=[z.name for z in cam.zones] if cam else [],
        rules=[r.model_dump(mode="json") for r in cam.rules] if cam else [],
        counters=hub.counters(record.id),
        status=status_out,
    )


@router.get("", response_model=list[CameraOut], summary="Cameras with their live status")
def get_cameras(
    hub: LiveDep,
    session: SessionDep,
    principal: CameraReader,
    response: Response,
    limit: Annotated[
        int | None, Query(ge=1, le=1000, description="one page (default: every camera)")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    area: Annotated[
        str | None, Query(max_length=300, description="an area path: 示例县/城关镇")
    ] = None,
    q: Annotated[str | None, Query(max_length=100, description="in the id or name")] = None,
    exact: Annotated[
        bool,
        Query(
            description="only the cameras registered at `area` itself, "
            "none of its sub-areas (village level at most)"
        ),
    ] = False,
) -> list[CameraOut]:
    """Without parameters: every camera in your scope. With ``limit``/``offset``/``area``/
    ``q``/``exact``: one page, filtered in SQL, ordered by id; ``X-Total-Count`` gives the
    total."""
    if limit is None and offset == 0 and area is None and q is None and not exact:
        return [camera_out(r, hub) for r in list_cameras(session)
                if sees_area(principal, record_area(r))]  # fmt: skip
    stmt = select(CameraRecord)
    wanted = area_path(area)
    scopes = [wanted] if principal.role == "admin" else [principal.area.path(), wanted]
    for path in scopes:
        for level, value in zip(LEVELS, path, strict=False):
            stmt = stmt.where(getattr(CameraRecord, level) == value)
    if exact and len(wanted) < len(PLACE_LEVELS):  # the next level missing: placed here
        stmt = stmt.where(getattr(CameraRecord, PLACE_LEVELS[len(wanted)]).is_(None))
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(CameraRecord.id.ilike(pattern, escape="\\"),
                              CameraRecord.name.ilike(pattern, escape="\\")))  # fmt: skip
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    response.headers["X-Total-Count"] = str(total)
    page = stmt.order_by(CameraRecord.id).offset(offset).limit(limit)
    return [camera_out(r, hub) for r in session.execute(page).scalars()]


def area_path(area: str | None) -> tuple[str, ...]:
    return tuple(part for part in (area or "").split("/") if part)


#: The levels of the console's camera tree.
PLACE_LEVELS = ("county", "township", "village")


def online_ids(board: StatusBoard) -> set[str]:
    """The cameras online now (their states only, no status copied)."""
    return {cid for cid, state in board.states().items() if state == "online"}


@router.get(
    "/areas",
    response_model=list[CameraAreaOut],
    summary="The camera tree: each place with its cameras and how many are online",
)
def get_camera_areas(
    hub: LiveDep, session: SessionDep, principal: CameraReader
) -> list[CameraAreaOut]:
    """Every county, township and village in your scope that has cameras (here or below),
    with the number of cameras and of those online — the tree the console lazily fills
    with ``GET /api/cameras?area=…&exact=true``. Sorted by path; one GROUP BY."""
    scope = () if principal.role == "admin" else principal.area.path()
    nodes: dict[tuple[str, ...], list[int]] = {}  # path -> [total, online, direct]

    def add(place: tuple[str | None, ...], count: int, index: int) -> None:
        depth = next((i for i, part in enumerate(place) if not part), len(place))
        path = tuple(p for p in place[:depth] if p)  # a missing level ends the path
        for n in range(1 if path else 0, len(path) + 1):  # a root node only without county
            node = nodes.setdefault(path[:n], [0, 0, 0])
            node[index] += count
            if n == len(path) and index == 0:
                node[2] += count

    for county, township, village, count in count_by_area(session, scope):
        add((county, township, village), count, 0)
    online = online_ids(hub.status)
    if online:
        for place, count in Counter(camera_places(session, online, scope)).items():
            add(place, count, 1)
    return [
        CameraAreaOut(path="/".join(path), total=total, online=on, direct=direct,
                      **dict(zip(PLACE_LEVELS, path, strict=False)))
        for path, (total, on, direct) in sorted(nodes.items())
    ]  # fmt: skip


@router.get("/{camera_id}", response_model=CameraOut, summary="One camera with its live status")
def get_camera(
    camera_id: str, hub: LiveDep, session: SessionDep, principal: CameraReader
) -> CameraOut:
    return camera_out(visible_camera(session, camera_id, principal), hub)


@router.get(
    "/{camera_id}/snapshot.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {}, 503: {}},
    summary="The latest decoded frame of a camera, as JPEG",
)
def get_camera_snapshot(
    camera_id: str, hub: LiveDep, session: SessionDep, principal: CameraReader
) -> Response:
    visible_camera(session, camera_id, principal)
    frame = hub.latest_frame(camera_id)
    if frame is None:
        raise HTTPException(503, f"camera {camera_id!r} has delivered no frame yet")
    ok, buf = cv2.imencode(".jpg", frame.source_bgr(), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise HTTPException(500, "JPEG encoding failed")
    return Response(buf.tobytes(), media_type="image/jpeg", headers={"Cache-Control": "no-store"})
