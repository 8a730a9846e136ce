"""Start and stop the test peers (RTSP server, ipycam camera) as subprocesses.

Every peer runs in its own session (process group) and is stopped by signalling
the whole group, so helper processes it spawned (ipycam's ffmpeg encoders) go too.
Start-up waits for the peer's ``READY`` line and for its ports to accept TCP
connections; a peer that dies or stays silent raises :class:`PeerError` with the
tail of its stderr.
"""

from __future__ import annotations

import abc
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, NamedTuple

LOOPBACK = "127.0.0.1"
PEERS_DIR = Path(__file__).resolve().parent
#: Debian's python, the one with GStreamer's bindings (override: SHAOBING_GST_PYTHON).
GST_PYTHON = os.environ.get("SHAOBING_GST_PYTHON", "/usr/bin/python3")
STDERR_TAIL = 4000


class PeerError(RuntimeError):
    """A peer process failed to start (the message carries its stderr)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """True if ``host:port`` accepts a TCP connection now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(port: int, timeout: float, host: str = LOOPBACK) -> bool:
    """Wait until ``host:port`` accepts TCP connections; False after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port, host):
            return True
        time.sleep(0.05)
    return False


def check_gst_python() -> None:
    """Raise :class:`PeerError` unless GST_PYTHON can import GStreamer's RTSP server."""
    if not Path(GST_PYTHON).exists():
        raise PeerError(
            f"{GST_PYTHON} not found: the RTSP test server needs Debian's python3 with "
            "python3-gi and gir1.2-gst-rtsp-server-1.0 (see ../shared/TOOLCHAIN.md)"
        )
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); "
        "gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
        "missing = [e for e in ('appsrc', 'x264enc', 'h264parse', 'rtph264pay', "
        "'decodebin', 'parsebin', 'avdec_h264') if Gst.ElementFactory.find(e) is None]; "
        "assert not missing, 'missing GStreamer elements: ' + ', '.join(missing)"
    )
    result = subprocess.run([GST_PYTHON, "-c", probe], capture_output=True, text=True,
                            timeout=60)
    if result.returncode != 0:
        raise PeerError(
            f"{GST_PYTHON} cannot run the RTSP test server (install python3-gi, "
            "gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-{base,good,bad,ugly}, "
            f"gstreamer1.0-libav): {result.stderr.strip()[-STDERR_TAIL:]}"
        )


def check_ffmpeg() -> None:
    """Raise :class:`PeerError` unless an ``ffmpeg`` binary is on PATH (ipycam needs it)."""
    if shutil.which("ffmpeg") is None:
        raise PeerError("ffmpeg not found on PATH: ipycam encodes its RTSP streams with it "
                        "(apt-get install ffmpeg)")


class PeerProcess(abc.ABC):
    """A subprocess that prints ``READY`` when serving; stopped by process group."""

    name = "peer"

    def __init__(self, ready_timeout: float = 30.0) -> None:
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.stdout_lines: list[str] = []
        self._stderr_file: IO[bytes] | None = None
        self._ready = threading.Event()

    # -- to override ----------------------------------------------------------
    @abc.abstractmethod
    def command(self) -> list[str]:
        """The argv to run."""

    def ports(self) -> Sequence[int]:
        """TCP ports on 127.0.0.1 that must accept connections once READY."""
        return ()

    # -- lifecycle ------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> PeerProcess:
        """Start the process; return once READY and its ports accept connections."""
        if self.running:
            return self
        self._ready.clear()
        self.stdout_lines = []
        self._stderr_file = tempfile.NamedTemporaryFile(prefix=f"{self.name}-", suffix=".err")
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._stderr_file, text=True, start_new_session=True,
        )
        threading.Thread(target=self._read_stdout, args=(self.proc,),
                         name=f"{self.name}-stdout", daemon=True).start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_stdout(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            self.stdout_lines.append(line)
            if line.strip() == "READY":
                self._ready.set()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while not self._ready.wait(0.05):
            if self.proc is not None and self.proc.poll() is not None:
                raise PeerError(f"{self.name} exited with status {self.proc.returncode} "
                                f"before READY: {self.stderr()}")
            if time.monotonic() > deadline:
                raise PeerError(f"{self.name} not READY after {self.ready_timeout:.0f} s: "
                                f"{self.stderr()}")
        for port in self.ports():
            if not wait_port(port, max(1.0, deadline - time.monotonic())):
                raise PeerError(f"{self.name} said READY but 127.0.0.1:{port} refuses "
                                f"connections: {self.stderr()}")

    def stop(self, kill: bool = False, timeout: float = 5.0) -> None:
        """Stop the whole process group: SIGTERM (SIGKILL with ``kill=True``, or after
        ``timeout`` s). Safe to call twice."""
        proc = self.proc
        if proc is None:
            return
        sig = signal.SIGKILL if kill else signal.SIGTERM
        _signal_group(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5.0)
        _signal_group(proc.pid, signal.SIGKILL)  # stragglers left in the group
        if proc.stdout is not None:
            proc.stdout.close()
        self.proc = None

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), like a camera losing power."""
        self.stop(kill=True)

    def restart(self, down_time: float = 0.0) -> PeerProcess:
        """Stop, stay down ``down_time`` seconds, start again (same ports)."""
        self.stop()
        if down_time > 0:
            time.sleep(down_time)
        return self.start()

    def stderr(self) -> str:
        """The tail of the process's stderr so far."""
        if self._stderr_file is None:
            return ""
        try:
            text = Path(self._stderr_file.name).read_text(errors="replace")
        except OSError:
            return ""
        text = text.strip()
        return text[-STDERR_TAIL:] if text else "(no stderr)"

    def __enter__(self) -> PeerProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class RtspServer(PeerProcess):
    """GStreamer RTSP server looping clips at ``rtsp://127.0.0.1:PORT/<name>``.

    ``mounts`` maps mount names to clip paths. The port is fixed at construction
    (a free one by default) so ``restart()`` serves the same URLs.
    """

    name = "rtsp_server"

    def __init__(self, mounts: Mapping[str, str | os.PathLike[str]], port: int | None = None,
                 host: str = LOOPBACK, ready_timeout: float = 30.0, stamp: bool = False) -> None:
        super().__init__(ready_timeout)
        self.stamp = stamp  # paint the wall clock into each frame (latency measurement)
        if not mounts:
            raise ValueError("RtspServer needs at least one mount")
        self.mounts = {name: Path(path) for name, path in mounts.items()}
        for name, path in self.mounts.items():
            if not path.is_file():
                raise PeerError(f"clip for mount {name!r} not found: {path}")
        self.host = host
        self.port = port or free_port()

    def command(self) -> list[str]:
        cmd = [GST_PYTHON, str(PEERS_DIR / "rtsp_server.py"),
               "--host", self.host, "--port", str(self.port)]
        for name, path in self.mounts.items():
            cmd += ["--mount", f"{name}={path}"]
        return [*cmd, "--stamp"] if self.stamp else cmd

    def ports(self) -> Sequence[int]:
        return (self.port,)

    def url(self, name: str) -> str:
        """``rtsp://127.0.0.1:PORT/<name>`` for a mount."""
        if name not in self.mounts:
            raise KeyError(f"no mount {name!r}; mounts: {', '.join(self.mounts)}")
        return f"rtsp://{self.host}:{self.port}/{name}"


