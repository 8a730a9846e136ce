"""An MPEG-2 Program Stream muxer as GB/T 28181 devices write it (pure).

Each video access unit becomes one PS "pack": a pack header, on keyframes a system
header and the program stream map (stream type 0x1B H.264 / 0x24 H.265), then PES
packets of at most 65,400 bytes (only the first carries the PTS). Used by the test
peers to send real clips as a device would, and by the cascade to forward a channel.
"""

from __future__ import annotations

import struct

STREAM_TYPES = {"h264": 0x1B, "hevc": 0x24, "h265": 0x24}
_PES_MAX = 65_400


def _ts_bytes(prefix: int, ts: int) -> bytes:
    ts &= (1 << 33) - 1
    return bytes([
        (prefix << 4) | (((ts >> 30) & 0x07) << 1) | 1,
        (ts >> 22) & 0xFF, (((ts >> 15) & 0x7F) << 1) | 1,
        (ts >> 7) & 0xFF, ((ts & 0x7F) << 1) | 1,
    ])  # fmt: skip


def pack_header(scr: int, mux_rate: int = 6106) -> bytes:
    scr &= (1 << 33) - 1
    return bytes([
        0x00, 0x00, 0x01, 0xBA,
        0x40 | ((scr >> 27) & 0x38) | 0x04 | ((scr >> 28) & 0x03),
        (scr >> 20) & 0xFF,
        ((scr >> 12) & 0xF8) | 0x04 | ((scr >> 13) & 0x03),
        (scr >> 5) & 0xFF,
        ((scr << 3) & 0xF8) | 0x04,
        0x01,
        (mux_rate >> 14) & 0xFF, (mux_rate >> 6) & 0xFF, ((mux_rate << 2) & 0xFC) | 0x03,
        0xF8,
    ])  # fmt: skip


def system_header(rate_bound: int = 50_000) -> bytes:
    body = bytes([
        0x80 | ((rate_bound >> 15) & 0x7F), (rate_bound >> 7) & 0xFF,
        ((rate_bound << 1) & 0xFE) | 0x01,
        0x04, 0xE1, 0xFF,
        0xE0, 0xE8, 0x00,  # video stream E0, buffer bound
    ])  # fmt: skip
    return b"\x00\x00\x01\xbb" + struct.pack("!H", len(body)) + body


def program_stream_map(stream_type: int) -> bytes:
    es_map = bytes([stream_type, 0xE0, 0x00, 0x00])
    body = bytes([0xE0, 0xFF]) + struct.pack("!H", 0) + struct.pack("!H", len(es_map)) + es_map
    body += b"\x00\x00\x00\x00"  # CRC_32 (readers do not check it)
    return b"\x00\x00\x01\xbc" + struct.pack("!H", len(body)) + body


def pes(payload: bytes, pts: int | None) -> bytes:
    header = bytes([0x80, 0x80 if pts is not None else 0x00, 5 if pts is not None else 0])
    if pts is not None:
        header += _ts_bytes(0x2, pts)
    return b"\x00\x00\x01\xe0" + struct.pack("!H", len(header) + len(payload)) + header + payload


def mux_access_unit(annexb: bytes, pts: int, *, keyframe: bool, codec: str = "h264") -> bytes:
    """One access unit (Annex B) as a PS pack; ``pts`` on the 90 kHz clock."""
    out = bytearray(pack_header(pts))
    if keyframe:
        out += system_header() + program_stream_map(STREAM_TYPES[codec])
    for i in range(0, max(1, len(annexb)), _PES_MAX):
        out += pes(annexb[i : i + _PES_MAX], pts if i == 0 else None)
    return bytes(out)
