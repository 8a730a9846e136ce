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
from concurrent.futures import Future, ThreadPoolExecutor
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


def _checked(storage: EvidenceStorage, seg: SegmentRecord) -> Any:
    """The segment to demux, its SHA-256 checked against its row first: a file on this
    host is hashed, then demuxed from its path (segments are never rewritten in place);
    an object in a bucket is read once, hashed and demuxed from memory."""
    digest = hashlib.sha256()
    local = storage.local_path(seg.key)
    data = b""
    with storage.open(seg.key) as f:
        if local is not None:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        else:
            data = f.read()
            digest.update(data)
    if digest.hexdigest() != seg.sha256:
        raise RangeError(f"segment {seg.key}: no longer matches its SHA-256")
    return str(local) if local is not None else io.BytesIO(data)


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
    ``verify``: each segment's SHA-256 is checked against its row first (an export); the
    next segment is read and hashed on a second thread while this one is remuxed (the
    hash releases the GIL), and the per-packet work is integer arithmetic only."""
    if not segments:
        raise RangeError("nothing recorded in that range")
    first = segments[0]
    usable = []
    for seg in segments:
        if (seg.codec, seg.width, seg.height) != (first.codec, first.width, first.height):
            break
        usable.append(seg)
        if seg.end >= end:
            break
    if isinstance(target, Path):
        options = {"movflags": "+faststart"} if faststart else {}
        output: Any = str(target)
    else:
        options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
        output = target
    result = RangeVideo(start=0.0, end=0.0, packets=0)
    pool = ThreadPoolExecutor(1, thread_name_prefix="recording-read") if verify else None
    ahead: Future[Any] | None = None
    if pool is not None:
        ahead = pool.submit(_checked, storage, usable[0])
    try:
        with av.open(output, mode="w", format="mp4", options=options) as out:
            stream = None
            tb: Fraction | None = None
            origin: float | None = None
            origin_ticks = 0  # ``origin`` in the output's ticks (epoch-based: exact sums)
            delay = 0  # the first keyframe's pts - dts (B-frames): its dts becomes 0
            last_dts = -1
            for i, seg in enumerate(usable):
                source: Any
                if ahead is not None and pool is not None:
                    source = ahead.result()
                    ahead = (
                        pool.submit(_checked, storage, usable[i + 1])
                        if i + 1 < len(usable)
                        else None
                    )
                else:
                    source = _open(storage, seg.key)
                with av.open(source, mode="r") as src:
                    vs = src.streams.video[0]
                    stb = vs.time_base or Fraction(1, 90000)
                    if stream is None:
                        stream = out.add_stream_from_template(vs)
                        stream.time_base = stb
                        tb = stb
                    assert tb is not None
                    packets = [p for p in src.demux(vs) if p.size and p.pts is not None
                               and p.dts is not None]  # fmt: skip
                    if not packets:
                        continue
                    base = min(min(p.pts for p in packets), min(p.dts for p in packets))  # type: ignore[type-var]
                    to_s = float(stb)
                    scale = stb / tb  # 1 unless a segment has another time base
                    begin = 0
                    if origin is None:  # the keyframe at or before ``start``
                        keys = [k for k, p in enumerate(packets)
                                if p.is_keyframe and seg.start + (p.pts - base) * to_s <= start]  # type: ignore[operator]  # fmt: skip
                        begin = keys[-1] if keys else 0
                        if not packets[begin].is_keyframe:
                            continue
                        origin = seg.start + (packets[begin].pts - base) * to_s  # type: ignore[operator]
                        origin_ticks = int(round(origin / float(tb)))
                        delay = int(packets[begin].pts - packets[begin].dts)  # type: ignore[operator]
                        result.start = origin
                    # ticks (segment's time base) past which a packet is after ``end``
                    limit = (end - seg.start) / to_s + base
                    whole = seg.end <= end  # no packet of it is past the end
                    offset = int(round(seg.start / float(tb))) - origin_ticks + delay
                    used = 0
                    top = 0
                    for p in packets[begin:]:
                        pts = p.pts
                        if not whole and pts > limit:  # type: ignore[operator]
                            if p.is_keyframe:
                                break
                            continue
                        rel_pts, rel_dts = pts - base, p.dts - base  # type: ignore[operator]
                        if scale != 1:
                            rel_pts, rel_dts = int(rel_pts * scale), int(rel_dts * scale)
                        dts = rel_dts + offset
                        if dts <= last_dts:
                            continue
                        last_dts = dts
                        p.pts, p.dts = rel_pts + offset, dts
                        p.time_base = tb
                        p.stream = stream
                        out.mux(p)
                        used += 1
                        top = max(top, pts + (p.duration or 0))  # type: ignore[operator]
                    if used:
                        result.packets += used
                        result.end = max(result.end, seg.start + (top - base) * to_s)
                        result.segments.append({"key": seg.key, "sha256": seg.sha256,
                                                "start": seg.start, "end": seg.end})  # fmt: skip
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if not result.packets:
        if isinstance(target, Path):
            target.unlink(missing_ok=True)
        raise RangeError("no frame recorded in that range")
    return result
