#!/usr/bin/python3
"""A real RTSP server for tests: loops video clips as live, shared H.264 streams.

Run with Debian's ``/usr/bin/python3`` (GStreamer's Python bindings, ``gi``, are not
importable from the project's venv)::

    /usr/bin/python3 tests/peers/rtsp_server.py --port 8554 \\
        --mount cam1=/path/clip.mp4 --mount cam2=/path/other.mp4 [--host 127.0.0.1]

Each clip is served at ``rtsp://HOST:PORT/<name>``. Design:

* One *producer* thread per mount decodes the clip (``filesrc ! decodebin !
  videoconvert ! appsink``) and paces the decoded frames in real time from the
  clip's own timestamps (so the native, possibly variable, frame rate is kept).
  At end of file, or on a decode error (a truncated, corrupt tail), the decoder is
  rebuilt and the clip starts over: the "camera" never stops.
* The RTSP media for a mount is *shared* (one pipeline for all clients):
  ``appsrc ! x264enc ! h264parse ! rtph264pay``. The producer pushes every frame
  into the appsrc of each running media, stamped with the media pipeline's own
  running time (never before it has a clock, and strictly increasing), so
  timestamps are monotonic across loops and late joiners get a key frame within
  about a second (``key-int-max`` = 1 s of frames, SPS/PPS repeated on each IDR).
* ``x264enc threads=1 tune=zerolatency``: multi-threaded x264 made decoders see
  duplicate frames here.

Prints ``PORT <n>`` then ``READY`` on stdout once listening. Exits cleanly (status
0) on SIGTERM or SIGINT. The listening socket is bound with SO_REUSEADDR, so the
server can be restarted on the same port right after being killed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtspServer  # noqa: E402

#: ``--stamp``: the wall clock (ms, low 32 bits) painted as 32 blocks of 16x16 luma at
#: the frame's top left, white = 1, most significant first (read by ``read_stamp`` in
#: bench/bench_live.py to measure glass-to-glass latency).
STAMP_BITS = 32
STAMP_BLOCK = 16
STAMP = False

PULL_TIMEOUT_NS = 200 * Gst.MSECOND
FIRST_FRAME_TIMEOUT_S = 15.0
DEFAULT_FPS = 25.0
BITRATE_KBPS = 1500


def log(msg: str) -> None:
    """Diagnostics go to stderr (stdout carries only PORT/READY)."""
    print(f"rtsp_server: {msg}", file=sys.stderr, flush=True)


@dataclass
class ClipFormat:
    """Decoded frame format of a clip, fixed once the first frame is decoded."""

    width: int
    height: int
    fps_num: int
    fps_den: int

    @property
    def fps(self) -> float:
        """Nominal frames per second (DEFAULT_FPS when the container has none)."""
        return self.fps_num / self.fps_den if self.fps_num > 0 and self.fps_den > 0 else DEFAULT_FPS

    def caps_string(self) -> str:
        """Raw-video caps for the media's appsrc."""
        num, den = (self.fps_num, self.fps_den) if self.fps_num > 0 else (int(DEFAULT_FPS), 1)
        return (
            f"video/x-raw,format=I420,width={self.width},height={self.height},"
            f"framerate={num}/{den}"
        )


def probe_average_fps(path: Path) -> Fraction | None:
    """Average frame rate of a clip from its demuxed packets (no decoding).

    Containers may state a nominal rate far from the real one (the street clip
    says 25.25 fps but plays at ~10 fps); x264's key-frame interval and rate
    control need the real one.
    """
    location = str(path).replace("\\", "\\\\").replace('"', '\\"')
    pipeline = Gst.parse_launch(
        f'filesrc location="{location}" ! parsebin ! appsink name=sink sync=false'
    )
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    stamps: list[int] = []
    try:
        while True:
            sample = sink.try_pull_sample(2 * Gst.SECOND)
            if sample is None:
                break
            pts = sample.get_buffer().pts
            if pts != Gst.CLOCK_TIME_NONE:
                stamps.append(pts)
    finally:
        pipeline.set_state(Gst.State.NULL)
    if len(stamps) < 2 or max(stamps) <= min(stamps):
        return None
    fps = (len(stamps) - 1) * Gst.SECOND / (max(stamps) - min(stamps))
    return Fraction(fps).limit_denominator(1001)


