"""A per-camera ring buffer of encoded video packets, for evidence clips.

The reader hands every demuxed packet to :class:`PacketRing` (a
:class:`~ingest.reader.PacketSink`); the ring keeps the last ``max_seconds`` and at
most ``max_bytes`` of them, with the time each arrived, so a clip around an alert is
cut later without re-encoding (a copy of the bytes costs ~0.1 MB/s per camera, a
decoded frame would cost ~100x that).
"""

from __future__ import annotations

import io
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av

#: Seconds of a packet on the clip clock (wall time live; stream time in tests).
PacketClock = Callable[[av.Packet], float]


@dataclass(frozen=True)
class BufferedPacket:
    """One encoded packet as kept by the ring (its bytes copied out of FFmpeg)."""

    data: bytes
    pts: int | None
    dts: int | None
    duration: int
    keyframe: bool
    t: float  # clip clock, seconds


class StreamTemplate:
    """The codec parameters of a connection, kept alive after its container closes.

    An output stream made from the input stream holds a copy of its parameters
    (extradata with SPS/PPS included); the reader's container may close at any time.
    """

    def __init__(self, stream: av.video.stream.VideoStream) -> None:
        self._holder = av.open(io.BytesIO(), mode="w", format="mp4")
        self.stream = self._holder.add_stream_from_template(stream)
        self.time_base: Fraction = stream.time_base or Fraction(1, 90000)


@dataclass(frozen=True)
class ClipPackets:
    """The packets of a clip (first one a keyframe) and the template to mux them."""

    template: StreamTemplate
    packets: list[BufferedPacket]

    @property
    def start(self) -> float:
        return self.packets[0].t

    @property
    def end(self) -> float:
        # Not the last packet's: with B-frames, decode order is not presentation order.
        return max(p.t for p in self.packets)


def arrival_clock(_: av.Packet) -> float:
    """Live cameras: a packet's time is when it arrived (wall clock, like alert times)."""
    return time.time()


class PacketRing:
    """Thread-safe: the reader thread appends, the clip thread cuts."""

    def __init__(
        self, max_seconds: float, max_bytes: int, clock: PacketClock = arrival_clock
    ) -> None:
        self.max_seconds = max_seconds
        self.max_bytes = max_bytes
        self.clock = clock
        self._lock = threading.Lock()
        self._packets: deque[BufferedPacket] = deque()
        self._keys: deque[tuple[int, float]] = deque()  # (sequence number, t) of keyframes
        self._first_seq = 0  # sequence number of the oldest packet held
        self._bytes = 0
        self._template: StreamTemplate | None = None
        self.evicted = 0

    # -- PacketSink -------------------------------------------------------------

    def stream_opened(self, stream: av.video.stream.VideoStream) -> None:
        """A new connection: its timestamps and parameters may differ, start afresh."""
        template = StreamTemplate(stream)
        with self._lock:
            self._packets.clear()
            self._keys.clear()
            self._bytes = 0
            self._template = template

    def packet(self, packet: av.Packet) -> None:
        item = BufferedPacket(
            bytes(packet), packet.pts, packet.dts, int(packet.duration or 0),
            bool(packet.is_keyframe), self.clock(packet),
        )  # fmt: skip
        with self._lock:
            if item.keyframe:
                self._keys.append((self._first_seq + len(self._packets), item.t))
            self._packets.append(item)
            self._bytes += len(item.data)
            self._evict()

    def _evict(self) -> None:
        """Time: drop whole GOPs older than the window (the GOP reaching into it stays,
        a clip must start on its keyframe). Bytes: a hard bound, packet by packet."""
        horizon = self._packets[-1].t - self.max_seconds
        while len(self._keys) >= 2 and self._keys[1][1] <= horizon:
            second_gop = self._keys[1][0]
            while self._first_seq < second_gop:
                self._drop_first()
        while self._bytes > self.max_bytes and len(self._packets) > 1:
            self._drop_first()
        # Packets before the first keyframe held cannot be decoded: do not keep them.
        while self._packets and not self._packets[0].keyframe:
            self._drop_first()

    def _drop_first(self) -> None:
        self._bytes -= len(self._packets.popleft().data)
        if self._keys and self._keys[0][0] == self._first_seq:
            self._keys.popleft()
        self._first_seq += 1
        self.evicted += 1

    # -- readers ---------------------------------------------------------------

    @property
    def bytes_held(self) -> int:
        return self._bytes

    def span_s(self) -> float:
        """Seconds of video held (first to last packet)."""
        with self._lock:
            return self._packets[-1].t - self._packets[0].t if self._packets else 0.0

    def newest_time(self) -> float | None:
        with self._lock:
            return self._packets[-1].t if self._packets else None

    def keyframe_times(self) -> list[float]:
        with self._lock:
            return [t for _, t in self._keys]

    def cut(self, start: float, end: float) -> ClipPackets | None:
        """The packets from the last keyframe at or before ``start`` (else the first
        one after it) to ``end``; None when no keyframe is held in that range."""
        with self._lock:
            template = self._template
            packets = list(self._packets)
        if template is None:
            return None
        keys = [i for i, p in enumerate(packets) if p.keyframe and p.t <= end]
        before = [i for i in keys if packets[i].t <= start]
        # A clip must open on a keyframe: the last one before the window, else the first in it.
        first = before[-1] if before else (keys[0] if keys else None)
        if first is None:
            return None
        # Contiguous in decode order up to the last packet due by ``end``: with B-frames a
        # packet shown before ``end`` may follow one shown after it, which it refers to.
        last = max(i for i in range(first, len(packets)) if packets[i].t <= end)
        return ClipPackets(template, packets[first : last + 1])
