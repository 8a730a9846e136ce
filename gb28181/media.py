"""Media of one GB/T 28181 stream: an RTP port (UDP, or TCP passive with RFC 4571
framing), reordering and SSRC filtering, and the PS byte pipe PyAV reads.

The receivers run on the SIP server's event loop (no thread per stream); the pipe is
read by the camera's reader thread (``av.open(pipe, format="mpeg")``).
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from collections import deque

from gb28181 import metrics
from gb28181.rtp import Reorderer, split_4571

log = logging.getLogger(__name__)


class MediaTimeout(OSError):
    """No media came for the stream's timeout."""


class PsPipe(io.RawIOBase):
    """Bytes written by the event loop, read (blocking) by a reader thread.

    ``read`` waits at most ``timeout_s`` for data, then raises :class:`MediaTimeout`;
    after :meth:`finish` it drains and returns b"" (end of stream). The buffer is
    bounded: a reader that stalls loses the oldest data, not the hub's memory.
    """

    def __init__(self, timeout_s: float = 5.0, max_bytes: int = 16 * 1024 * 1024) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._cond = threading.Condition()
        self._done = False
        self.reason: str | None = None
        self.bytes_in = 0
        self.dropped_bytes = 0
        self.first_data_at: float | None = None

    def readable(self) -> bool:
        return True

    def feed(self, data: bytes) -> None:
        with self._cond:
            if self._done:
                return
            if self.first_data_at is None:
                self.first_data_at = time.monotonic()
            self._chunks.append(data)
            self._size += len(data)
            self.bytes_in += len(data)
            while self._size > self.max_bytes and len(self._chunks) > 1:
                old = self._chunks.popleft()
                self._size -= len(old)
                self.dropped_bytes += len(old)
            self._cond.notify()

    def finish(self, reason: str) -> None:
        with self._cond:
            if not self._done:
                self._done, self.reason = True, reason
            self._cond.notify_all()

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        with self._cond:
            deadline = time.monotonic() + self.timeout_s
            while not self._chunks and not self._done:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MediaTimeout(f"no media for {self.timeout_s:g} s")
                self._cond.wait(left)
            if not self._chunks:
                return 0
            n = len(buffer)
            out = bytearray()
            while self._chunks and len(out) < n:
                chunk = self._chunks.popleft()
                take = n - len(out)
                if len(chunk) > take:
                    self._chunks.appendleft(chunk[take:])
                    chunk = chunk[:take]
                out += chunk
            self._size -= len(out)
            buffer[: len(out)] = out
            return len(out)


class PortPool:
    """RTP ports from the configured range, handed out and given back on BYE."""

    def __init__(self, low: int, high: int) -> None:
        self.free = deque(range(low, high + 1, 2))  # even ports, RTP habit
        self.used: set[int] = set()
        self.lock = threading.Lock()

    def take(self) -> int:
        with self.lock:
            if not self.free:
                raise RuntimeError("no free RTP port in sip.rtp_port_min..rtp_port_max")
            port = self.free.popleft()
            self.used.add(port)
            return port

    def give_back(self, port: int) -> None:
        with self.lock:
            if port in self.used:
                self.used.discard(port)
                self.free.append(port)


class RtpSink:
    """Reordered, SSRC-filtered RTP payloads (PS) into a pipe; counts what it drops."""

    def __init__(self, pipe: PsPipe, ssrc: int | None) -> None:
        self.pipe = pipe
        self.reorder = Reorderer(ssrc)
        self.peer: tuple[str, int] | None = None
        self.last_packet_at: float | None = None
        self.wrong_source = 0

    def stats(self) -> dict[str, int]:
        st = self.reorder.stats
        return {"received": st.received, "delivered": st.delivered, "lost": st.lost,
                "late": st.late, "wrong_ssrc": st.wrong_ssrc, "malformed": st.malformed,
                "wrong_source": self.wrong_source, "bytes": self.pipe.bytes_in}  # fmt: skip

    def datagram(self, data: bytes, addr: tuple[str, int] | None = None) -> None:
        """One RTP packet; over UDP ``addr`` is its source: the first one is the device,
        packets from anywhere else are dropped (a stale stream, a stray sender)."""
        if addr is not None:
            if self.peer is None:
                self.peer = addr
            elif addr != self.peer:
                self.wrong_source += 1
                metrics.RTP_PACKETS.labels("wrong_source").inc()
                return
        self.last_packet_at = time.monotonic()
        before = (self.reorder.stats.wrong_ssrc, self.reorder.stats.malformed)
        for pkt in self.reorder.push(data):
            if pkt.payload:
                self.pipe.feed(pkt.payload)
        stats = self.reorder.stats
        if stats.wrong_ssrc != before[0]:
            metrics.RTP_PACKETS.labels("wrong_ssrc").inc()
        elif stats.malformed != before[1]:
            metrics.RTP_PACKETS.labels("malformed").inc()
        else:
            metrics.RTP_PACKETS.labels("ok").inc()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, sink: RtpSink) -> None:
        self.sink = sink

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sink.datagram(data, (addr[0], addr[1]))


async def open_udp(host: str, port: int, sink: RtpSink) -> asyncio.BaseTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(sink),
                                                       local_addr=(host, port))  # fmt: skip
    sock = transport.get_extra_info("socket")
    if sock is not None:
        import socket

        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    return transport


class TcpPassive:
    """The listening socket and the device's connections of one TCP-passive stream."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in self.tasks:
            task.cancel()


async def open_tcp_passive(host: str, port: int, sink: RtpSink) -> TcpPassive:
    """Listen for the device's TCP connection; RFC 4571 frames into the sink."""
    media = TcpPassive()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            media.tasks.add(task)
        try:
            await read_4571(reader, writer, sink)
        finally:
            if task is not None:
                media.tasks.discard(task)

    media.server = await asyncio.start_server(handle, host, port)
    return media


async def read_4571(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sink: RtpSink
) -> None:
    """RFC 4571 frames from a TCP media connection (passive or active) into the sink until
    the device closes it; the stream then ends."""
    buffer = b""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            frames, buffer = split_4571(buffer + data)
            for frame in frames:
                sink.datagram(frame)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        sink.pipe.finish("the device closed the TCP media connection")


class TcpActive:
    """The hub's outgoing TCP connection of one TCP-active stream (RFC 4571 frames in)."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.writer is not None:
            self.writer.close()


async def open_tcp_active(host: str, port: int, sink: RtpSink, timeout_s: float) -> TcpActive:
    """Connect to the device's media port (retried for ``timeout_s``: devices often open
    it a moment after their answer) and read RFC 4571 frames into the sink."""
    media = TcpActive()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                    max(0.1, deadline - loop.time()))  # fmt: skip
            break
        except (OSError, TimeoutError) as exc:
            if loop.time() >= deadline:
                raise ConnectionError(f"cannot connect to the device's media port "
                                      f"{host}:{port}: {exc}") from None  # fmt: skip
            await asyncio.sleep(0.2)
    media.writer = writer

    media.task = loop.create_task(read_4571(reader, writer, sink))
    return media
