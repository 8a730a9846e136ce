"""Live view: the camera's own encoded packets fanned out to viewers, remuxed to FLV.

The reader hands every demuxed packet to :class:`LiveFeed` (a
:class:`~ingest.reader.PacketSink`). It keeps the current GOP (from the last
keyframe), so a viewer that joins starts on a keyframe at once, and pushes each
new packet to the viewers' callbacks. :class:`FlvRemuxer` turns a viewer's packets
into an FLV byte stream (what mpegts.js plays through Media Source Extensions)
without decoding or re-encoding anything: a live tile costs the hub a copy of the
bytes, not a decoder.

A new connection to the camera (other parameters, timestamps from zero) ends every
viewer's stream; players reconnect and start on the new stream.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import av

from ingest.ring import BufferedPacket, StreamTemplate, arrival_clock

log = logging.getLogger(__name__)

#: Codecs the FLV container (and browsers' MSE) carry: H.264 only, in practice.
FLV_CODECS = frozenset({"h264"})

#: Packets a viewer may fall behind before its stream is cut (the player reconnects).
MAX_BACKLOG = 500

#: A viewer's callback: a packet, or None when the stream ended (reconnect).
Viewer = Callable[[BufferedPacket | None], None]


class LiveUnavailable(RuntimeError):
    """A stream opened for a viewer on demand (a GB/T 28181 channel nobody analyses)
    could not be started; ``state`` says why (``invite_failed``, ``no_media`` ...)."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state


@dataclass(frozen=True)
class LiveStart:
    """What a new viewer needs: the stream's parameters and the packets since the last
    keyframe (the first one a keyframe)."""

    template: StreamTemplate
    codec: str
    packets: list[BufferedPacket]


class LiveFeed:
    """Thread-safe: the reader thread writes, viewers subscribe from any thread."""

    def __init__(self, max_gop_bytes: int = 8 * 1024 * 1024) -> None:
        self.max_gop_bytes = max_gop_bytes
        self._lock = threading.Lock()
        self._template: StreamTemplate | None = None
        self._codec = ""
        self._gop: list[BufferedPacket] = []
        self._gop_bytes = 0
        self._viewers: dict[int, Viewer] = {}
        self._next_id = 0

    # -- PacketSink -----------------------------------------------------------------

    def stream_opened(self, stream: av.video.stream.VideoStream) -> None:
        template = StreamTemplate(stream)
        with self._lock:
            self._template = template
            self._codec = stream.codec_context.name
            self._gop, self._gop_bytes = [], 0
            viewers = list(self._viewers.values())
            self._viewers.clear()
        for viewer in viewers:  # their timestamps would jump: end their streams
            viewer(None)

    def packet(self, packet: av.Packet) -> None:
        item = BufferedPacket(
            bytes(packet), packet.pts, packet.dts, int(packet.duration or 0),
            bool(packet.is_keyframe), arrival_clock(packet),
        )  # fmt: skip
        with self._lock:
            if item.keyframe:
                self._gop, self._gop_bytes = [item], len(item.data)
            elif self._gop and self._gop_bytes + len(item.data) <= self.max_gop_bytes:
                self._gop.append(item)
                self._gop_bytes += len(item.data)
            else:  # no keyframe yet, or a GOP too long to keep: new viewers wait for one
                self._gop, self._gop_bytes = [], 0
            viewers = list(self._viewers.values())
        for viewer in viewers:
            viewer(item)

    def end(self) -> None:
        """The camera stopped here (its lease moved, the hub stops): end every viewer's
        stream now rather than leave it waiting for packets that will not come."""
        with self._lock:
            viewers = list(self._viewers.values())
            self._viewers.clear()
            self._gop, self._gop_bytes = [], 0
        for viewer in viewers:
            viewer(None)

    # -- viewers ----------------------------------------------------------------------

    @property
    def codec(self) -> str:
        return self._codec

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def subscribe(self, viewer: Viewer) -> tuple[LiveStart | None, Callable[[], None]]:
        """Register ``viewer``; (what it starts from — None before the first
        connection —, a function that unsubscribes it)."""
        with self._lock:
            key = self._next_id
            self._next_id += 1
            self._viewers[key] = viewer
            start = (
                LiveStart(self._template, self._codec, list(self._gop))
                if self._template is not None
                else None
            )

        def unsubscribe() -> None:
            with self._lock:
                self._viewers.pop(key, None)

        return start, unsubscribe


