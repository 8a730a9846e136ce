"""RTP for GB/T 28181 media (RFC 3550; RFC 4571 over TCP): parse, reorder, filter,
and the sender side used by tests and the cascade. Pure."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass


class RtpError(ValueError):
    pass


@dataclass
class RtpPacket:
    seq: int
    timestamp: int
    ssrc: int
    payload_type: int
    marker: bool
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket:
    if len(data) < 12:
        raise RtpError(f"RTP packet of {len(data)} bytes is shorter than its header")
    b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
    if b0 >> 6 != 2:
        raise RtpError(f"RTP version {b0 >> 6}, expected 2")
    offset = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:  # header extension
        if len(data) < offset + 4:
            raise RtpError("truncated RTP header extension")
        (words,) = struct.unpack("!H", data[offset + 2 : offset + 4])
        offset += 4 + 4 * words
    end = len(data)
    if b0 & 0x20:  # padding
        end -= data[-1]
    if offset > end:
        raise RtpError("RTP header longer than the packet")
    return RtpPacket(seq, ts, ssrc, b1 & 0x7F, bool(b1 & 0x80), data[offset:end])


def build_rtp(seq: int, timestamp: int, ssrc: int, payload: bytes, *, marker: bool = False,
              payload_type: int = 96) -> bytes:  # fmt: skip
    second = (0x80 if marker else 0) | payload_type
    header = struct.pack("!BBHII", 0x80, second, seq & 0xFFFF, timestamp & 0xFFFFFFFF,
                         ssrc & 0xFFFFFFFF)  # fmt: skip
    return header + payload


def frame_4571(packet: bytes) -> bytes:
    """RFC 4571: a 16-bit length before each RTP packet on TCP."""
    return struct.pack("!H", len(packet)) + packet


def split_4571(buffer: bytes) -> tuple[list[bytes], bytes]:
    out: list[bytes] = []
    while len(buffer) >= 2:
        (n,) = struct.unpack("!H", buffer[:2])
        if len(buffer) < 2 + n:
            break
        out.append(buffer[2 : 2 + n])
        buffer = buffer[2 + n :]
    return out, buffer


@dataclass
class RtpStats:
    received: int = 0
    delivered: int = 0
    lost: int = 0  # sequence numbers given up on
    late: int = 0  # arrived after their place was passed (dropped)
    wrong_ssrc: int = 0
    malformed: int = 0


class Reorderer:
    """Puts RTP packets back in sequence order within a small window and drops those of
    another SSRC (a stale stream still sending to a reused port).

    ``expected_ssrc`` None: the first packet's SSRC is taken. A gap is waited for until
    ``window`` later packets have arrived, then counted lost.
    """

    #: Packets held at the start before the first one to deliver is chosen.
    START = 4

    def __init__(self, expected_ssrc: int | None = None, window: int = 64) -> None:
        self.ssrc = expected_ssrc
        self.window = window
        self.next_seq: int | None = None
        self.pending: dict[int, RtpPacket] = {}
        self.stats = RtpStats()

    def push(self, data: bytes) -> Iterator[RtpPacket]:
        """Feed one datagram; yield the packets now in order."""
        self.stats.received += 1
        try:
            pkt = parse_rtp(data)
        except RtpError:
            self.stats.malformed += 1
            return
        if self.ssrc is None:
            self.ssrc = pkt.ssrc
        if pkt.ssrc != self.ssrc:
            self.stats.wrong_ssrc += 1
            return
        if self.next_seq is None:  # the start: wait for a few so a swapped first pair is kept
            self.pending[pkt.seq] = pkt
            if len(self.pending) < self.START:
                return
            first = next(iter(self.pending))
            self.next_seq = min(self.pending, key=lambda q: ((q - first + 0x8000) & 0xFFFF))
            yield from self._drain()
            return
        behind = (self.next_seq - pkt.seq) & 0xFFFF
        if 0 < behind < 0x8000:  # already passed
            self.stats.late += 1
            return
        self.pending[pkt.seq] = pkt
        yield from self._drain()
        if len(self.pending) > self.window:  # give up on the gap
            while self.next_seq not in self.pending:
                self.stats.lost += 1
                self.next_seq = (self.next_seq + 1) & 0xFFFF
            yield from self._drain()

    def _drain(self) -> Iterator[RtpPacket]:
        assert self.next_seq is not None
        while self.next_seq in self.pending:
            pkt = self.pending.pop(self.next_seq)
            self.next_seq = (self.next_seq + 1) & 0xFFFF
            self.stats.delivered += 1
            yield pkt


def packetize(ps: bytes, *, seq: int, timestamp: int, ssrc: int,
              mtu_payload: int = 1400) -> list[bytes]:  # fmt: skip
    """One PS pack (a video frame's worth) cut into RTP packets, the last marked."""
    chunks = [ps[i : i + mtu_payload] for i in range(0, len(ps), mtu_payload)] or [b""]
    return [build_rtp(seq + i, timestamp, ssrc, c, marker=i == len(chunks) - 1)
            for i, c in enumerate(chunks)]  # fmt: skip
