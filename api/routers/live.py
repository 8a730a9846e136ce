"""Live views: a camera's video (HTTP-FLV, remuxed, never re-encoded), its boxes and
zones for an overlay, and the server-sent-events feed of alerts and camera states."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from fastapi import (
    APIRouter,
    HTTPException,
    Query,
    Request,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from accounts.domain import Principal, can, sees_alert
from alerts import queries
from alerts.feed import FeedKind
from api.access import visible_camera
from api.auth import StreamAuthority, current_principal
from api.deps import AlertReader, CameraReader, LiveDep, ServicesDep, SessionDep
from api.ports import CameraLivePort
from api.schemas import CameraStatusOut, Overlay, alert_out
from api.streams import OpenStreams
from camera_registry.store import camera_ids_in_area
from ingest.live import FlvViewer, LiveRefused, LiveUnavailable
from ingest.ring import BufferedPacket

log = logging.getLogger(__name__)

router = APIRouter(tags=["live"])


HEARTBEAT_S = 15.0


# -- live video -------------------------------------------------------------------------


@router.get(
    "/api/cameras/{camera_id}/live.flv",
    response_class=StreamingResponse,
    responses={200: {"content": {"video/x-flv": {}}}, 404: {}, 415: {}, 503: {}},
    summary="Live video (HTTP-FLV of the camera's own H.264, from the last keyframe)",
    description="For mpegts.js (`{type: 'flv', isLive: true}`). The stream ends when the "
    "camera reconnects (new parameters); the player reconnects. A camera whose codec FLV "
    "cannot carry (H.265) answers 415: poll `snapshot.jpg` instead.",
)
async def live_flv(
    camera_id: str, request: Request, hub: LiveDep, principal: CameraReader
) -> StreamingResponse:
    def check() -> None:  # a short session: a stream must not hold a connection for hours
        with request.app.state.sessions() as session:
            visible_camera(session, camera_id, principal)

    await run_in_threadpool(check)
    authority = StreamAuthority(request, principal, "cameras:read")
    chunks = await flv_stream(camera_id, hub, request.app.state.streams, request.is_disconnected,
                              authority)  # fmt: skip
    return StreamingResponse(
        chunks,
        media_type="video/x-flv",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.websocket("/api/cameras/{camera_id}/live.ws")
async def live_ws(websocket: WebSocket, camera_id: str) -> None:
    """Live video as FLV over a WebSocket (mpegts.js ``ws://`` URLs), the same stream and
    the same checks as ``live.flv`` (login cookie, token or API key; cameras:read; the
    camera in the caller's area). A browser keeps at most six HTTP/1.1 connections per
    host and each HTTP-FLV tile holds one, so a wall of 9 or 16 tiles stalled; WebSockets
    do not count against that limit. A refusal closes the socket before accepting it
    (HTTP 403); a cross-origin page is refused (the cookie is SameSite=Strict too)."""
    app = websocket.app
    origin = websocket.headers.get("origin")
    if origin and urlsplit(origin).netloc != websocket.headers.get("host"):
        await websocket.close(code=1008, reason="cross-origin")
        return

    def check() -> Principal:
        with app.state.sessions() as session:
            principal = current_principal(websocket, session)  # type: ignore[arg-type]
            if not can(principal, "cameras:read"):
                raise HTTPException(403, "permission 'cameras:read' required")
            visible_camera(session, camera_id, principal)
            return principal

    try:
        principal = await run_in_threadpool(check)
        authority = StreamAuthority(websocket, principal, "cameras:read")  # type: ignore[arg-type]
        gone = asyncio.Event()
        chunks = await flv_stream(camera_id, app.state.services, app.state.streams,
                                  _is_set(gone), authority)  # fmt: skip
    except HTTPException as exc:
        await websocket.close(code=4000 + exc.status_code, reason=str(exc.detail)[:120])
        return
    await websocket.accept()
    watcher = asyncio.create_task(_until_closed(websocket, gone))
    try:
        async for chunk in chunks:
            if gone.is_set():
                break
            await websocket.send_bytes(chunk)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the viewer left
    finally:
        watcher.cancel()
        await chunks.aclose()
    if not gone.is_set():
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await websocket.close(code=1001)  # the stream ended: the player reconnects


def _is_set(event: asyncio.Event) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return event.is_set()

    return check


async def _until_closed(websocket: WebSocket, gone: asyncio.Event) -> None:
    """Read (and drop) what the viewer sends until it closes the socket."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
    except (WebSocketDisconnect, RuntimeError):
        pass
    gone.set()


async def flv_stream(
    camera_id: str,
    hub: CameraLivePort,
    streams: OpenStreams,
    disconnected: Callable[[], Awaitable[bool]],
    authority: StreamAuthority,
) -> AsyncGenerator[bytes, None]:
    """The camera's live FLV bytes (an HTTPException when it cannot be streamed): here from
    its reader, or relayed from the worker holding it (distributed mode). The stream ends
    when the server stops, the camera reconnects, or the credential that opened it no
    longer holds (re-checked every few seconds)."""
    remote = hub.remote_live_url(camera_id)
    if remote is not None:
        return await relay_chunks(camera_id, remote, streams, authority)
    try:  # a GB/T 28181 channel nobody analyses: its stream opens now (INVITE)
        await run_in_threadpool(hub.live_on_demand, camera_id)
    except LiveUnavailable as exc:
        raise HTTPException(503, f"camera {camera_id!r}: {exc.state}: {exc}") from None
    feed = hub.live_feed(camera_id)
    loop = asyncio.get_running_loop()
    packets: asyncio.Queue[BufferedPacket | None] = asyncio.Queue()

    def deliver(packet: BufferedPacket | None) -> None:  # called by the reader thread
        loop.call_soon_threadsafe(packets.put_nowait, packet)

    try:
        viewer = FlvViewer(camera_id, feed, deliver)
    except LiveRefused as refused:
        raise HTTPException(refused.status, refused.message) from None
    # the server stopping ends the stream as a camera reconnect does
    unregister = streams.register(lambda: packets.put_nowait(None))

    async def body() -> AsyncGenerator[bytes, None]:
        try:
            for chunk in viewer.opening():
                yield chunk
            while not viewer.behind(packets.qsize()):
                if authority.due() and await stream_ends(authority, f"live video {camera_id}"):
                    return
                try:
                    wait = min(HEARTBEAT_S, authority.interval_s)
                    item = await asyncio.wait_for(packets.get(), timeout=wait)
                except TimeoutError:
                    if await disconnected():
                        return
                    continue
                if item is None:  # the camera reconnected, or the server stops
                    return
                chunk = viewer.chunk(item)
                if chunk:
                    yield chunk
        finally:
            unregister()
            viewer.close()

    return body()


async def stream_ends(authority: StreamAuthority, what: str) -> str | None:
    """Re-check the stream's credential (in a thread: it reads the database); the
    reason it must end, logged, or None."""
    reason = await run_in_threadpool(authority.reason_to_end)
    if reason is not None:
        log.info("%s of %s ended: %s", what, authority.principal.username, reason)
    return reason


async def relay_chunks(
    camera_id: str, url: str, streams: OpenStreams, authority: StreamAuthority
) -> AsyncGenerator[bytes, None]:
    """Relay the FLV stream of the worker holding the camera (distributed mode; the URL
    is signed, shaobing/media.py). Its refusals (404 moved away, 503 not streaming, 415
    codec) are raised as they are; a worker that does not answer is a 503."""
    client = httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=60.0))
    try:
        upstream = await client.send(client.build_request("GET", url), stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        log.warning("camera %s: live video relay failed: %s", camera_id, type(exc).__name__)
        raise HTTPException(503, f"camera {camera_id!r}: its worker does not answer") from None
    if upstream.status_code != 200:
        detail = (await upstream.aread()).decode(errors="replace")[:300]
        await upstream.aclose()
        await client.aclose()
        status = upstream.status_code if upstream.status_code in (404, 415, 503) else 503
        if status == 404:  # moved to another worker a moment ago: the player retries
            status, detail = 503, f"camera {camera_id!r} is moving to another worker"
        raise HTTPException(status, detail)

    stopping = asyncio.Event()

    async def body() -> AsyncGenerator[bytes, None]:
        unregister = streams.register(stopping.set)
        try:
            async for chunk in upstream.aiter_raw():
                if stopping.is_set():
                    return  # the server stops
                if authority.due() and await stream_ends(authority, f"live video {camera_id}"):
                    return
                yield chunk
        except httpx.HTTPError:
            return  # the worker stopped (lease moved, worker died): the player reconnects
        finally:
            unregister()
            await upstream.aclose()
            await client.aclose()

    return body()


@router.get(
    "/api/cameras/{camera_id}/overlay",
    response_model=Overlay,
    responses={503: {}},
    summary="Tracked boxes and rule zones of the latest analysed frame (its pixels)",
)
def get_overlay(
    camera_id: str, live: LiveDep, session: SessionDep, principal: CameraReader
) -> Overlay:
    visible_camera(session, camera_id, principal)
    overlay = live.overlay(camera_id)
    if overlay is None:
        raise HTTPException(503, f"camera {camera_id!r} has not been analysed yet")
    return overlay


# -- the event feed ---------------------------------------------------------------------


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


@router.get(
    "/api/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
    summary="Server-sent events: new alerts, alert changes, camera states (your scope)",
    description="Events `alert` and `alert_changed` carry the same object as an item of "
    "`GET /api/alerts`; `camera` carries `{id, status}` when a camera's state changes. A "
    "comment every 15 s keeps proxies from closing the stream. The feed is a signal: after "
    "a reconnect, re-read the lists. The credential is checked again every few seconds: "
    "when it is revoked or expired, the user disabled, demoted or given another scope, an "
    "`auth_ended` event `{reason}` ends the stream (live video streams simply end).",
)
async def events(
    request: Request,
    hub: ServicesDep,
    principal: AlertReader,
    duration_s: Annotated[
        float | None,
        Query(gt=0, le=86400, description="end the stream after this many seconds"),
    ] = None,
) -> StreamingResponse:
    loop = asyncio.get_running_loop()
    notes: asyncio.Queue[tuple[FeedKind, str]] = asyncio.Queue(maxsize=1000)

    def listener(kind: FeedKind, alert_id: str) -> None:  # called by the alert threads
        def put() -> None:
            if not notes.full():  # a stalled viewer misses signals, never blocks the hub
                notes.put_nowait((kind, alert_id))

        loop.call_soon_threadsafe(put)

    sessions = request.app.state.sessions
    stopping = asyncio.Event()  # set when the server stops: the stream ends
    authority = StreamAuthority(request, principal, "alerts:read")

    def load_alert(alert_id: str) -> dict[str, Any] | None:
        with sessions() as session:
            alert = queries.get_alert(session, alert_id)
        if alert is None or not sees_alert(principal, alert.area, alert.departments,
                                           alert.assignee):  # fmt: skip
            return None
        return alert_out(alert).model_dump(mode="json")

    def visible_cameras() -> set[str] | None:
        with sessions() as session:
            return feed_cameras(session, principal)

    async def body() -> AsyncIterator[bytes]:
        unsubscribe = hub.feed.subscribe(listener)
        unregister = request.app.state.streams.register(stopping.set)
        try:
            yield b"retry: 3000\n\n"
            cameras = await run_in_threadpool(visible_cameras)
            watch = CameraWatch()
            refreshed = last_beat = time.monotonic()
            end = None if duration_s is None else refreshed + duration_s
            while not stopping.is_set() and not await request.is_disconnected():
                if end is not None and time.monotonic() >= end:
                    return
                if authority.due():
                    reason = await stream_ends(authority, "event feed")
                    if reason is not None:  # the console logs in again or reconnects
                        yield _sse("auth_ended", {"reason": reason})
                        return
                try:
                    wait = 1.0 if end is None else max(0.01, min(1.0, end - time.monotonic()))
                    kind, alert_id = await asyncio.wait_for(notes.get(), timeout=wait)
                except TimeoutError:
                    pass
                else:
                    data = await run_in_threadpool(load_alert, alert_id)
                    if data is not None:
                        yield _sse(kind, data)
                    continue
                now = time.monotonic()
                if now - refreshed > 30:
                    cameras, refreshed = await run_in_threadpool(visible_cameras), now
                for chunk in await run_in_threadpool(camera_changes, hub, cameras, watch):
                    yield chunk
                if now - last_beat >= HEARTBEAT_S:
                    last_beat = now
                    yield b": keep-alive\n\n"
        finally:
            unregister()
            unsubscribe()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def feed_cameras(session: Session, principal: Principal) -> set[str] | None:
    """The cameras whose state changes a principal's feed reports; None: every camera (an
    admin, or a scope without an area), so that nothing is listed for them — at 100,000
    cameras the list alone would cost a feed more than its changes."""
    path = principal.area.path()
    if principal.role == "admin" or not path:
        return None
    return camera_ids_in_area(session, path)


@dataclass
class CameraWatch:
    """What one feed has seen of the cameras: the state-change cursor and the states."""

    cursor: str = ""
    states: dict[str, str] = field(default_factory=dict)


def camera_changes(
    hub: CameraLivePort, cameras: set[str] | None, watch: CameraWatch
) -> list[bytes]:
    """`camera` events for the visible cameras (None: all) whose state changed since the
    last look (the first look reports none: the console has just read the list, and
    reads no state: the change log names what changes from now on). Only the cameras the
    status board's change log names are looked at — O(changes), not O(cameras) — and
    every state is read in one go when the log does not reach back (a feed far behind)."""
    first = not watch.cursor
    watch.cursor, changed = hub.status.changes(watch.cursor)
    if first:
        return []
    if changed is None:  # too far behind: every state at once
        states = hub.status.states()
        out = []
        for camera_id in sorted(states.keys() if cameras is None else cameras & states.keys()):
            if watch.states.get(camera_id) != states[camera_id]:
                out += camera_changes_of(hub, [camera_id], watch)
            watch.states[camera_id] = states[camera_id]
        return out
    ids = [c for c in dict.fromkeys(changed) if cameras is None or c in cameras]
    return camera_changes_of(hub, ids, watch)


def camera_changes_of(hub: CameraLivePort, ids: list[str], watch: CameraWatch) -> list[bytes]:
    out = []
    for camera_id in ids:
        st = hub.status.snapshot(camera_id)
        if st is None or watch.states.get(camera_id) == st.state:
            continue
        watch.states[camera_id] = st.state
        status = CameraStatusOut.model_validate(st.to_dict()).model_dump(mode="json")
        out.append(_sse("camera", {"id": camera_id, "status": status}))
    return out
