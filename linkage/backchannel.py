"""A camera's speaker through the ONVIF audio back channel (ONVIF Streaming spec §5.3).

RTSP over TCP: DESCRIBE with ``Require: www.onvif.org/ver20/backchannel`` (the camera
then lists its back channel: an audio track marked ``a=sendonly``), SETUP of that track
interleaved on the RTSP connection, PLAY, then G.711 in RTP packets of 20 ms sent in real
time as ``$``-framed interleaved data, and TEARDOWN. Digest (or Basic) authentication
when the camera asks. The password is never logged nor put into an error.
"""

from __future__ import annotations

import base64
import re
import secrets
import socket
import struct
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from linkage.g711 import ENCODERS, PAYLOAD_TYPES, RATE
from linkage.ports import ActionFailed
from linkage.sip import digest

REQUIRE = "www.onvif.org/ver20/backchannel"
FRAME = 160  # samples per 20 ms packet at 8 kHz
CODEC_OF_PT = {v: k for k, v in PAYLOAD_TYPES.items()}


@dataclass(frozen=True)
class BackchannelTrack:
    control: str  # the URL to SETUP
    payload_types: tuple[int, ...]


@dataclass(frozen=True)
class BackchannelReport:
    codec: str
    packets: int
    seconds: float
    cancelled: bool


def parse_backchannel(sdp: str, base: str) -> BackchannelTrack | None:
    """The back-channel audio track of a DESCRIBE answer (the ``a=sendonly`` audio
    media), its control URL made absolute against ``base``; None if there is none."""
    sections = re.split(r"\r?\n(?=m=)", sdp)
    for section in sections[1:]:
        lines = section.splitlines()
        if not lines[0].startswith("m=audio") or "a=sendonly" not in lines:
            continue
        pts = tuple(int(p) for p in lines[0].split()[3:] if p.isdigit())
        control = next((ln[len("a=control:") :] for ln in lines if ln.startswith("a=control:")), "")
        if not control or control == "*":
            control = base
        elif not re.match(r"^rtsp://", control, re.I):
            control = base.rstrip("/") + "/" + control.lstrip("/")
        return BackchannelTrack(control, pts)
    return None


