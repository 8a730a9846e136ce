"""A channel's video forwarded to a superior platform (cascade, §9.2 as the callee):
the camera's live packets (the device's own H.264, not decoded) re-packetised as MPEG-PS
over RTP (UDP) to the address the superior's INVITE offered, until its BYE.

What the hub can forward is what it reads: ``FEEDS`` (set by the composition root) gives
the live feed of a camera read in this process, or None. A camera whose packets are
length-prefixed (MP4-style, from a file) is turned into Annex B, and the parameter sets
(SPS/PPS from the stream's extradata) are put before each keyframe so the superior can
start decoding at any keyframe.
"""

from __future__ import annotations

import logging
import queue
import random
import socket
import threading
from collections.abc import Callable
from fractions import Fraction

from gb28181.ps import mux_access_unit
from gb28181.rtp import packetize
from ingest.live import LiveFeed
from ingest.ring import BufferedPacket

log = logging.getLogger(__name__)

#: ``FEEDS(camera_id)``: the live feed of a camera read in this process (None: not here).
FEEDS: Callable[[str], LiveFeed | None] | None = None

_START = (b"\x00\x00\x00\x01", b"\x00\x00\x01")


def annex_b(data: bytes) -> bytes:
    """Length-prefixed (4-byte) NAL units as Annex B; Annex B as it is."""
    if data.startswith(_START):
        return data
    out, i = bytearray(), 0
    while i + 4 <= len(data):
        n = int.from_bytes(data[i : i + 4], "big")
        if n <= 0 or i + 4 + n > len(data):
            return data  # not length-prefixed after all
        out += b"\x00\x00\x00\x01" + data[i + 4 : i + 4 + n]
        i += 4 + n
    return bytes(out)


def parameter_sets(extradata: bytes | None) -> bytes:
    """The SPS/PPS of an H.264 stream's extradata (avcC or Annex B) as Annex B."""
    if not extradata:
        return b""
    if extradata.startswith(_START):
        return extradata
    if extradata[0] != 1 or len(extradata) < 7:
        return b""
    out, i = bytearray(), 5
    try:
        for count_mask in (0x1F, 0xFF):  # SPS count (low 5 bits), then PPS count
            count = extradata[i] & count_mask
            i += 1
            for _ in range(count):
                n = int.from_bytes(extradata[i : i + 2], "big")
                out += b"\x00\x00\x00\x01" + extradata[i + 2 : i + 2 + n]
                i += 2 + n
    except IndexError:
        return bytes(out)
    return bytes(out)


class PsForwarder:
    """One forwarded stream: a thread from the feed to ``host:port`` (RTP/PS over UDP)."""

    def __init__(self, feed: LiveFeed, host: str, port: int, ssrc: int, *,
                 local_host: str = "0.0.0.0", name: str = "") -> None:  # fmt: skip
        self.feed = feed
        self.addr = (host, port)
        self.ssrc = ssrc
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((local_host, 0))
        self.local_port = self.sock.getsockname()[1]
        self.stop_event = threading.Event()
        self.packets_sent = 0
        self.frames_sent = 0
        self._queue: queue.Queue[BufferedPacket | None] = queue.Queue(maxsize=500)
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"gb-forward-{name}")

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(5)

    def _deliver(self, packet: BufferedPacket | None) -> None:
        try:
            self._queue.put_nowait(packet)
        except queue.Full:
            pass  # a slow superior loses frames, never the hub's memory

    def _run(self) -> None:
        start, unsubscribe = self.feed.subscribe(self._deliver)
        seq = random.randint(0, 65535)
        try:
            if start is None:
                return
            stream = start.template.stream
            tb: Fraction = start.template.time_base
            sets = parameter_sets(bytes(stream.codec_context.extradata or b""))
            backlog = list(start.packets)
            keyed = False
            while not self.stop_event.is_set():
                if backlog:
                    item: BufferedPacket | None = backlog.pop(0)
                else:
                    try:
                        item = self._queue.get(timeout=0.5)
                    except queue.Empty:
                        continue
                if item is None:
                    return  # the camera reconnected or stopped: the superior re-invites
                keyed = keyed or item.keyframe
                pts = item.pts if item.pts is not None else item.dts
                if not keyed or pts is None:
                    continue
                au = annex_b(item.data)
                if item.keyframe and sets and b"\x00\x00\x00\x01\x67" not in au[:64]:
                    au = sets + au
                ts = int(pts * tb * 90000)
                ps = mux_access_unit(au, ts, keyframe=item.keyframe)
                packets = packetize(ps, seq=seq, timestamp=ts, ssrc=self.ssrc)
                seq = (seq + len(packets)) & 0xFFFF
                for pkt in packets:
                    self.sock.sendto(pkt, self.addr)
                self.packets_sent += len(packets)
                self.frames_sent += 1
        except OSError as exc:
            log.info("GB forward to %s:%d ended: %s", *self.addr, exc)
        finally:
            unsubscribe()
            self.sock.close()
