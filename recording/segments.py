"""MP4 segments written from a camera's own packets (PyAV remux, never a decoder in the
steady state).

The open segment is a *fragmented* MP4 at a temporary name in the host's spool folder
(one fragment per keyframe): a crash leaves a file whose complete fragments still read.
When the segment closes it is remuxed into a plain MP4 with its index in front
(``movflags=+faststart``: a browser starts playing before the whole file arrived) and
handed to the storage, which writes it under a temporary name and renames it.

The start time of a segment (epoch seconds of its first keyframe's arrival) is in the
spool file's name, so a crash loses nothing that the file still holds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from core.secrets import make_private_dir
from ingest.ring import BufferedPacket, StreamTemplate

log = logging.getLogger(__name__)

FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
FASTSTART = {"movflags": "+faststart"}
PART_SUFFIX = ".part.mp4"


@dataclass
class SegmentFormat:
    """What a segment's header says: the codec parameters (a template stream), and the
    codec and size shown in the index."""

    template: StreamTemplate
    codec: str
    width: int
    height: int
    params: bytes | None = None  # in-band parameter sets seen last (Annex B)

    @classmethod
    def of(cls, template: StreamTemplate, codec: str) -> SegmentFormat:
        """``codec``: the decoder's name of the camera's stream (``h264``, ``hevc``)."""
        ctx = template.stream.codec_context
        return cls(template, codec, int(ctx.width or 0), int(ctx.height or 0))

    def with_params(self, params: bytes, keyframe: bytes) -> SegmentFormat:
        """This format with new in-band parameter sets (a resolution or profile change):
        its size learnt by decoding that one keyframe."""
        width, height = self.width, self.height
        try:
            decoder = av.CodecContext.create(self.codec, "r")
            frames = decoder.decode(  # type: ignore[attr-defined]
                av.Packet(keyframe)
            )
            if frames:
                width, height = frames[0].width, frames[0].height
        except (av.error.FFmpegError, ValueError) as exc:
            log.warning("new %s parameters: size unknown (%s)", self.codec, exc)
        return SegmentFormat(self.template, self.codec, width, height, params)


def _add_stream(
    out: av.container.OutputContainer, fmt: SegmentFormat
) -> av.video.stream.VideoStream:
    stream = out.add_stream_from_template(fmt.template.stream)
    stream.time_base = fmt.template.time_base
    if fmt.params is not None:  # parameters changed since the connection opened
        stream.codec_context.width = fmt.width
        stream.codec_context.height = fmt.height
        stream.codec_context.extradata = fmt.params
    return stream


class OpenSegment:
    """The segment being written (on the recorder's thread)."""

    def __init__(self, path: Path, fmt: SegmentFormat, start: float) -> None:
        self.path = path
        self.fmt = fmt
        self.start = start
        make_private_dir(path.parent.parent)  # owner only, like the evidence (0700)
        make_private_dir(path.parent)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))  # owner only
        self._out = av.open(str(path), mode="w", format="mp4", options=FRAGMENTED)
        self._stream = _add_stream(self._out, fmt)
        self._base: int | None = None
        self._last_dts: int | None = None
        self._end_pts = 0
        self.packets = 0
        self.bytes = 0

    @property
    def duration_s(self) -> float:
        return float(self._end_pts * self.fmt.template.time_base)

    def write(self, p: BufferedPacket) -> None:
        pts = p.pts if p.pts is not None else p.dts
        dts = p.dts if p.dts is not None else p.pts
        if pts is None or dts is None:
            return
        if self._base is None and not p.keyframe:
            return  # a segment opens on a keyframe with a timestamp
        if self._base is None:
            self._base = min(pts, dts)
            self.start = p.t
        pts, dts = pts - self._base, dts - self._base
        if dts < 0 or (self._last_dts is not None and dts <= self._last_dts):
            return  # the muxer would refuse it
        self._last_dts = dts
        packet = av.Packet(p.data)
        packet.pts, packet.dts, packet.duration = pts, dts, p.duration
        packet.time_base = self.fmt.template.time_base
        packet.is_keyframe = p.keyframe
        packet.stream = self._stream
        self._out.mux(packet)
        self._end_pts = max(self._end_pts, pts + max(p.duration, 0))
        self.packets += 1
        self.bytes += len(p.data)

    def close(self) -> None:
        try:
            self._out.close()
        except (av.error.FFmpegError, ValueError) as exc:
            log.warning("segment %s: closing: %s", self.path.name, exc)


@dataclass(frozen=True)
class FinishedSegment:
    data: bytes  # the MP4 (faststart)
    start: float
    end: float
    codec: str
    width: int
    height: int
    packets: int


def part_name(camera_id: str, start: float, mode: str) -> str:
    return f"{camera_id}/{int(start * 1000)}_{mode}{PART_SUFFIX}"


def parse_part_name(path: Path) -> tuple[float, str] | None:
    """(start, mode) from a spool file's name; None for a name that is not one."""
    stem = path.name.removesuffix(PART_SUFFIX)
    ms, _, mode = stem.partition("_")
    if not ms.isdigit() or mode not in ("continuous", "events", "motion", "objects"):
        return None
    return int(ms) / 1000, mode


def finalize(part: Path, start: float) -> FinishedSegment | None:
    """Remux a spool file (complete or cut short by a crash) into a faststart MP4; None
    when not one packet can be read from it. Raises av errors for a file that is not an
    MP4 at all."""
    with av.open(str(part), mode="r") as src:
        if not src.streams.video:
            return None
        stream = src.streams.video[0]
        ctx = stream.codec_context
        tb = stream.time_base or Fraction(1, 90000)
        path = part.with_name(part.name + ".final.tmp")
        packets, first, last = 0, None, 0
        try:
            with av.open(str(path), mode="w", format="mp4", options=FASTSTART) as out:
                target = out.add_stream_from_template(stream)
                for packet in src.demux(stream):
                    if packet.size == 0 or packet.dts is None or packet.pts is None:
                        continue
                    first = packet.pts if first is None else min(first, packet.pts)
                    last = max(last, packet.pts + (packet.duration or 0))
                    packet.stream = target
                    out.mux(packet)
                    packets += 1
            data = path.read_bytes() if packets else b""
        except av.error.FFmpegError:
            if not packets:
                raise
            data = path.read_bytes() if path.exists() else b""
        finally:
            path.unlink(missing_ok=True)
    if not packets or not data:
        return None
    span = float((last - (first or 0)) * tb)
    return FinishedSegment(data, start, start + span, ctx.name, int(ctx.width or 0),
                           int(ctx.height or 0), packets)  # fmt: skip


def spool_files(spool: Path) -> Iterator[Path]:
    if spool.is_dir():
        yield from sorted(spool.glob(f"*/*{PART_SUFFIX}"))


def remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