class RtspBackchannelClient:
    """Plays PCM through one camera's back channel (one connection per warning)."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        codec: str = "pcma",
        timeout_s: float = 5.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() != "rtsp" or not parts.hostname:
            raise ActionFailed("a back-channel speaker needs url: rtsp://host[:port]/path")
        self.host, self.port = parts.hostname, parts.port or 554
        # credentials in the URL are taken out of it (never sent in the request line)
        self.username = username or parts.username
        self.password = password or parts.password
        netloc = self.host if parts.port is None else f"{self.host}:{parts.port}"
        self.url = urlunsplit(("rtsp", netloc, parts.path or "/", parts.query, ""))
        self.codec = codec
        self.timeout_s = timeout_s
        self.cancel = threading.Event()
        self._sock: socket.socket | None = None
        self._buf = b""
        self._cseq = 0
        self._session: str | None = None
        self._challenge: str | None = None

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"

    def play(self, pcm: np.ndarray, repeat: int = 1, gap_s: float = 1.0) -> BackchannelReport:
        try:
            self._sock = socket.create_connection((self.host, self.port), self.timeout_s)
        except OSError as exc:
            raise ActionFailed(f"camera {self.label} does not answer RTSP: {exc.strerror or exc}"
                               ) from exc  # fmt: skip
        try:
            status, headers, body = self._request("DESCRIBE", self.url,
                                                  {"Accept": "application/sdp"})  # fmt: skip
            if status != 200:
                raise ActionFailed(f"camera {self.label} refused DESCRIBE with the back "
                                   f"channel: RTSP {status}")  # fmt: skip
            base = headers.get("content-base") or self.url
            track = parse_backchannel(body, base)
            if track is None:
                raise ActionFailed(f"camera {self.label} offers no audio back channel")
            codec = self._choose(track.payload_types)
            status, headers, _ = self._request("SETUP", track.control, {
                "Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})  # fmt: skip
            if status != 200:
                raise ActionFailed(f"camera {self.label} refused SETUP of the back channel: "
                                   f"RTSP {status}")  # fmt: skip
            self._session = (headers.get("session") or "").split(";")[0].strip() or None
            channel = 0
            found = re.search(r"interleaved=(\d+)", headers.get("transport", ""))
            if found:
                channel = int(found.group(1))
            status, _, _ = self._request("PLAY", self.url, {"Range": "npt=0.000-"})
            if status != 200:
                raise ActionFailed(f"camera {self.label} refused PLAY: RTSP {status}")
            packets, seconds, cancelled = self._stream(pcm, codec, channel, repeat, gap_s)
            try:
                self._request("TEARDOWN", self.url, {})
            except ActionFailed:
                pass  # the warning was played; a lost TEARDOWN answer changes nothing
            return BackchannelReport(codec, packets, seconds, cancelled)
        finally:
            self._sock.close()

    def _choose(self, payload_types: tuple[int, ...]) -> str:
        preferred = PAYLOAD_TYPES[self.codec]
        if preferred in payload_types:
            return self.codec
        for pt in payload_types:
            if pt in CODEC_OF_PT:
                return CODEC_OF_PT[pt]
        raise ActionFailed(f"camera {self.label}'s back channel takes no G.711 "
                           f"(payload types {list(payload_types)})")  # fmt: skip

    # -- RTSP -------------------------------------------------------------------------

    def _request(self, method: str, url: str, extra: dict[str, str]
                 ) -> tuple[int, dict[str, str], str]:  # fmt: skip
        for _ in range(2):  # once more with credentials after a 401
            self._cseq += 1
            lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self._cseq}", f"Require: {REQUIRE}",
                     "User-Agent: Shaobing"]  # fmt: skip
            if self._session:
                lines.append(f"Session: {self._session}")
            auth = self._authorization(method, url)
            if auth:
                lines.append(auth)
            lines += [f"{k}: {v}" for k, v in extra.items()]
            assert self._sock is not None
            try:
                self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
                status, headers, body = self._response()
            except OSError as exc:
                raise ActionFailed(f"camera {self.label}: RTSP {method} failed: "
                                   f"{exc.strerror or type(exc).__name__}") from exc  # fmt: skip
            if status == 401 and self._challenge is None and self.username:
                self._challenge = headers.get("www-authenticate", "")
                continue
            if status == 401:
                raise ActionFailed(f"camera {self.label} refused {method}: not authorised "
                                   "(check the user and password)")  # fmt: skip
            if status == 551:
                raise ActionFailed(f"camera {self.label} has no ONVIF audio back channel "
                                   "(551 Option not supported)")  # fmt: skip
            return status, headers, body
        raise ActionFailed(f"camera {self.label}: RTSP {method} not authorised")

    def _authorization(self, method: str, url: str) -> str | None:
        if not self._challenge or not self.username:
            return None
        if self._challenge.lower().startswith("basic"):
            token = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            return f"Authorization: Basic {token}"
        return digest(method, url, self._challenge, self.username, self.password or "",
                      "Authorization")  # fmt: skip

    def _response(self) -> tuple[int, dict[str, str], str]:
        assert self._sock is not None
        deadline = time.monotonic() + self.timeout_s
        while True:
            while self._buf.startswith(b"$") and len(self._buf) >= 4:  # interleaved data
                size = struct.unpack("!H", self._buf[2:4])[0]
                if len(self._buf) < 4 + size:
                    break
                self._buf = self._buf[4 + size :]
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0 and not self._buf.startswith(b"$"):
                head = self._buf[:end].decode("utf-8", "replace").split("\r\n")
                headers = {k.strip().lower(): v.strip()
                           for k, _, v in (h.partition(":") for h in head[1:])}  # fmt: skip
                length = int(headers.get("content-length", "0") or 0)
                if len(self._buf) >= end + 4 + length:
                    body = self._buf[end + 4 : end + 4 + length].decode("utf-8", "replace")
                    self._buf = self._buf[end + 4 + length :]
                    match = re.match(r"RTSP/1\.\d (\d{3})", head[0])
                    if match is None:
                        raise ActionFailed(f"camera {self.label}: not an RTSP answer")
                    return int(match.group(1)), headers, body
            left = deadline - time.monotonic()
            if left <= 0:
                raise ActionFailed(f"camera {self.label}: no RTSP answer within "
                                   f"{self.timeout_s:.0f} s")  # fmt: skip
            self._sock.settimeout(left)
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise ActionFailed(f"camera {self.label} closed the RTSP connection")
            self._buf += data

    # -- media ------------------------------------------------------------------------

    def _stream(self, pcm: np.ndarray, codec: str, channel: int, repeat: int,
                gap_s: float) -> tuple[int, float, bool]:  # fmt: skip
        """RTP packets of 20 ms, interleaved, in real time; (packets, seconds, cancelled)."""
        silence = np.zeros(int(gap_s * RATE), dtype=np.int16)
        parts: list[np.ndarray] = []
        for i in range(repeat):
            if i:
                parts.append(silence)
            parts.append(pcm.astype(np.int16))
        audio = np.concatenate(parts) if parts else np.zeros(0, np.int16)
        audio = np.concatenate([audio, np.zeros((-len(audio)) % FRAME, np.int16)])
        payload = ENCODERS[codec](audio)
        pt = PAYLOAD_TYPES[codec]
        ssrc, seq, ts = secrets.randbits(32), secrets.randbits(16), secrets.randbits(32)
        assert self._sock is not None
        start, sent = time.monotonic(), 0
        for offset in range(0, len(payload), FRAME):
            if self.cancel.is_set():
                return sent, sent * FRAME / RATE, True
            marker = 0x80 if sent == 0 else 0
            rtp = struct.pack("!BBHII", 0x80, marker | pt, (seq + sent) & 0xFFFF,
                              (ts + sent * FRAME) & 0xFFFFFFFF, ssrc)  # fmt: skip
            rtp += payload[offset : offset + FRAME]
            try:
                self._sock.sendall(struct.pack("!cBH", b"$", channel, len(rtp)) + rtp)
            except OSError as exc:
                raise ActionFailed(f"camera {self.label} dropped the back channel after "
                                   f"{sent * FRAME / RATE:.1f} s: {exc.strerror or exc}"
                                   ) from exc  # fmt: skip
            sent += 1
            wait = start + sent * FRAME / RATE - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        return sent, sent * FRAME / RATE, False
