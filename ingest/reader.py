"""Stream readers: PyAV demux + decode, frame sampling, pacing, reconnect.

Every reference frame of an H.264/H.265 stream must be decoded; a non-reference frame
(most B-frames) that will not be sampled is skipped undecoded (``SkipPlanner``), and only
the frames sampled at the camera's detect fps are converted to numpy, scaled by FFmpeg's
swscale in ``frame.reformat`` (no second resize in Python).
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from camera_registry.config import IngestConfig, SourceConfig
from camera_registry.status import RateMeter, StatusBoard
from camera_registry.urls import mask_secrets
from core import metrics

log = logging.getLogger(__name__)


class StreamError(RuntimeError):
    """A stream that cannot be opened or read; the message is already masked."""


#: Consecutive authentication failures before retries slow to ``ingest.auth_retry_s``:
#: cameras lock an account after a few wrong passwords, often for half an hour or more.
AUTH_FAILURES_BEFORE_BACKOFF = 3
AUTH_FAILED_MESSAGE = "authentication failed: check the camera's username and password"
# FFmpeg maps RTSP/HTTP 401 to AVERROR_HTTP_UNAUTHORIZED ("401 Unauthorized"); an
# ONVIF device answers "not authorized" in its SOAP fault.
_AUTH_RE = re.compile(
    r"\b401\b|unauthori[sz]ed|not authori[sz]ed|authentication failed|authori[sz]ation failed",
    re.IGNORECASE,
)


def is_auth_failure(exc: BaseException) -> bool:
    """Whether a failed connection was refused for its credentials."""
    if isinstance(exc, av.error.HTTPUnauthorizedError):
        return True
    return bool(_AUTH_RE.search(str(exc)))


#: Serialises conversions of decoded frames (see ``SampledFrame.source_bgr``).
_CONVERT_LOCK = threading.Lock()
#: One scaler per thread for ``source_bgr``: a frame's own ``to_ndarray`` builds a new
#: swscale context on every call (0.6 ms of a 0.8 ms conversion at 640x360).
_REFORMATTERS = threading.local()


def _thread_reformatter() -> VideoReformatter:
    reformatter: VideoReformatter | None = getattr(_REFORMATTERS, "reformatter", None)
    if reformatter is None:
        reformatter = _REFORMATTERS.reformatter = VideoReformatter()
    return reformatter


@dataclass
class SampledFrame:
    """One frame chosen for analysis."""

    camera_id: str
    image: np.ndarray  # BGR uint8 at the analysis size
    source: av.VideoFrame  # the decoded full-resolution frame, for snapshots
    source_size: tuple[int, int]
    pts: float  # stream time, seconds
    t: float  # rule clock: stream time in replay, monotonic time live
    wall_ts: float  # epoch seconds (stream-derived in replay)
    seq: int

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]

    def source_bgr(self) -> np.ndarray:
        # Two threads converting one decoded frame at once crash FFmpeg's scaler (the
        # evidence thread and a snapshot request, say): one conversion at a time.
        with _CONVERT_LOCK:
            return _thread_reformatter().reformat(self.source, format="bgr24").to_ndarray()


def backoff_delay(attempt: int, initial: float, maximum: float, jitter: float) -> float:
    """Exponential backoff with +-jitter, capped at ``maximum``."""
    base = min(maximum, initial * (2 ** max(0, attempt - 1)))
    return max(0.0, base * (1 + random.uniform(-jitter, jitter)))


def is_file_url(url: str) -> bool:
    scheme = urlsplit(url).scheme.lower()
    return scheme in ("", "file")


def file_path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path if parts.scheme.lower() == "file" else url


def open_container(
    url: str, source: SourceConfig, ingest: IngestConfig
) -> av.container.InputContainer:
    """Open a stream with the right options and timeouts (raises av errors)."""
    if is_file_url(url):
        return av.open(file_path(url), mode="r")
    options: dict[str, str] = {}
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("rtsp", "rtsps"):
        options["rtsp_transport"] = source.transport
        options["timeout"] = str(int(ingest.read_timeout_s * 1_000_000))
    elif scheme in ("http", "https"):
        options["rw_timeout"] = str(int(ingest.read_timeout_s * 1_000_000))
        options["reconnect"] = "0"
    return av.open(
        url, mode="r", options=options, timeout=(ingest.open_timeout_s, ingest.read_timeout_s)
    )


#: Sources FFmpeg does not open by URL, by scheme (``gb28181``: an INVITE, PS over RTP;
#: see gb28181/source.py). An opener is a context manager yielding the open container.
SOURCE_OPENERS: dict[
    str, Callable[[str, IngestConfig], AbstractContextManager[av.container.InputContainer]]
] = {}


@contextmanager
def open_source(
    url: str, source: SourceConfig, ingest: IngestConfig
) -> Iterator[av.container.InputContainer]:
    """The open container of a camera's source, closed on exit."""
    opener = SOURCE_OPENERS.get(urlsplit(url).scheme.lower())
    if opener is None and urlsplit(url).scheme.lower() == "gb28181":
        raise StreamError("GB/T 28181 channel, but the SIP server is not running (sip.enabled)")
    with opener(url, ingest) if opener else open_container(url, source, ingest) as container:
        yield container


