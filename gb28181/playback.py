"""A device's recording (GB/T 28181 §9.8 playback) fetched into an MP4 clip.

RecordInfo times are the device's local times (``YYYY-MM-DDThh:mm:ss``, no zone): they
are read and written in the hub's time zone. The playback INVITE (``s=Playback``,
``t=start end``) streams PS over RTP like a live stream; its H.264/H.265 is remuxed into
MP4 by PyAV as it comes (no decoding, no re-encoding) until the range is covered, the
device ends the stream (BYE, MediaStatus 121) or stops sending.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

import av

from gb28181.media import MediaTimeout
from gb28181.server import InviteFailed, SipServer

log = logging.getLogger(__name__)

#: The longest range one playback fetches: devices play back in real time, so a clip,
#: not a day of video.
MAX_RANGE_S = 600


def local_time(epoch: float, tz: str) -> str:
    """Epoch seconds as the device's local time text."""
    return datetime.fromtimestamp(epoch, ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M:%S")


def epoch_of(text: str | None, tz: str) -> float | None:
    """A device's local time text as epoch seconds (None: missing or unreadable)."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value.timestamp()


@dataclass
class Clip:
    path: Path
    packets: int
    duration_s: float
    codec: str
    width: int
    height: int
    ended_by: str  # range covered, device ended, no more media


def fetch_clip(server: SipServer, device_id: str, channel_id: str, start: int, end: int,
               path: Path, timeout_s: float | None = None) -> Clip:  # fmt: skip
    """Play the device's recording of ``[start, end]`` (epoch seconds) into ``path`` (MP4).
    :class:`InviteFailed` (state ``invite_failed``, ``no_media``, ``bad_media``) when the
    device refuses or sends nothing usable."""
    if not 0 < end - start <= MAX_RANGE_S:
        raise ValueError(f"the range must be 1 s to {MAX_RANGE_S} s long")
    timeout = server.cfg.invite_timeout_s + 2
    session = server.call(server.invite(device_id, channel_id, playback=(start, end)), timeout)
    want = end - start
    try:
        try:
            container = av.open(
                session.pipe,
                mode="r",
                format="mpeg",
                options={"probesize": "65536", "analyzeduration": "200000"},
            )
        except (av.error.FFmpegError, MediaTimeout) as exc:
            state = "no_media" if session.pipe.bytes_in == 0 else "bad_media"
            raise InviteFailed(
                state,
                f"playback of {channel_id}: {state} "
                f"({session.pipe.bytes_in} bytes received): {exc}",
            ) from None
        with container:
            if not container.streams.video:
                raise InviteFailed("bad_media", f"playback of {channel_id}: no video stream")
            stream = container.streams.video[0]
            tb = stream.time_base or Fraction(1, 90000)
            packets, first, last, ended_by = 0, None, None, "the device ended the stream"
            with av.open(str(path), mode="w", format="mp4") as out:
                ostream = out.add_stream_from_template(stream)
                try:
                    for packet in container.demux(stream):
                        if not packet.size or packet.dts is None:
                            continue
                        if first is None:
                            if not packet.is_keyframe:
                                continue  # an MP4 starts on a keyframe
                            first = packet.dts
                        if last is not None and packet.dts <= last:
                            continue  # the muxer refuses non-increasing dts
                        last = packet.dts
                        packet.stream = ostream
                        out.mux(packet)
                        packets += 1
                        if float((last - first) * tb) >= want:
                            ended_by = "range covered"
                            break
                except MediaTimeout:
                    ended_by = "no more media"
            if first is None or last is None:
                path.unlink(missing_ok=True)
                raise InviteFailed("no_media", f"playback of {channel_id}: no keyframe came")
            cc = stream.codec_context
            clip = Clip(path, packets, round(float((last - first) * tb), 3), cc.name,
                        cc.width, cc.height, ended_by)  # fmt: skip
    finally:
        try:
            server.call(server.bye(session), timeout=5)
        except Exception as exc:  # noqa: BLE001 - the port is freed by the server anyway
            log.info("GB playback of %s: BYE failed: %s", channel_id, exc)
    log.info("GB playback of %s %d-%d: %d packets, %.1f s (%s)", channel_id, start, end,
             clip.packets, clip.duration_s, clip.ended_by)  # fmt: skip
    return clip