class ClipDecoder:
    """Decodes a clip to I420 frames; rebuilt for each loop of the clip."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pipeline: Gst.Pipeline | None = None
        self.sink: GstApp.AppSink | None = None

    def open(self) -> None:
        """(Re)build and start the decoding pipeline from the start of the clip."""
        self.close()
        location = str(self.path).replace("\\", "\\\\").replace('"', '\\"')
        desc = (
            f'filesrc location="{location}" ! decodebin ! videoconvert ! '
            "video/x-raw,format=I420 ! appsink name=sink sync=false max-buffers=4 drop=false"
        )
        pipeline = Gst.parse_launch(desc)
        assert isinstance(pipeline, Gst.Pipeline)
        self.pipeline = pipeline
        self.sink = pipeline.get_by_name("sink")
        pipeline.set_state(Gst.State.PLAYING)

    def pull(self) -> Gst.Sample | None:
        """Next decoded frame, or None on timeout, end of file or error."""
        if self.sink is None:
            return None
        return self.sink.try_pull_sample(PULL_TIMEOUT_NS)

    def finished(self) -> tuple[bool, str | None]:
        """(True, reason) once the clip ended (EOS) or failed (decode error)."""
        if self.pipeline is None or self.sink is None:
            return True, "closed"
        bus = self.pipeline.get_bus()
        msg = bus.pop_filtered(Gst.MessageType.ERROR | Gst.MessageType.EOS)
        if msg is not None and msg.type == Gst.MessageType.ERROR:
            err, _debug = msg.parse_error()
            return True, f"decode error: {err.message}"
        if msg is not None or self.sink.is_eos():
            return True, None
        return False, None

    def close(self) -> None:
        """Stop and drop the pipeline."""
        if self.pipeline is not None:
            self.pipeline.set_state(Gst.State.NULL)
        self.pipeline = None
        self.sink = None


@dataclass
class Mount:
    """One served clip: its decoder thread and the appsrcs of its running media."""

    name: str
    path: Path
    fmt: ClipFormat | None = None
    appsrcs: list[GstApp.AppSrc] = field(default_factory=list)
    last_pts: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    first_frame: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    # -- media side ---------------------------------------------------------
    def add_appsrc(self, appsrc: GstApp.AppSrc) -> None:
        with self.lock:
            self.appsrcs.append(appsrc)

    def remove_appsrc(self, appsrc: GstApp.AppSrc) -> None:
        with self.lock:
            if appsrc in self.appsrcs:
                self.appsrcs.remove(appsrc)
            self.last_pts.pop(id(appsrc), None)

    def _push(self, data: bytes, duration_ns: int) -> None:
        """Push one frame into every running media, stamped with its running time."""
        with self.lock:
            targets = list(self.appsrcs)
        for appsrc in targets:
            clock = appsrc.get_clock()
            if clock is None:  # media pipeline not running yet
                continue
            pts = clock.get_time() - appsrc.get_base_time()
            key = id(appsrc)
            prev = self.last_pts.get(key)
            if prev is not None and pts <= prev:
                pts = prev + 1
            self.last_pts[key] = pts
            buf = Gst.Buffer.new_wrapped(data)
            buf.pts = pts
            buf.dts = Gst.CLOCK_TIME_NONE
            buf.duration = duration_ns
            appsrc.push_buffer(buf)

    # -- producer side ------------------------------------------------------
    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"clip-{self.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        decoder = ClipDecoder(self.path)
        loop_origin = time.monotonic()
        try:
            while not self.stop.is_set():
                played = self._play_once(decoder, loop_origin)
                if played <= 0:
                    time.sleep(1.0)  # nothing decodes: do not spin
                loop_origin += max(played, 0.0)
                loop_origin = max(loop_origin, time.monotonic() - 1.0)
        except Exception as exc:  # pragma: no cover - reported, then the process exits
            log(f"mount {self.name}: producer crashed: {exc!r}")
        finally:
            decoder.close()

    def _play_once(self, decoder: ClipDecoder, origin: float) -> float:
        """Play the clip once in real time from ``origin``; return its length in seconds."""
        decoder.open()
        first_pts: int | None = None
        end = 0.0
        while not self.stop.is_set():
            sample = decoder.pull()
            if sample is None:
                done, reason = decoder.finished()
                if done:
                    if reason:
                        log(f"mount {self.name}: {reason}; looping what decoded")
                    break
                continue
            buf = sample.get_buffer()
            if self.fmt is None:
                self._set_format(sample)
            pts = buf.pts if buf.pts != Gst.CLOCK_TIME_NONE else None
            if pts is None:
                offset = end
            else:
                first_pts = pts if first_pts is None else first_pts
                offset = (pts - first_pts) / Gst.SECOND
            assert self.fmt is not None
            frame_s = 1.0 / self.fmt.fps
            end = max(end, offset + frame_s)
            delay = origin + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ok, info = buf.map(Gst.MapFlags.READ)
            if not ok:
                continue
            try:
                data = bytes(info.data)
            finally:
                buf.unmap(info)
            if STAMP:
                data = stamp_i420(data, self.fmt.width, time.time())
            self._push(data, int(frame_s * Gst.SECOND))
        decoder.close()
        return end

    def _set_format(self, sample: Gst.Sample) -> None:
        caps = sample.get_caps().get_structure(0)
        ok_num, num, den = caps.get_fraction("framerate")
        avg = probe_average_fps(self.path)
        if avg is not None:
            ok_num, num, den = True, avg.numerator, avg.denominator
        self.fmt = ClipFormat(
            width=caps.get_value("width"),
            height=caps.get_value("height"),
            fps_num=num if ok_num else 0,
            fps_den=den if ok_num else 1,
        )
        self.first_frame.set()


def stamp_i420(data: bytes, width: int, now: float) -> bytes:
    """The frame with ``now`` (ms, low 32 bits) painted into its luma plane."""
    ms = int(now * 1000) & 0xFFFFFFFF
    out = bytearray(data)
    for i in range(STAMP_BITS):
        value = 235 if (ms >> (STAMP_BITS - 1 - i)) & 1 else 16
        x0 = i * STAMP_BLOCK
        if x0 + STAMP_BLOCK > width:
            break
        for row in range(STAMP_BLOCK):
            start = row * width + x0
            out[start : start + STAMP_BLOCK] = bytes([value]) * STAMP_BLOCK
    return bytes(out)


def make_factory(mount: Mount) -> GstRtspServer.RTSPMediaFactory:
    """A shared media factory whose appsrc is fed by ``mount``'s producer."""
    assert mount.fmt is not None
    key_int = max(1, round(mount.fmt.fps))
    launch = (
        f'( appsrc name=src is-live=true format=time do-timestamp=false '
        f'max-buffers=5 leaky-type=downstream caps="{mount.fmt.caps_string()}" '
        f"! queue max-size-buffers=5 leaky=downstream "
        f"! x264enc tune=zerolatency speed-preset=ultrafast threads=1 bitrate={BITRATE_KBPS} "
        f"key-int-max={key_int} b-adapt=false bframes=0 "
        f"! video/x-h264,profile=constrained-baseline "
        f"! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)

    def on_configure(_factory: GstRtspServer.RTSPMediaFactory,
                     media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name_recurse_up("src")
        mount.add_appsrc(appsrc)
        media.connect("unprepared", lambda _m: mount.remove_appsrc(appsrc))

    factory.connect("media-configure", on_configure)
    return factory


def parse_mounts(specs: list[str]) -> dict[str, Mount]:
    """``name=path`` pairs into mount names and their producers; exits with a message on
    a bad spec. Names of the same clip share one producer (one decoder), so a server can
    offer hundreds of mount names (patrol benchmarks) at the cost of its distinct clips."""
    mounts: dict[str, Mount] = {}
    by_path: dict[Path, Mount] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name = name.strip().strip("/")
        if not sep or not name or not path:
            sys.exit(f"rtsp_server: bad --mount {spec!r}, expected NAME=PATH")
        clip = Path(path)
        if not clip.is_file():
            sys.exit(f"rtsp_server: clip for mount {name!r} not found: {clip}")
        producer = by_path.get(clip.resolve())
        if producer is None:
            producer = by_path[clip.resolve()] = Mount(name=name, path=clip)
        mounts[name] = producer
    if not mounts:
        sys.exit("rtsp_server: at least one --mount NAME=PATH is required")
    return mounts


def start_producers(mounts: list[Mount]) -> None:
    """Start every decoder and wait for each clip's first frame (its format)."""
    for mount in mounts:
        mount.start()
    deadline = time.monotonic() + FIRST_FRAME_TIMEOUT_S
    for mount in mounts:
        if not mount.first_frame.wait(max(0.0, deadline - time.monotonic())):
            sys.exit(f"rtsp_server: no frame decoded from {mount.path} (mount {mount.name!r})")


def warm_up_bindings() -> None:
    """Resolve the GObject wrappers the producer threads use, once, in this thread.

    PyGObject builds a class's wrapper lazily; several producer threads doing it at
    once for Gst.Sample once failed with "Expected Gst.Sample, but got
    gi.repository.Gst.Sample". Touching the classes and methods here first avoids it.
    """
    caps = Gst.Caps.from_string("video/x-raw,format=I420,width=2,height=2,framerate=1/1")
    buf = Gst.Buffer.new_wrapped(bytes(6))
    sample = Gst.Sample.new(buf, caps, None, None)
    buffer = sample.get_buffer()
    ok, info = buffer.map(Gst.MapFlags.READ)
    if ok:
        buffer.unmap(info)
    sample.get_caps().get_structure(0).get_fraction("framerate")
    # Enum and flag values too: under load two threads resolving Gst.State at once saw
    # "type object 'State' has no attribute 'NULL'" (and MessageType.ERROR, the same way).
    _ = (Gst.State.NULL, Gst.State.PLAYING, Gst.MessageType.ERROR, Gst.MessageType.EOS,
         Gst.CLOCK_TIME_NONE, Gst.SECOND, Gst.MSECOND, Gst.Pipeline, GstApp.AppSink,
         GstApp.AppSrc)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8554, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mount", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--stamp", action="store_true",
                        help="paint the wall clock into each frame (latency benchmarks)")
    args = parser.parse_args(argv)
    global STAMP
    STAMP = args.stamp

    Gst.init(None)
    warm_up_bindings()
    mounts = parse_mounts(args.mount)
    start_producers(list({id(m): m for m in mounts.values()}.values()))

    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    points = server.get_mount_points()
    for name, mount in mounts.items():
        points.add_factory(f"/{name}", make_factory(mount))
        assert mount.fmt is not None
        log(f"mount /{name}: {mount.path.name} {mount.fmt.width}x{mount.fmt.height} "
            f"@ {mount.fmt.fps:.2f} fps")

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        log(f"cannot listen on {args.host}:{args.port}")
        return 2

    def on_signal() -> bool:
        loop.quit()
        return GLib.SOURCE_REMOVE

    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, on_signal)

    print(f"PORT {server.get_bound_port()}", flush=True)
    print("READY", flush=True)
    try:
        loop.run()
    finally:
        for mount in mounts:
            mount.stop.set()
        for mount in mounts:
            if mount.thread is not None:
                mount.thread.join(timeout=2.0)
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
