"""A camera's recorded range as one MP4: its segments' packets remuxed back to back (no
re-encoding), from the keyframe at or before the range's start to its end, timestamps
from the segments' wall-clock starts (a gap in the recording is a gap in the file).

Segments with other parameters than the first (a resolution change) end the file: one
MP4, one set of parameters; ``RangeVideo.end`` says where it stopped.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av

from core.storage import EvidenceStorage
from recording.store import SegmentRecord


class RangeError(ValueError):
    """A range that cannot be served (nothing recorded, altered segment)."""


@dataclass
class RangeVideo:
    start: float  # wall time of the first frame written
    end: float  # wall time after the last frame written
    packets: int
    segments: list[dict[str, Any]] = field(default_factory=list)  # what it was made from


def _open(storage: EvidenceStorage, key: str) -> Any:
    local = storage.local_path(key)
    return str(local) if local is not None else storage.open(key)


def write_range(
    storage: EvidenceStorage,
    segments: Sequence[SegmentRecord],
    start: float,
    end: float,
    target: Path | BinaryIO,
    *,
    verify: bool = False,
    faststart: bool = True,
) -> RangeVideo:
    """Write [start, end] of ``segments`` (one camera's, oldest first) to ``target``: a
    file (faststart or not), or a stream that only writes (a zip entry): then a
    fragmented MP4, which needs no seeking back.
    ``verify``: each segment's SHA-256 is checked against its row first (an export)."""
    if not segments:
        raise RangeError("nothing recorded in that range")
    first = segments[0]
    if isinstance(target, Path):
        options = {"movflags": "+faststart"} if faststart else {}
        output: Any = str(target)
    else:
        options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
        output = target
    result = RangeVideo(start=0.0, end=0.0, packets=0)
    with av.open(output, mode="w", format="mp4", options=options) as out:
        stream = None
        tb: Fraction | None = None
        origin: float | None = None
        delay = 0  # the first keyframe's pts - dts (B-frames): its dts becomes 0
        last_dts = -1
        for seg in segments:
            if (seg.codec, seg.width, seg.height) != (first.codec, first.width, first.height):
                break
            source: Any = _open(storage, seg.key)
            if verify:  # read once (a segment is a few MB): hashed, then demuxed
                with storage.open(seg.key) as f:
                    data = f.read()
                if hashlib.sha256(data).hexdigest() != seg.sha256:
                    raise RangeError(f"segment {seg.key}: no longer matches its SHA-256")
                source = io.BytesIO(data)
            with av.open(source, mode="r") as src:
                vs = src.streams.video[0]
                stb = vs.time_base or Fraction(1, 90000)
                if stream is None:
                    stream = out.add_stream_from_template(vs)
                    stream.time_base = stb
                    tb = stb
                packets = [p for p in src.demux(vs) if p.size and p.pts is not None
                           and p.dts is not None]  # fmt: skip
                if not packets:
                    continue
                base = min(min(p.pts for p in packets), min(p.dts for p in packets))  # type: ignore[type-var]
                walls = [seg.start + float((p.pts - base) * stb) for p in packets]  # type: ignore[operator]
                begin = 0
                if origin is None:  # the keyframe at or before ``start``
                    keys = [i for i, p in enumerate(packets) if p.is_keyframe and walls[i] <= start]
                    begin = keys[-1] if keys else 0
                    if not packets[begin].is_keyframe:
                        continue
                    origin = walls[begin]
                    delay = int(packets[begin].pts - packets[begin].dts)  # type: ignore[operator]
                    result.start = origin
                used = 0
                assert tb is not None
                for p, wall in zip(packets[begin:], walls[begin:], strict=False):
                    if wall > end and p.is_keyframe:
                        break
                    if wall > end:
                        continue
                    offset = int(round((seg.start - origin) / float(tb))) + delay
                    pts = int(p.pts - base) + offset  # type: ignore[operator]
                    dts = int(p.dts - base) + offset  # type: ignore[operator]
                    if dts <= last_dts:
                        continue
                    last_dts = dts
                    p.pts, p.dts = pts, dts
                    p.time_base = tb
                    p.stream = stream
                    out.mux(p)
                    used += 1
                    result.end = max(result.end, wall + float((p.duration or 0) * stb))
                if used:
                    result.packets += used
                    result.segments.append({"key": seg.key, "sha256": seg.sha256,
                                            "start": seg.start, "end": seg.end})  # fmt: skip
            if seg.end >= end:
                break
    if not result.packets:
        if isinstance(target, Path):
            target.unlink(missing_ok=True)
        raise RangeError("no frame recorded in that range")
    return result