class TeeSink:
    """Hands each packet to several sinks (the clip ring and the live feed)."""

    def __init__(self, *sinks: object) -> None:
        self.sinks = [s for s in sinks if s is not None]

    def stream_opened(self, stream: av.video.stream.VideoStream) -> None:
        for sink in self.sinks:
            sink.stream_opened(stream)  # type: ignore[attr-defined]

    def packet(self, packet: av.Packet) -> None:
        for sink in self.sinks:
            sink.packet(packet)  # type: ignore[attr-defined]


class _Chunks(io.RawIOBase):
    """A write-only file that collects what the muxer writes."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: object) -> int:
        chunk = bytes(data)  # type: ignore[call-overload]
        self._parts.append(chunk)
        return len(chunk)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class FlvRemuxer:
    """Packets of one stream in, FLV bytes out (header first), timestamps from 0.

    Packets without a timestamp, or whose decode time does not advance, are
    dropped (the muxer would refuse them); the first packet must be a keyframe.
    """

    def __init__(self, template: StreamTemplate) -> None:
        self.template = template
        self._out_file = _Chunks()
        self._out = av.open(
            self._out_file, mode="w", format="flv", options={"flvflags": "no_duration_filesize"}
        )
        self._stream = self._out.add_stream_from_template(template.stream)
        self._base: int | None = None
        self._last_dts: int | None = None

    def feed(self, packet: BufferedPacket) -> bytes:
        pts = packet.pts if packet.pts is not None else packet.dts
        dts = packet.dts if packet.dts is not None else packet.pts
        if pts is None or dts is None:
            return b""
        if self._base is None:
            if not packet.keyframe:
                return b""
            self._base = min(pts, dts)
        pts, dts = pts - self._base, dts - self._base
        if dts < 0 or (self._last_dts is not None and dts <= self._last_dts):
            return b""
        self._last_dts = dts
        out = av.Packet(packet.data)
        out.pts, out.dts, out.duration = pts, dts, packet.duration
        out.time_base = self.template.time_base
        out.is_keyframe = packet.keyframe
        out.stream = self._stream
        self._out.mux(out)
        return self._out_file.take()

    def close(self) -> None:
        try:
            self._out.close()
        except (av.error.FFmpegError, ValueError):  # nothing muxed yet: no header written
            pass


class LiveRefused(Exception):
    """Why a camera's live video cannot be streamed now (an HTTP status and a message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class FlvViewer:
    """One viewer of a camera's live FLV, whatever serves it (the API's HTTP and WebSocket
    routes, a worker's media server): subscribes ``deliver`` to the feed, refuses what
    cannot be streamed (:class:`LiveRefused`: 503 no keyframe yet, 415 not H.264),
    remuxes, and says when the viewer fell too far behind. ``close()`` unsubscribes.

    ``deliver`` is called by the reader thread with each packet, and with None when the
    stream ended (the camera reconnected); the caller queues them and feeds :meth:`chunk`.
    """

    def __init__(self, camera_id: str, feed: LiveFeed, deliver: Viewer) -> None:
        self.camera_id = camera_id
        start, self._unsubscribe = feed.subscribe(deliver)
        if start is None or not start.packets:
            self._unsubscribe()
            raise LiveRefused(503, f"camera {camera_id!r} is not streaming (no keyframe yet)")
        if start.codec not in FLV_CODECS:
            self._unsubscribe()
            raise LiveRefused(
                415, f"camera {camera_id!r} sends {start.codec}: live view needs H.264; "
                "use the JPEG snapshots"
            )  # fmt: skip
        self._first = start.packets
        self._remuxer = FlvRemuxer(start.template)

    def opening(self) -> list[bytes]:
        """The FLV header and the packets since the last keyframe."""
        chunks = [self._remuxer.feed(packet) for packet in self._first]
        self._first = []
        return [c for c in chunks if c]

    def chunk(self, packet: BufferedPacket) -> bytes:
        return self._remuxer.feed(packet)

    def behind(self, queued: int) -> bool:
        """Whether a viewer with ``queued`` packets waiting is too slow (cut the stream:
        the player reconnects on the current keyframe)."""
        if queued > MAX_BACKLOG:
            log.info("camera %s: live viewer too slow, stream cut", self.camera_id)
            return True
        return False

    def close(self) -> None:
        self._unsubscribe()
        self._remuxer.close()
