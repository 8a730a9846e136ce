"""A recorded range as an HLS playlist (RFC 8216, version 7) of fragmented-MP4 media
segments: what the console's player (hls.js on Media Source Extensions in Chromium) and
any HLS player (VLC, ffplay, Safari) play, seek in and play at 1x-8x.

Each recording segment (a plain faststart MP4 of about 10 s) is one HLS media segment;
it is remuxed on request (no re-encoding: a few milliseconds of CPU) into an init part
(``ftyp`` + ``moov``, the ``EXT-X-MAP``) and a media part (``moof`` + ``mdat``) whose
decode times continue the playlist's timeline (``tfdt`` = the sum of the segments before
it), so a seek costs one segment's remux. ``EXT-X-PROGRAM-DATE-TIME`` on every segment
gives its wall-clock start (the player maps its position to the time of day with it);
a gap in the recording or a change of codec or size is an ``EXT-X-DISCONTINUITY`` (a new
``EXT-X-MAP`` for a new size). ``EXT-X-START`` puts the player at the asked-for time.

The playlist text is pure (unit-tested); :func:`fragment` does the remux.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import av

from core.storage import EvidenceStorage

#: A pause between two segments longer than this is a gap (a discontinuity).
GAP_S = 1.0
#: The mp4 muxer's options for a media part that continues the playlist's timeline: its
#: decode times kept as given (no shift to zero, no edit list), one fragment per keyframe.
FRAGMENT_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof+frag_discont",
    "avoid_negative_ts": "disabled",
    "use_editlist": "0",
}


@dataclass(frozen=True)
class PlaylistSegment:
    """What the playlist needs of a recording segment (its index row)."""

    id: str
    start: float
    end: float
    codec: str
    width: int
    height: int


@dataclass(frozen=True)
class Entry:
    """A media segment of the playlist: its place on the player's timeline."""

    segment: PlaylistSegment
    offset: float  # seconds from the playlist's start (the sum of the EXTINFs before it)
    discontinuity: bool
    new_map: bool


def plan(segments: Sequence[PlaylistSegment]) -> list[Entry]:
    """Each segment's offset on the playlist's timeline, oldest first; a discontinuity
    after a gap or at a new codec or size (then a new init part too)."""
    entries: list[Entry] = []
    offset = 0.0
    prev: PlaylistSegment | None = None
    for seg in sorted(segments, key=lambda s: s.start):
        if seg.end <= seg.start:
            continue
        new_map = prev is None or (seg.codec, seg.width, seg.height) != (
            prev.codec, prev.width, prev.height)  # fmt: skip
        gap = prev is not None and seg.start - prev.end > GAP_S
        entries.append(Entry(seg, offset, prev is not None and (gap or new_map), new_map))
        offset += seg.end - seg.start
        prev = seg
    return entries


def _pdt(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")  # fmt: skip


def position(entries: Sequence[Entry], t: float) -> float:
    """The player's position (seconds) showing wall time ``t``: inside a segment, or the
    start of the next one after a gap."""
    for e in entries:
        if t < e.segment.end:
            return e.offset + max(0.0, t - e.segment.start)
    if not entries:
        return 0.0
    last = entries[-1]
    return last.offset + last.segment.end - last.segment.start


def playlist(
    entries: Sequence[Entry],
    start: float,
    *,
    init_url: Callable[[PlaylistSegment], str],
    media_url: Callable[[Entry], str],
) -> str:
    """The VOD playlist; the player starts at wall time ``start`` (``EXT-X-START``)."""
    if not entries:
        raise ValueError("a playlist needs at least one segment")
    target = max(math.ceil(e.segment.end - e.segment.start) for e in entries)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}",
             "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-INDEPENDENT-SEGMENTS",
             f"#EXT-X-START:TIME-OFFSET={position(entries, start):.3f},PRECISE=YES"]  # fmt: skip
    for e in entries:
        if e.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if e.new_map:
            lines.append(f'#EXT-X-MAP:URI="{init_url(e.segment)}"')
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(e.segment.start)}")
        lines.append(f"#EXTINF:{e.segment.end - e.segment.start:.3f},")
        lines.append(media_url(e))
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _source(storage: EvidenceStorage, key: str) -> Any:
    local = storage.local_path(key)
    if local is not None:
        return str(local)
    with storage.open(key) as f:  # a bucket: one segment (a few MB) in memory
        return io.BytesIO(f.read())


def fragment(storage: EvidenceStorage, key: str, offset: float) -> tuple[bytes, bytes]:
    """The segment stored at ``key`` as (init part, media part), its decode times starting
    at ``offset`` seconds (its place on the playlist's timeline). Raises av errors for an
    unreadable file and ``ValueError`` for one without a frame."""
    out_buf = io.BytesIO()
    packets = 0
    with av.open(_source(storage, key), mode="r") as src:
        vs = src.streams.video[0]
        tb = vs.time_base or Fraction(1, 90000)
        with av.open(out_buf, mode="w", format="mp4", options=FRAGMENT_OPTIONS) as out:
            stream = out.add_stream_from_template(vs)
            stream.time_base = tb
            shift: int | None = None
            last = -1
            for p in src.demux(vs):
                if not p.size or p.dts is None or p.pts is None:
                    continue
                if shift is None:  # the first decode time lands on ``offset``
                    shift = int(round(offset / float(tb))) - int(p.dts)
                dts = int(p.dts) + shift
                if dts <= last:
                    continue
                last = dts
                p.dts, p.pts = dts, int(p.pts) + shift
                p.stream = stream
                out.mux(p)
                packets += 1
    if not packets:
        raise ValueError(f"segment {key}: no frame")
    data = out_buf.getvalue()
    cut = data.find(b"moof") - 4
    if cut < 0:
        raise ValueError(f"segment {key}: no fragment written")
    return data[:cut], data[cut:]
