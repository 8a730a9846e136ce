"""Codec parameter sets in a keyframe (pure byte parsing, no I/O): a camera that changes
resolution or codec profile mid-stream sends a new SPS with its next keyframe; the
recorder starts a new segment there, with the new parameters in its header."""

from __future__ import annotations

#: NAL unit types of the parameter sets: H.264 SPS/PPS; H.265 VPS/SPS/PPS.
_H264_PARAMS = {7, 8}
_H265_PARAMS = {32, 33, 34}


def _annexb_units(data: bytes) -> list[bytes]:
    units: list[bytes] = []
    i, n = 0, len(data)
    starts: list[int] = []
    while True:
        j = data.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        starts.append(j + 3)
        i = j + 3
    for k, begin in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else n
        unit = data[begin:end]
        while unit.endswith(b"\x00") and k + 1 < len(starts):  # the next start code's zero
            unit = unit[:-1]
        if unit:
            units.append(unit)
    return units


def is_annexb(data: bytes) -> bool:
    return data.startswith(b"\x00\x00\x01") or data.startswith(b"\x00\x00\x00\x01")


def nal_type(codec: str, unit: bytes) -> int:
    return (unit[0] >> 1) & 0x3F if codec in ("hevc", "h265") else unit[0] & 0x1F


def parameter_sets(codec: str, data: bytes) -> bytes | None:
    """The parameter-set NAL units a keyframe carries in-band (Annex B, each with a start
    code), or None when it carries none (length-prefixed packets from an MP4 file keep
    them in the stream header instead)."""
    if codec not in ("h264", "hevc", "h265") or not is_annexb(data):
        return None
    wanted = _H265_PARAMS if codec in ("hevc", "h265") else _H264_PARAMS
    units = [u for u in _annexb_units(data) if nal_type(codec, u) in wanted]
    if not units:
        return None
    return b"".join(b"\x00\x00\x00\x01" + u for u in units)