class Sampler:
    """Chooses frames at ``fps`` on stream timestamps (deterministic for a clip)."""

    def __init__(self, fps: float) -> None:
        self.interval = 1.0 / fps
        self.next_pts: float | None = None

    def take(self, pts: float) -> bool:
        if self.next_pts is None or pts + 1e-6 >= self.next_pts:
            # After a jump (stream restart, long gap) realign instead of bursting.
            if self.next_pts is None or pts - self.next_pts > 2 * self.interval:
                self.next_pts = pts
            self.next_pts += self.interval
            return True
        if pts < self.next_pts - 4 * self.interval:
            self.next_pts = pts + self.interval  # timestamps went backwards (loop)
            return True
        return False


def analysis_size(src_w: int, src_h: int, box: tuple[int, int]) -> tuple[int, int]:
    """Largest size with the source's aspect ratio inside ``box``, never upscaling."""
    scale = min(box[0] / src_w, box[1] / src_h, 1.0)
    return max(2, int(src_w * scale) // 2 * 2), max(2, int(src_h * scale) // 2 * 2)


@dataclass
class DecodeStats:
    """What one pass over a stream decoded; ``undecodable`` names data loss."""

    packets: int = 0
    frames: int = 0
    skipped: int = 0  # non-reference frames left undecoded (not sampled: nothing lost)
    errors: int = 0
    last_error: str | None = None

    @property
    def undecodable(self) -> int:
        return max(0, self.packets - self.frames - self.skipped)

    def describe(self) -> str | None:
        if self.undecodable == 0:
            return None
        detail = f"; last error: {self.last_error}" if self.last_error else ""
        return (
            f"{self.undecodable} of {self.packets} packets did not decode (missing key "
            f"frame, truncated or corrupt data){detail}"
        )


class SkipPlanner:
    """Which packets the decoder may skip if they are non-reference frames.

    A frame the sampler will not take need not be decoded when no other frame refers to
    it: FFmpeg's ``skip_frame = NONREF`` drops such frames (most B-frames) before any
    pixel work, and keeps decoding every reference frame. A packet is skipped only when
    its timestamp proves the sampler would not take its frame, so the sampled frames
    are the same as with every frame decoded:

    * before the next sample time (and not so far before it that the sampler would take
      it as a timestamp going backwards), or
    * after another frame, already sent to the decoder whole and not yet out, that
      falls due first, when the frame also lies before the sample time after that one.

    Frames go out of the decoder in timestamp order, so a skip-mode packet whose
    timestamp is passed by a decoded frame without coming out was dropped; those are
    counted (``skipped``, ``on_skipped``) so that frame counts and rates still cover
    every frame of the stream and a skipped frame is not taken for lost data. Only
    streams with B-frames (the decoder's ``has_b_frames``) are skipped in: in one
    without, nearly every frame is a reference, and a frame that does not come out is
    lost data, not a skip (a corrupt frame sent in skip mode would count as skipped).
    """

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.pending: list[float] = []  # sent whole, not out yet (timestamps)
        self.unsure: list[float] = []  # sent in skip mode: decoded only if a reference

    def skippable(self, pts: float | None) -> bool:
        """Whether the frame of the packet at ``pts`` (stream seconds) will not be sampled."""
        due = self.sampler.next_pts
        if pts is None or due is None:
            return False
        interval = self.sampler.interval
        if due - 4 * interval <= pts < due - 1e-6:
            return True
        return pts < due + interval - 1e-6 and any(due - 1e-6 <= q < pts for q in self.pending)

    def sent(self, pts: float | None, skip: bool) -> None:
        if pts is not None:
            (self.unsure if skip else self.pending).append(pts)

    def out(self, pts: float) -> int:
        """A frame came out of the decoder; returns how many skip-mode frames were dropped."""
        if self.pending:
            self.pending = [q for q in self.pending if q > pts + 1e-9]
        if not self.unsure:
            return 0
        kept = [q for q in self.unsure if q > pts + 1e-9]
        dropped = sum(1 for q in self.unsure if q < pts - 1e-9)
        self.unsure = kept
        return dropped

    def end(self) -> int:
        """The stream ended (the decoder flushed): what was sent in skip mode and never
        came out was dropped."""
        dropped = len(self.unsure)
        self.unsure, self.pending = [], []
        return dropped


def iter_sampled_frames(
    container: av.container.InputContainer,
    *,
    camera_id: str,
    detect_fps: float,
    box: tuple[int, int],
    mode: str,
    max_decode_errors: int,
    realtime: bool = False,
    on_decoded: Callable[[av.VideoFrame], None] | None = None,
    on_packet: Callable[[av.Packet], None] | None = None,
    stop: threading.Event | None = None,
    seq_start: int = 0,
    stats: DecodeStats | None = None,
    skip_unsampled: bool = True,
    on_skipped: Callable[[int], None] | None = None,
) -> Iterator[SampledFrame]:
    """Decode the frames needed, yield the sampled ones converted to BGR at the analysis size.

    ``mode`` is "live" (rule clock = monotonic time) or "replay" (rule clock =
    stream time). ``realtime`` paces a file at its own speed. ``on_packet`` sees every
    demuxed packet of the video stream before it is decoded (evidence clips keep them).
    ``skip_unsampled`` leaves non-reference frames that will not be sampled undecoded
    (``SkipPlanner``: the same frames are sampled); ``on_skipped`` is told how many,
    ``on_decoded`` sees every decoded frame.
    """
    stream = container.streams.video[0]
    codec = stream.codec_context
    codec.thread_count = 1  # one decode thread per camera is cheapest
    stats = stats if stats is not None else DecodeStats()
    sampler = Sampler(detect_fps)
    planner = SkipPlanner(sampler) if skip_unsampled else None
    skipping = False
    codec.skip_frame = "DEFAULT"
    errors = 0
    seq = seq_start
    pace_origin: tuple[float, float] | None = None
    fallback_rate = float(stream.average_rate or 25)
    n_decoded = 0
    # This reader's own scaler, kept across frames: ``frame.to_ndarray(width=...)`` would
    # build a new swscale context for each frame (4x the cost of the conversion itself).
    reformatter = VideoReformatter()
    for packet in container.demux(stream):
        if stop is not None and stop.is_set():
            return
        if packet.size:
            stats.packets += 1
            if on_packet is not None:
                on_packet(packet)
            if planner is not None:
                pts_s = (
                    float(packet.pts * packet.time_base)
                    if packet.pts is not None and packet.time_base is not None
                    else None
                )
                skip = bool(codec.has_b_frames) and planner.skippable(pts_s)
                planner.sent(pts_s, skip)
                if skip != skipping:
                    codec.skip_frame = "NONREF" if skip else "DEFAULT"
                    skipping = skip
        elif planner is not None and skipping:
            codec.skip_frame = "DEFAULT"  # flushing: nothing left to skip
            skipping = False
        try:
            started = time.perf_counter()
            frames = packet.decode()
            metrics.DECODE_SECONDS.observe(time.perf_counter() - started)
        except av.error.InvalidDataError as exc:
            errors += 1
            stats.errors += 1
            stats.last_error = str(exc)
            if errors >= max_decode_errors:
                raise StreamError(
                    f"{errors} consecutive undecodable packets (last: {exc})"
                ) from exc
            continue
        errors = 0
        for frame in frames:
            n_decoded += 1
            stats.frames += 1
            if on_decoded is not None:
                on_decoded(frame)
            pts = float(frame.time) if frame.time is not None else n_decoded / fallback_rate
            if planner is not None and (dropped := planner.out(pts)):
                stats.skipped += dropped
                if on_skipped is not None:
                    on_skipped(dropped)
            if not sampler.take(pts):
                continue
            if realtime:
                now = time.monotonic()
                if pace_origin is None or pts < pace_origin[1]:
                    pace_origin = (now, pts)
                delay = pace_origin[0] + (pts - pace_origin[1]) - now
                if delay > 0 and stop is not None and stop.wait(delay):
                    return
                if delay > 0 and stop is None:
                    time.sleep(delay)
            w, h = analysis_size(frame.width, frame.height, box)
            image = reformatter.reformat(frame, width=w, height=h, format="bgr24").to_ndarray()
            seq += 1
            live = mode == "live"
            yield SampledFrame(
                camera_id=camera_id,
                image=image,
                source=frame,
                source_size=(frame.width, frame.height),
                pts=pts,
                t=time.monotonic() if live else pts,
                wall_ts=time.time() if live else pts,
                seq=seq,
            )
    if planner is not None and (dropped := planner.end()):
        stats.skipped += dropped
        if on_skipped is not None:
            on_skipped(dropped)


class PacketSink(Protocol):
    """Receives a camera's encoded video packets (for evidence clips, without re-encoding)."""

    def stream_opened(self, stream: av.video.stream.VideoStream) -> None:
        """A new connection: packets from now on belong to ``stream``."""

    def packet(self, packet: av.Packet) -> None:
        """One demuxed packet of that stream (called on the reader's thread: be quick)."""


class StreamReader(threading.Thread):
    """Reads one camera forever: open, decode, sample, hand frames on; reconnect.

    ``resolve_url`` returns the URL to open *with* credentials (it may probe an
    ONVIF device); it is called before each connection attempt, and what it
    raises counts as a failed attempt. Nothing unmasked is ever logged.
    """

    def __init__(
        self,
        camera_id: str,
        resolve_url: Callable[[], str],
        source: SourceConfig,
        ingest: IngestConfig,
        *,
        detect_fps: float,
        box: tuple[int, int],
        on_frame: Callable[[SampledFrame], None],
        status: StatusBoard,
        secrets: tuple[str, ...] = (),
        packet_sink: PacketSink | None = None,
    ) -> None:
        super().__init__(name=f"ingest-{camera_id}", daemon=True)
        self.packet_sink = packet_sink
        self.camera_id = camera_id
        self.resolve_url = resolve_url
        self.source = source
        self.ingest = ingest
        self.detect_fps = detect_fps
        self.box = box
        self.on_frame = on_frame
        self.status = status
        self.secrets = secrets
        self.stop_event = threading.Event()
        self._input_rate = RateMeter()
        self._seq = 0
        self._auth_failures = 0  # consecutive; reset only by a connection that delivers

    def stop(self) -> None:
        self.stop_event.set()

    def _mask(self, text: str) -> str:
        return mask_secrets(text, self.secrets)

    def run(self) -> None:
        attempt = 0
        while not self.stop_event.is_set():
            try:
                finished = self._session()
                attempt = 0
                if self.stop_event.is_set():
                    return  # whoever stopped the reader sets the camera's state
                if finished:
                    self.status.update(self.camera_id, state="finished")
                    log.info("camera %s: end of file", self.camera_id)
                    return
                continue  # file looped: reopen at once
            except Exception as exc:  # noqa: BLE001 - a camera must never crash the hub
                if self.stop_event.is_set():
                    return  # stopped while connecting: the camera is someone else's now
                attempt += 1
                state, message, delay = self._failure(exc, attempt)
                self.status.update(
                    self.camera_id,
                    state=state,
                    last_error=message,
                    last_error_at=time.time(),
                    input_fps=0.0,
                )
                log.warning(
                    "camera %s %s (%s); retry %d in %.1f s",
                    self.camera_id,
                    state,
                    message,
                    attempt,
                    delay,
                )
                if self.stop_event.wait(delay):
                    return
                self.status.update(
                    self.camera_id, reconnects=self.status.get(self.camera_id).reconnects + 1
                )

    def _failure(self, exc: Exception, attempt: int) -> tuple[str, str, float]:
        """(state, masked message, delay before the next attempt) after a failure.

        After :data:`AUTH_FAILURES_BEFORE_BACKOFF` authentication failures in a row the
        camera is ``auth_failed`` and tried every ``ingest.auth_retry_s`` only, so a
        wrong password does not lock the camera's account. Other failures in between
        (the camera rebooting) do not reset the count: only a working connection does.
        """
        message = self._mask(f"{type(exc).__name__}: {exc}")
        if is_auth_failure(exc):
            self._auth_failures += 1
            if self._auth_failures >= AUTH_FAILURES_BEFORE_BACKOFF:
                return "auth_failed", f"{AUTH_FAILED_MESSAGE} ({message})", self.ingest.auth_retry_s
        delay = backoff_delay(
            attempt,
            self.ingest.reconnect_initial_s,
            self.ingest.reconnect_max_s,
            self.ingest.reconnect_jitter,
        )
        return "offline", message, delay

    def _session(self) -> bool:
        """One connection. Returns True at the end of a non-looping file."""
        url = self.resolve_url()
        with open_source(url, self.source, self.ingest) as container:
            if not container.streams.video:
                raise StreamError("the source has no video stream")
            stream = container.streams.video[0]
            if self.packet_sink is not None:
                self.packet_sink.stream_opened(stream)
            self.status.update(
                self.camera_id,
                codec=stream.codec_context.name,
                resolution=(stream.codec_context.width, stream.codec_context.height),
            )
            first = True
            stats = DecodeStats()
            for sampled in iter_sampled_frames(
                container,
                camera_id=self.camera_id,
                detect_fps=self.detect_fps,
                box=self.box,
                mode="live",
                max_decode_errors=self.ingest.max_decode_errors,
                realtime=is_file_url(url) and self.source.realtime,
                on_decoded=self._on_decoded,
                on_skipped=self._on_skipped,
                on_packet=self.packet_sink.packet if self.packet_sink is not None else None,
                stop=self.stop_event,
                seq_start=self._seq,
                stats=stats,
            ):
                if self.stop_event.is_set():
                    break  # stopped: the camera's status is no longer this reader's
                self._seq = sampled.seq
                if first:
                    first = False
                    self._auth_failures = 0
                    self.status.update(self.camera_id, state="online", last_error=None)
                    log.info("camera %s online (%dx%d)", self.camera_id, *sampled.source_size)
                st = self.status.get(self.camera_id)
                self.status.update(self.camera_id, frames_sampled=st.frames_sampled + 1)
                self.on_frame(sampled)
        if self.stop_event.is_set():
            return True
        self._report_loss(stats)
        if is_file_url(url):
            return not self.source.loop
        raise StreamError("the stream ended")

    def _report_loss(self, stats: DecodeStats) -> None:
        problem = stats.describe()
        if problem is None:
            return
        message = self._mask(problem)
        st = self.status.get(self.camera_id)
        self.status.update(
            self.camera_id,
            decode_errors=st.decode_errors + stats.undecodable,
            last_error=message,
            last_error_at=time.time(),
        )
        log.warning("camera %s: %s", self.camera_id, message)

    def _on_decoded(self, frame: av.VideoFrame) -> None:
        st = self.status.get(self.camera_id)
        # Plain attribute writes: one writer per camera, readers take snapshots.
        st.frames_decoded += 1
        st.last_frame_at = time.time()
        st.input_fps = round(self._input_rate.tick(), 2)

    def _on_skipped(self, n: int) -> None:
        """Non-reference frames left undecoded (not sampled) still count as frames read:
        ``frames_decoded`` and ``input_fps`` are the stream's frames, not the decoder's."""
        st = self.status.get(self.camera_id)
        st.frames_decoded += n
        for _ in range(n):
            st.input_fps = round(self._input_rate.tick(), 2)
