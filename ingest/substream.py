"""Sub streams (子码流) for live view: opened while someone watches, closed after.

A camera's main stream is read all the time by its worker (analysis, clips, recording,
the main-stream live view). Its sub stream — the camera's second, smaller encoding — is
only for the video wall: 9 or 16 main streams of 1080p are more than a browser decodes
well, their sub streams are not. A :class:`SubStream` opens the sub stream's URL when the
first viewer wants it, demuxes it (no decoding: a copy of the bytes, as for the main
stream) into a :class:`~ingest.live.LiveFeed`, and closes it when the last viewer has been
gone for :data:`LINGER_S` seconds. A failed connection is retried with backoff while
someone still wants the stream; the reason is kept (masked) for the tile to show.

:class:`SubStreams` holds them, one per camera, in the process serving the API (the
embedded hub or an API node of the distributed mode: a sub stream needs no lease and no
worker, only the camera's URL and credentials).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import av

from camera_registry.config import IngestConfig, SourceConfig
from camera_registry.urls import mask_secrets, with_credentials
from ingest.live import LiveFeed
from ingest.reader import open_container

log = logging.getLogger(__name__)

#: Seconds a sub stream stays open after its last viewer left (a tile switched, a page
#: reloaded: the next viewer starts at once on the kept GOP).
LINGER_S = 10.0
#: Wait before retrying a failed connection (doubled up to ingest.reconnect_max_s).
RETRY_S = 0.5


@dataclass(frozen=True)
class SubSource:
    """A sub stream to open: its URL (no credentials) and the camera's credentials."""

    camera_id: str
    url: str
    username: str | None
    password: str | None
    source: SourceConfig  # transport options

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.password,) if s)

    @classmethod
    def of(cls, camera_id: str, source: SourceConfig | None) -> SubSource | None:
        """The camera's sub stream (None: it has none), with the main stream's credentials
        (or its ONVIF account's)."""
        if source is None or source.sub_url is None:
            return None
        username, password = source.username, source.password
        if username is None and source.onvif is not None:
            username, password = source.onvif.username, source.onvif.password
        return cls(camera_id, source.sub_url, username, password, source)


class SubStream:
    """One camera's sub stream: a demux thread feeding a :class:`LiveFeed`."""

    def __init__(self, sub: SubSource, ingest: IngestConfig, linger_s: float = LINGER_S) -> None:
        self.sub = sub
        self.ingest = ingest
        self.linger_s = linger_s
        self.feed = LiveFeed()
        self.last_error: str | None = None
        self._wanted_at = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sub-{sub.camera_id}", daemon=True)

    def start(self) -> SubStream:
        self._thread.start()
        return self

    def want(self) -> None:
        """A viewer is about to subscribe: keep the stream open."""
        self._wanted_at = time.monotonic()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def idle(self) -> bool:
        return self.feed.viewers == 0 and time.monotonic() - self._wanted_at > self.linger_s

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        wait = RETRY_S
        try:
            while not self._stop.is_set() and not self.idle():
                try:
                    self._read()
                    wait = RETRY_S
                except (av.error.FFmpegError, OSError, StopIteration) as exc:
                    self.last_error = mask_secrets(f"{type(exc).__name__}: {exc}", self.sub.secrets)
                    log.info(
                        "camera %s: sub stream failed: %s", self.sub.camera_id, self.last_error
                    )
                    self.feed.end()
                    self._stop.wait(wait)
                    wait = min(wait * 2, self.ingest.reconnect_max_s)
        except Exception:  # noqa: BLE001 - logged; the next viewer opens a new one
            log.exception("camera %s: sub stream stopped", self.sub.camera_id)
        finally:
            self._stop.set()
            self.feed.end()

    def _read(self) -> None:
        url = with_credentials(self.sub.url, self.sub.username, self.sub.password)
        container = open_container(url, self.sub.source, self.ingest)
        try:
            stream = container.streams.video[0]
            self.feed.stream_opened(stream)
            self.last_error = None
            log.info("camera %s: sub stream open (%s)", self.sub.camera_id,
                     stream.codec_context.name)  # fmt: skip
            for packet in container.demux(stream):
                if self._stop.is_set() or self.idle():
                    return
                if packet.size == 0 or packet.dts is None:
                    continue
                self.feed.packet(packet)
            raise OSError("the sub stream ended")
        finally:
            container.close()


class SubStreams:
    """The open sub streams of this process, one per camera; thread-safe."""

    def __init__(self, ingest: IngestConfig, linger_s: float = LINGER_S) -> None:
        self.ingest = ingest
        self.linger_s = linger_s
        self._lock = threading.Lock()
        self._streams: dict[str, SubStream] = {}
        self._closed = False

    def open(self, sub: SubSource) -> SubStream:
        """The camera's sub stream, opened (or kept open) for a viewer about to subscribe."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the hub is stopping")
            current = self._streams.get(sub.camera_id)
            if current is not None and current.alive and current.sub == sub:
                current.want()
                return current
            if current is not None:
                current.stop()
            stream = self._streams[sub.camera_id] = SubStream(sub, self.ingest, self.linger_s)
            return stream.start()

    def get(self, camera_id: str) -> SubStream | None:
        with self._lock:
            return self._streams.get(camera_id)

    def open_count(self) -> int:
        with self._lock:
            return sum(1 for s in self._streams.values() if s.alive)

    def viewers(self, camera_id: str) -> int:
        stream = self.get(camera_id)
        return stream.feed.viewers if stream is not None and stream.alive else 0

    def close(self, timeout: float = 5.0) -> None:
        """Stop every sub stream (the hub stops)."""
        with self._lock:
            self._closed = True
            streams = list(self._streams.values())
            self._streams.clear()
        for stream in streams:
            stream.stop()
        deadline = time.monotonic() + timeout
        for stream in streams:
            stream.join(max(0.0, deadline - time.monotonic()))
