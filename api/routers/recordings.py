"""Recording playback (录像回放): a camera's segments, its hourly timeline with alert
marks, a range played as one MP4 (remuxed from the segments, no re-encoding; the browser
seeks in it with HTTP ranges) and a range exported into a signed case export.

Area scope applies (a camera outside the caller's area is a 404); reading needs
``evidence:read``, exporting ``evidence:export``; every playback and export is audited.
Segments are read from the recording storage of this process (the hub's), else from the
configured ``recording.dir`` (an API node: the folder the workers write, shared).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any

import av
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.adapters.sql import AlertRecord
from api.access import visible_camera
from api.auth import audit_request
from api.deps import EvidenceExporter, EvidenceReader, ServicesDep, SessionDep
from api.evidence import case_zip_response
from api.ports import HubServices
from core.storage import EvidenceStorage, StorageError
from recording import hls
from recording.export import write_recording_export
from recording.playback import RangeError, RangeVideo, write_range
from recording.service import recording_storage as folder_storage
from recording.store import RecordingHold, SegmentRecord, new_id, segments_in

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/recordings", tags=["recordings"])


#: The longest range played or exported as one MP4.
MAX_RANGE_S = 3 * 3600.0
#: The longest range of an HLS playlist (a day: the console's timeline).
MAX_PLAYLIST_S = 24 * 3600.0


class SegmentOut(BaseModel):
    id: str
    start: float = Field(description="epoch seconds of its first frame")
    end: float
    size_bytes: int
    sha256: str
    codec: str
    width: int
    height: int
    mode: str
    alert_count: int
    motion_s: int = Field(description="seconds of the segment with motion (the analysis)")
    objects_s: int = Field(description="seconds of the segment with moving tracked objects")
    repaired: bool


class AlertMark(BaseModel):
    id: str
    t: float = Field(description="when the alert was raised (epoch seconds)")
    type: str
    severity: str
    status: str


class HourOut(BaseModel):
    start: float
    recorded_s: float = Field(description="seconds of this hour that are recorded")
    segments: int
    alerts: int
    motion_s: int = Field(0, description="seconds with motion in this hour's segments")
    objects_s: int = Field(0, description="seconds with moving objects in this hour's segments")


class TimelineOut(BaseModel):
    camera_id: str
    start: float
    end: float
    spans: list[tuple[float, float]] = Field(description="recorded spans, merged (gaps < 2 s)")
    activity: list[tuple[float, float]] = Field(
        [], description="recorded spans with motion or moving objects (segments that had any), "
        "merged: where to look first"
    )  # fmt: skip
    hours: list[HourOut]
    alerts: list[AlertMark]


class ExportIn(BaseModel):
    start: float
    end: float
    case_number: str = Field(min_length=1, max_length=64, description="案件编号")
    reason: str = Field(min_length=1, max_length=500, description="why the video is exported")
    keep: bool = Field(False, description="hold the range for the case (保全): retention "
                       "never deletes it")  # fmt: skip

    @model_validator(mode="after")
    def _range(self) -> ExportIn:
        check_range(self.start, self.end)
        return self


def check_range(start: float, end: float) -> None:
    if not end > start:
        raise ValueError("end must be after start")
    if end - start > MAX_RANGE_S:
        raise ValueError(f"a range is at most {MAX_RANGE_S / 3600:g} h")


def recording_storage(services: HubServices) -> EvidenceStorage:
    """The recorder's storage in this process, else the configured recording storage (an
    API node in distributed mode: the folder the workers write, mounted here too, or the
    evidence storage with ``recording.storage: evidence``)."""
    service = getattr(services, "recording", None)
    if service is not None:
        storage: EvidenceStorage = service.storage
        return storage
    loaded = getattr(services, "loaded", None)
    if loaded is None:
        raise HTTPException(503, "recording is not available in this process")
    if loaded.config.recording.storage == "evidence":  # segments in the evidence storage
        evidence: EvidenceStorage = services.evidence
        return evidence
    return folder_storage(loaded.recording_dir)


@router.get("/{camera_id}/segments", response_model=list[SegmentOut],
            summary="A camera's recorded segments overlapping [start, end)")  # fmt: skip
def list_segments(
    camera_id: str, session: SessionDep, principal: EvidenceReader,
    start: Annotated[float, Query(description="epoch seconds")],
    end: Annotated[float, Query(description="epoch seconds")],
) -> list[SegmentOut]:  # fmt: skip
    visible_camera(session, camera_id, principal)
    return [SegmentOut(id=s.id, start=s.start, end=s.end, size_bytes=s.size_bytes,
                       sha256=s.sha256, codec=s.codec, width=s.width, height=s.height,
                       mode=s.mode, alert_count=s.alert_count, motion_s=s.motion_s,
                       objects_s=s.objects_s, repaired=bool(s.repaired))
            for s in segments_in(session, camera_id, start, end)]  # fmt: skip


@router.get("/{camera_id}/timeline", response_model=TimelineOut,
            summary="Recorded spans, hourly summary and alert marks of a camera")  # fmt: skip
def timeline(
    camera_id: str, session: SessionDep, principal: EvidenceReader,
    start: Annotated[float, Query(description="epoch seconds (e.g. local midnight)")],
    hours: Annotated[int, Query(ge=1, le=168)] = 24,
) -> TimelineOut:  # fmt: skip
    visible_camera(session, camera_id, principal)
    end = start + hours * 3600
    spans: list[list[float]] = []
    activity: list[list[float]] = []
    per_hour = [HourOut(start=start + h * 3600, recorded_s=0, segments=0, alerts=0)
                for h in range(hours)]  # fmt: skip
    for s in segments_in(session, camera_id, start, end, limit=200000):
        _merge(spans, s.start, s.end)
        if s.motion_s or s.objects_s:
            _merge(activity, s.start, s.end)
        for hour in per_hour:
            overlap = min(s.end, hour.start + 3600) - max(s.start, hour.start)
            if overlap > 0:
                hour.recorded_s = round(hour.recorded_s + overlap, 1)
                hour.segments += 1
                share = overlap / max(s.end - s.start, 1e-6)
                hour.motion_s += round(s.motion_s * share)
                hour.objects_s += round(s.objects_s * share)
    marks = []
    rows = session.execute(
        select(AlertRecord.id, AlertRecord.created_at, AlertRecord.type, AlertRecord.severity,
               AlertRecord.status)
        .where(AlertRecord.camera_id == camera_id, AlertRecord.created_at >= start,
               AlertRecord.created_at < end)
        .order_by(AlertRecord.created_at).limit(5000)
    ).all()  # fmt: skip
    for alert_id, t, type_, severity, status in rows:
        marks.append(AlertMark(id=alert_id, t=t, type=type_, severity=severity, status=status))
        index = int((t - start) // 3600)
        if 0 <= index < hours:
            per_hour[index].alerts += 1
    return TimelineOut(camera_id=camera_id, start=start, end=end,
                       spans=[(a, b) for a, b in spans], activity=[(a, b) for a, b in activity],
                       hours=per_hour, alerts=marks)  # fmt: skip


def _merge(spans: list[list[float]], start: float, end: float) -> None:
    """Add [start, end] to ``spans`` (in order), joined to the last one across a gap < 2 s."""
    if spans and start - spans[-1][1] < 2.0:
        spans[-1][1] = max(spans[-1][1], end)
    else:
        spans.append([start, end])


class RangeCache:
    """The MP4s of the ranges played lately: a browser asks for one file several times
    (a probe, then HTTP ranges as it plays and seeks); each is remuxed once per viewer
    and kept ``ttl_s`` (a few at most: deleted when they expire or are pushed out)."""

    def __init__(self, ttl_s: float = 120.0, size: int = 8) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, str, float, float], tuple[Path, RangeVideo, float]] = (
            OrderedDict()
        )

    def get(self, key: tuple[str, str, float, float]) -> tuple[Path, RangeVideo] | None:
        with self._lock:
            self._expire()
            item = self._items.get(key)
            if item is None or not item[0].exists():
                return None
            self._items.move_to_end(key)
            return item[0], item[1]

    def put(self, key: tuple[str, str, float, float], path: Path, made: RangeVideo) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                old[0].unlink(missing_ok=True)
            self._items[key] = (path, made, time.monotonic())
            self._expire()

    def _expire(self) -> None:
        now = time.monotonic()
        while self._items:
            key, (path, _, made_at) = next(iter(self._items.items()))
            if len(self._items) <= self.size and now - made_at < self.ttl_s:
                break
            self._items.pop(key)
            path.unlink(missing_ok=True)  # a response still sending it keeps its open file


RANGES = RangeCache()


def _temp_mp4() -> Path:
    fd, name = tempfile.mkstemp(prefix="shaobing-play-", suffix=".mp4")
    os.close(fd)
    return Path(name)


@router.get("/{camera_id}/video.mp4", response_class=FileResponse,
            responses={200: {"content": {"video/mp4": {}}}, 404: {}, 503: {}},
            summary="A recorded range as one MP4 (remuxed, no re-encoding)")  # fmt: skip
def play(
    camera_id: str, request: Request, session: SessionDep, services: ServicesDep,
    principal: EvidenceReader,
    start: Annotated[float, Query(description="epoch seconds (from the keyframe before)")],
    end: Annotated[float, Query(description="epoch seconds")],
) -> FileResponse:  # fmt: skip
    visible_camera(session, camera_id, principal)
    try:
        check_range(start, end)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    key = (principal.username, camera_id, start, end)  # each viewer audited once
    cached = RANGES.get(key)
    if cached is None:
        segments = segments_in(session, camera_id, start, end)
        if not segments:
            raise HTTPException(404, "nothing recorded in that range")
        storage = recording_storage(services)
        path = _temp_mp4()
        try:
            made = write_range(storage, segments, start, end, path)
        except RangeError as exc:
            path.unlink(missing_ok=True)
            raise HTTPException(404, str(exc)) from None
        except (StorageError, OSError) as exc:
            path.unlink(missing_ok=True)
            log.error("recording playback of %s failed: %s", camera_id, exc)
            raise HTTPException(503, "recording storage unavailable") from None
        RANGES.put(key, path, made)
        audit_request(request, session, principal, "recording_playback",
                      f"camera:{camera_id}", f"{made.start:.0f}-{made.end:.0f}")  # fmt: skip
        session.commit()
    else:
        path, made = cached
    headers = {"X-Recording-Start": f"{made.start:.3f}", "X-Recording-End": f"{made.end:.3f}",
               "Cache-Control": "no-store"}  # fmt: skip
    return FileResponse(path, media_type="video/mp4", headers=headers)


@router.post("/{camera_id}/export", response_class=FileResponse,
             responses={200: {"content": {"application/zip": {}}}, 404: {}, 409: {}},
             summary="Export a recorded range into a signed case export (zip)")  # fmt: skip
def export(
    camera_id: str, body: ExportIn, request: Request, session: SessionDep,
    services: ServicesDep, principal: EvidenceExporter,
) -> FileResponse:  # fmt: skip
    record = visible_camera(session, camera_id, principal)
    segments = segments_in(session, camera_id, body.start, body.end)
    if not segments:
        raise HTTPException(404, "nothing recorded in that range")
    storage = recording_storage(services)
    fd, name = tempfile.mkstemp(prefix="shaobing-export-", suffix=".zip")
    os.close(fd)
    path = Path(name)
    camera: dict[str, Any] = {"id": record.id, "name": record.name,
                              "gb28181_id": record.gb28181_id}  # fmt: skip
    try:
        manifest = write_recording_export(
            path, camera, segments, body.start, body.end, services.links.key, storage=storage,
            user=principal.username, case_number=body.case_number, reason=body.reason,
        )  # fmt: skip
    except RangeError as exc:
        path.unlink(missing_ok=True)
        status = 409 if "SHA-256" in str(exc) else 404
        raise HTTPException(status, str(exc)) from None
    except (StorageError, OSError) as exc:
        path.unlink(missing_ok=True)
        log.error("recording export of %s failed: %s", camera_id, exc)
        raise HTTPException(503, "recording storage unavailable") from None
    made = manifest["recordings"][0]
    if body.keep:
        session.add(RecordingHold(id=new_id(), camera_id=camera_id, start=made["start"],
                                  end=made["end"], case_number=body.case_number,
                                  created_by=principal.username,
                                  created_at=time.time()))  # fmt: skip
    audit_request(request, session, principal, "recording_export", f"case:{body.case_number}",
                  f"camera {camera_id} {made['start']:.0f}-{made['end']:.0f}"
                  f"{' kept' if body.keep else ''}; reason: {body.reason}"[:250])  # fmt: skip
    session.commit()
    return case_zip_response(path, body.case_number, camera_id, int(made["start"]))


# -- HLS (recording/hls.py): the console's player ---------------------------------------


class FragmentCache:
    """The segments remuxed lately for HLS (a player asks for a segment's init part and its
    media part one after the other): each remuxed once. Small: a few segments of MB each."""

    def __init__(self, size: int = 12) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[float, bytes, bytes]] = OrderedDict()

    def get(self, segment_id: str, offset: float | None) -> tuple[bytes, bytes] | None:
        """``offset`` None: any (the init part does not depend on it)."""
        with self._lock:
            item = self._items.get(segment_id)
            if item is None or (offset is not None and abs(item[0] - offset) > 1e-3):
                return None
            self._items.move_to_end(segment_id)
            return item[1], item[2]

    def put(self, segment_id: str, offset: float, init: bytes, media: bytes) -> None:
        with self._lock:
            self._items[segment_id] = (offset, init, media)
            self._items.move_to_end(segment_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


FRAGMENTS = FragmentCache()
HLS_TYPE = "application/vnd.apple.mpegurl"


@router.get("/{camera_id}/playlist.m3u8", response_class=Response,
            responses={200: {"content": {HLS_TYPE: {}}}, 404: {}},
            summary="A recorded range as an HLS playlist (fragmented MP4)")  # fmt: skip
def hls_playlist(
    camera_id: str, request: Request, session: SessionDep, principal: EvidenceReader,
    start: Annotated[float, Query(description="epoch seconds: where the player starts "
                                              "(EXT-X-START)")],
    end: Annotated[float, Query(description="epoch seconds (at most 24 h after start)")],
    before: Annotated[float, Query(ge=0, le=MAX_PLAYLIST_S,
                                   description="seconds before start the playlist also "
                                               "covers (to seek back)")] = 0.0,
) -> Response:  # fmt: skip
    """Every segment overlapping [start - before, end) as one HLS media segment (its wall
    time in EXT-X-PROGRAM-DATE-TIME; a gap or a new size is a discontinuity); the player
    starts at ``start``. Audited (``recording_playback``)."""
    visible_camera(session, camera_id, principal)
    if not end > start:
        raise HTTPException(422, "end must be after start")
    if end - start + before > MAX_PLAYLIST_S:
        raise HTTPException(422, f"a playlist covers at most {MAX_PLAYLIST_S / 3600:g} h")
    rows = segments_in(session, camera_id, start - before, end, limit=20000)
    entries = hls.plan([hls.PlaylistSegment(s.id, s.start, s.end, s.codec, s.width, s.height)
                        for s in rows])  # fmt: skip
    if not entries:
        raise HTTPException(404, "nothing recorded in that range")
    text = hls.playlist(entries, start, init_url=lambda s: f"hls/{s.id}/init.mp4",
                        media_url=lambda e: f"hls/{e.segment.id}.m4s?o={e.offset:.3f}")  # fmt: skip
    first, last = entries[0].segment, entries[-1].segment
    audit_request(request, session, principal, "recording_playback", f"camera:{camera_id}",
                  f"{max(first.start, start):.0f}-{last.end:.0f} (HLS)")  # fmt: skip
    session.commit()
    return Response(text, media_type=HLS_TYPE, headers={"Cache-Control": "no-store"})


def _hls_parts(
    camera_id: str, segment_id: str, offset: float | None, session: Session,
    services: HubServices,
) -> tuple[bytes, bytes]:  # fmt: skip
    cached = FRAGMENTS.get(segment_id, offset)
    if cached is not None:
        return cached
    row = session.get(SegmentRecord, segment_id)
    if row is None or row.camera_id != camera_id:
        raise HTTPException(404, "no such segment")
    storage = recording_storage(services)
    try:
        init, media = hls.fragment(storage, row.key, offset or 0.0)
    except (StorageError, OSError) as exc:
        log.warning("recording segment %s not read: %s", row.key, exc)
        if isinstance(exc, FileNotFoundError):
            raise HTTPException(404, "segment no longer stored") from None
        raise HTTPException(503, "recording storage unavailable") from None
    except (ValueError, av.error.FFmpegError) as exc:
        log.error("recording segment %s unreadable: %s", row.key, exc)
        raise HTTPException(409, "segment unreadable") from None
    FRAGMENTS.put(segment_id, offset or 0.0, init, media)
    return init, media


@router.get("/{camera_id}/hls/{segment_id}/init.mp4", response_class=Response,
            responses={200: {"content": {"video/mp4": {}}}, 404: {}},
            summary="HLS: a segment's init part (EXT-X-MAP)")  # fmt: skip
def hls_init(
    camera_id: str, segment_id: str, session: SessionDep, services: ServicesDep,
    principal: EvidenceReader,
) -> Response:  # fmt: skip
    visible_camera(session, camera_id, principal)
    init, _ = _hls_parts(camera_id, segment_id, None, session, services)
    return Response(
        init, media_type="video/mp4", headers={"Cache-Control": "private, max-age=3600"}
    )


@router.get("/{camera_id}/hls/{segment_id}.m4s", response_class=Response,
            responses={200: {"content": {"video/iso.segment": {}}}, 404: {}},
            summary="HLS: a segment's media part (times from its offset)")  # fmt: skip
def hls_media(
    camera_id: str, segment_id: str, session: SessionDep, services: ServicesDep,
    principal: EvidenceReader,
    o: Annotated[float, Query(ge=0, le=MAX_PLAYLIST_S * 2,
                              description="its offset on the playlist's timeline (s)")] = 0.0,
) -> Response:  # fmt: skip
    visible_camera(session, camera_id, principal)
    _, media = _hls_parts(camera_id, segment_id, o, session, services)
    return Response(media, media_type="video/iso.segment",
                    headers={"Cache-Control": "private, max-age=3600"})  # fmt: skip
