"""SIPp (Debian ``sip-tester``) as GB/T 28181 peers: devices and a superior platform.

The scenarios live in tests/peers/sipp/. Each SIPp runs in its own process group
and is stopped by signalling that group.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.peers.procs import PeerError

SCENARIOS = Path(__file__).resolve().parent / "sipp"
REPO = Path(__file__).resolve().parents[2]


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise PeerError("sipp not found: apt-get install -y sip-tester (SIPp 3.6)")
    return path


class Sipp:
    """One SIPp process; ``stop()`` ends it (and what its scenario exec'd)."""

    def __init__(self, args: list[str]) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="sipp-"))
        self.args = [sipp_binary(), *args, "-nostdin", "-trace_err", "-trace_logs",
                     "-error_file", str(self.workdir / "errors.log"),
                     "-log_file", str(self.workdir / "logs.log")]  # fmt: skip
        self.proc = subprocess.Popen(self.args, cwd=self.workdir, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip

    def alive(self) -> bool:
        return self.proc.poll() is None

    def logs(self) -> str:
        out = []
        for name in ("errors.log", "logs.log"):
            path = self.workdir / name
            if path.exists():
                out.append(path.read_text(errors="replace")[-3000:])
        return "\n".join(out)

    def messages(self) -> str:
        """What -trace_msg recorded (sent and received), as text."""
        return "\n".join(p.read_bytes().decode("gb18030", errors="replace")
                         for p in sorted(self.workdir.glob("*_messages.log")))

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def media_sender_command(clip: Path, *extra: str) -> str:
    """The shell command SIPp's INVITE answer runs: ``<cmd> HOST PORT SSRC``."""
    env = f"PYTHONPATH={shlex.quote(str(REPO))}"
    args = " ".join(shlex.quote(a) for a in extra)
    return (f"env {env} {shlex.quote(sys.executable)} -m tests.peers.gb_media_sender "
            f"{shlex.quote(str(clip))} {args}").strip()  # fmt: skip


def rtp_sink_command(out: Path, save: Path | None = None) -> str:
    """The shell command a peer runs to receive RTP: ``<cmd> PORT``; what came is written
    to ``out`` as JSON, the payloads to ``save`` (tests/peers/rtp_sink.py)."""
    env = f"PYTHONPATH={shlex.quote(str(REPO))}"
    extra = f" --save {shlex.quote(str(save))}" if save is not None else ""
    return (f"env {env} {shlex.quote(sys.executable)} -m tests.peers.rtp_sink "
            f"{shlex.quote(str(out))}{extra}")  # fmt: skip


def start_device(server_port: int, *, device_id: str, password: str, platform_id: str,
                 domain: str, keepalive_ms: int = 500, transport: str = "u1",
                 sender: str = "true", expires: int = 3600, audio_port: int = 0,
                 audio_rx: str = "true", media_port: int = 15060,
                 media_proto: str = "RTP/AVP") -> Sipp:  # fmt: skip
    """A device that registers (digest), keeps alive, answers queries and INVITEs; on a
    voice broadcast it INVITEs the platform to receive audio on ``audio_port``, where
    ``audio_rx`` (a shell command given the port) listens. Its INVITE answers name
    ``media_port`` and ``media_proto`` (TCP active: the port its sender listens on)."""
    return Sipp([
        f"127.0.0.1:{server_port}", "-i", "127.0.0.1", "-p", "0", "-t", transport,
        "-sf", str(SCENARIOS / "device.xml"), "-oocsf", str(SCENARIOS / "device_ooc.xml"),
        "-au", device_id, "-ap", password,
        "-set", "device_id", device_id, "-set", "platform_id", platform_id,
        "-set", "domain", domain, "-d", str(keepalive_ms),
        "-set", "expires", str(expires), "-set", "sender", sender,
        "-set", "audio_port", str(audio_port), "-set", "audio_rx", audio_rx,
        "-set", "media_port", str(media_port), "-set", "media_proto", media_proto, "-m", "1",
    ])  # fmt: skip


def start_superior(port: int, *, password: str) -> Sipp:
    """A superior platform (UAS): challenges REGISTER, checks it, answers MESSAGEs; every
    message it saw is in :meth:`Sipp.messages`."""
    return Sipp([
        "-i", "127.0.0.1", "-p", str(port), "-t", "u1", "-trace_msg",
        "-sf", str(SCENARIOS / "superior.xml"),
        "-set", "password", password,
    ])  # fmt: skip


def start_superior_invite(port: int, *, channel: str, rtp_port: int, rx: str) -> Sipp:
    """A superior that INVITEs ``channel`` of the lower platform listening on ``port``
    (Shaobing's connector), receives 4 s of its video on ``rtp_port`` (``rx`` listens),
    then BYE; it exits 0 when every step was answered."""
    return Sipp([
        f"127.0.0.1:{port}", "-i", "127.0.0.1", "-p", "0", "-t", "u1", "-m", "1",
        "-sf", str(SCENARIOS / "superior_invite.xml"), "-set", "channel", channel,
        "-set", "rtp_port", str(rtp_port), "-set", "rx", rx,
    ])  # fmt: skip


__all__ = ["PeerError", "Sipp", "media_sender_command", "rtp_sink_command", "start_device",
           "start_superior", "start_superior_invite"]  # fmt: skip
_ = sys
