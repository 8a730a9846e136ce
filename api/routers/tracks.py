"""Investigator search: the tracks the cameras saw, in the caller's area (class,
colour, time, place) → thumbnails → the clip."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.responses import Response

from accounts.domain import Principal, sees_area
from api.auth import audit_request
from api.deps import AlertsDep, EvidenceReader, SessionDep
from api.evidence import evidence_response, locate
from core.area import Area
from tracks import store
from tracks.colour import COLOURS, Colour

router = APIRouter(prefix="/api/tracks", tags=["tracks"])

#: Query times: epoch seconds, like the alerts' since/until.
Epoch = Query(ge=0, le=1e11, description="epoch seconds")


class TrackOut(BaseModel):
    id: str
    camera_id: str
    camera_name: str
    area: Area
    object_class: str = Field(description="the class most of its frames were detected as")
    colour: Colour | None = Field(description="dominant colour of the object (its best crop)")
    first_seen: float = Field(description="epoch seconds")
    last_seen: float = Field(description="epoch seconds")
    frames: int = Field(description="analysed frames it was seen in")
    score: float = Field(description="median detection score")
    thumbnail_url: str | None = Field(description="the best crop, JPEG")
    clip_url: str | None = Field(description="MP4 from 2 s before to 2 s after; none yet/lost")


class TrackPage(BaseModel):
    total: int = Field(description="matches before paging")
    limit: int
    offset: int
    items: list[TrackOut]


def track_out(record: store.TrackRecord) -> TrackOut:
    base = f"/api/tracks/{record.id}"
    colour = record.colour if record.colour in COLOURS else None
    return TrackOut(
        id=record.id, camera_id=record.camera_id, camera_name=record.camera_name,
        area=record.area, object_class=record.object_class,
        colour=colour,  # type: ignore[arg-type]  # checked against the palette
        first_seen=record.first_seen, last_seen=record.last_seen, frames=record.frames,
        score=record.score,
        thumbnail_url=f"{base}/thumbnail.jpg" if record.thumbnail_path else None,
        clip_url=f"{base}/clip.mp4" if record.clip_path else None,
    )  # fmt: skip


def visible_track(session: Session, track_id: str, principal: Principal) -> store.TrackRecord:
    """The track, or 404 — also when it was seen outside the caller's area (no leak)."""
    record = session.get(store.TrackRecord, track_id)
    if record is None or not sees_area(principal, record.area):
        raise HTTPException(404, f"no track {track_id!r}")
    return record


@router.get(
    "", response_model=TrackPage, responses={422: {}},
    summary="Search tracks in your area: time range, camera or area, class, colour",
)  # fmt: skip
def search_tracks(
    session: SessionDep,
    principal: EvidenceReader,
    start: Annotated[float | None, Epoch] = None,
    end: Annotated[float | None, Epoch] = None,
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    area: Annotated[
        str | None, Query(max_length=300, description="an area path: 示例县/城关镇/人民村")
    ] = None,
    object_class: Annotated[
        str | None, Query(max_length=64, description="person, car, motorcycle, truck, ...")
    ] = None,
    colour: Colour | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> TrackPage:
    """Tracks seen (at least partly) in [start, end), newest first."""
    if start is not None and end is not None and end <= start:
        raise HTTPException(422, "end must be after start")
    q = store.TrackQuery(
        start=start, end=end, camera_id=camera_id, object_class=object_class, colour=colour,
        area=tuple(p for p in (area or "").split("/") if p), limit=limit, offset=offset,
    )  # fmt: skip
    scope = None if principal.role == "admin" else principal.area.path()
    records, total = store.search(session, q, scope)
    return TrackPage(total=total, limit=limit, offset=offset,
                     items=[track_out(r) for r in records])  # fmt: skip


@router.get(
    "/{track_id}/thumbnail.jpg",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 403: {}, 404: {}},
    summary="The track's best crop (JPEG)",
)
def get_track_thumbnail(
    track_id: str,
    request: Request,
    session: SessionDep,
    services: AlertsDep,
    principal: EvidenceReader,
) -> Response:
    record = visible_track(session, track_id, principal)
    found = locate(services.evidence, record.thumbnail_path,
                   f"track {track_id!r} has no thumbnail on disk")  # fmt: skip
    return evidence_response(found, "image/jpeg", {"Cache-Control": "private, max-age=86400"},
                             request.headers.get("range"))  # fmt: skip


@router.get(
    "/{track_id}/clip.mp4",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}}, 206: {}, 403: {}, 404: {}},
    summary="The track's clip (MP4, the camera's own H.264; Range requests)",
)
def get_track_clip(
    track_id: str,
    request: Request,
    session: SessionDep,
    services: AlertsDep,
    principal: EvidenceReader,
) -> Response:
    record = visible_track(session, track_id, principal)
    found = locate(services.evidence, record.clip_path,
                   f"track {track_id!r} has no clip on disk")  # fmt: skip
    # As for alert clips: audit the first request of a viewing, not every range.
    if request.headers.get("range", "bytes=0-").startswith("bytes=0-"):
        audit_request(request, session, principal, "evidence_view", f"track:{track_id}", "clip")
        session.commit()
    return evidence_response(found, "video/mp4", {"X-Content-SHA256": record.clip_sha256 or ""},
                             request.headers.get("range"))  # fmt: skip