class IpyCamProcess(PeerProcess):
    """An ipycam virtual ONVIF camera on loopback, looping ``clip``.

    Ports are fixed at construction (free ones by default). ONVIF device service:
    ``http://127.0.0.1:<onvif_port>/onvif/device_service``; streams
    ``rtsp://127.0.0.1:<rtsp_port>/video_main`` (640x360) and ``/video_sub``
    (320x180). With ``username``/``password`` set, ONVIF requires WS-Security and
    HTTP (snapshot) requires Basic auth; ipycam's RTSP has no auth.
    """

    name = "ipycam"
    MAIN_PATH = "video_main"
    SUB_PATH = "video_sub"

    def __init__(self, clip: str | os.PathLike[str], username: str | None = None,
                 password: str | None = None, onvif_port: int | None = None,
                 rtsp_port: int | None = None, ready_timeout: float = 30.0) -> None:
        super().__init__(ready_timeout)
        self.clip = Path(clip)
        if not self.clip.is_file():
            raise PeerError(f"clip not found: {self.clip}")
        self.username = username
        self.password = password
        self.onvif_port = onvif_port or free_port()
        self.rtsp_port = rtsp_port or free_port()
        self.web_port = free_port()
        self.go2rtc_api_port = free_port()
        self.rtmp_port = free_port()

    def command(self) -> list[str]:
        cmd = [sys.executable, str(PEERS_DIR / "ipycam_launcher.py"),
               "--clip", str(self.clip),
               "--onvif-port", str(self.onvif_port), "--rtsp-port", str(self.rtsp_port),
               "--web-port", str(self.web_port), "--go2rtc-api-port", str(self.go2rtc_api_port),
               "--rtmp-port", str(self.rtmp_port)]
        if self.username:
            cmd += ["--user", self.username, "--password", self.password or ""]
        return cmd

    def ports(self) -> Sequence[int]:
        return (self.onvif_port, self.rtsp_port)

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def main_url(self) -> str:
        """The main RTSP stream, without credentials."""
        return f"rtsp://{LOOPBACK}:{self.rtsp_port}/{self.MAIN_PATH}"

    @property
    def sub_url(self) -> str:
        """The sub RTSP stream, without credentials."""
        return f"rtsp://{LOOPBACK}:{self.rtsp_port}/{self.SUB_PATH}"


class FrameInfo(NamedTuple):
    """What a test needs to know about one decoded frame."""

    pts: int | None
    time: float | None
    width: int
    height: int
    key_frame: bool


def read_frames(url: str, count: int, timeout_s: float = 5.0) -> list[FrameInfo]:
    """Open ``url`` with PyAV (RTSP over TCP) and decode ``count`` video frames.

    ``timeout_s`` bounds connecting and each socket read; raises ``av.error.*``
    (an ``OSError``) when the stream cannot be opened or read.
    """
    import av

    options = {"rtsp_transport": "tcp", "timeout": str(int(timeout_s * 1_000_000))}
    frames: list[FrameInfo] = []
    with av.open(url, options=options, timeout=timeout_s) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            frames.append(FrameInfo(frame.pts, frame.time, frame.width, frame.height,
                                    bool(frame.key_frame)))
            if len(frames) >= count:
                break
    return frames
