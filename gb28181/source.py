"""The camera source of ``gb28181://<device>/<channel>`` URLs: an INVITE, then the
MPEG-PS carried over RTP demuxed by PyAV (``format="mpeg"``) into the same packets and
frames as an RTSP camera's. Registered with ``ingest.reader.SOURCE_OPENERS``; the
reader's reconnect loop re-invites with backoff when a stream dies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import av

from camera_registry.config import IngestConfig
from gb28181.channels import parse_source_url
from gb28181.media import MediaTimeout
from gb28181.server import InviteFailed, SipServer

log = logging.getLogger(__name__)


class GbSourceOpener:
    """``opener(url, ingest)`` is a context manager yielding the open container; leaving
    it closes the container and sends BYE (the RTP port is given back)."""

    def __init__(self, server: SipServer) -> None:
        self.server = server

    @contextmanager
    def __call__(self, url: str, ingest: IngestConfig) -> Iterator[av.container.InputContainer]:
        device_id, channel_id = parse_source_url(url)
        timeout = self.server.cfg.invite_timeout_s + 2
        session = self.server.call(self.server.invite(device_id, channel_id), timeout=timeout)
        try:
            try:
                # Small probe: PS from a GB device carries its PSM (the codec) and the
                # parameter sets with its keyframe; FFmpeg's default (5 s of analysis) would
                # hold the first frame back. 1 s analysis measured 2.0 s INVITE → frame,
                # 0.2 s: 0.9 s (bench/bench_gb28181.py).
                container = av.open(session.pipe, mode="r", format="mpeg",
                                    options={"probesize": "65536",
                                             "analyzeduration": "200000"})  # fmt: skip
            except (av.error.FFmpegError, MediaTimeout) as exc:
                # Bytes came but no stream was found in them: bad media, not a silent device.
                state = "no_media" if session.pipe.bytes_in == 0 else "bad_media"
                raise InviteFailed(state, f"channel {channel_id}: {state} "
                                   f"({session.pipe.bytes_in} bytes received): {exc}") from None
            video = container.streams.video
            if not video or video[0].codec_context is None:
                container.close()
                raise InviteFailed("bad_media", f"channel {channel_id}: bad_media: the PS "
                                   "carries no video stream this hub can decode")  # fmt: skip
            try:
                yield container
            finally:
                container.close()
        finally:
            try:
                self.server.call(self.server.bye(session), timeout=5)
            except Exception as exc:  # noqa: BLE001 - the port is freed by the server anyway
                log.info("GB channel %s: BYE failed: %s", channel_id, exc)
