"""A small RTSP server with an ONVIF audio back channel, for the back-channel tests
(issue 27): it answers OPTIONS, DESCRIBE, SETUP, PLAY and TEARDOWN over TCP on loopback,
asks for Digest authentication, offers the back channel (an ``a=sendonly`` G.711 audio
track, ONVIF Streaming spec §5.3) only to a DESCRIBE carrying
``Require: www.onvif.org/ver20/backchannel``, and records every RTP packet the client
sends interleaved on the connection (payload type, sequence number, payload).

Use: ``cam = BackchannelCamera(user, password).start(); ... cam.stop()``; ``cam.url``,
``cam.sessions`` (one :class:`Session` per connection), ``cam.requests``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

REQUIRE = "www.onvif.org/ver20/backchannel"
REALM = "Backchannel Test Camera"


@dataclass
class Session:
    packets: list[tuple[int, int, bytes]] = field(default_factory=list)  # (pt, seq, payload)
    torn_down: bool = False
    transport: str = ""
    first_at: float | None = None  # time.perf_counter() of the first packet (benches)

    def payload(self) -> bytes:
        return b"".join(p for _, _, p in self.packets)


class BackchannelCamera:
    def __init__(self, username: str, password: str, *, backchannel: bool = True,
                 payload_types: tuple[int, ...] = (0, 8)) -> None:  # fmt: skip
        self.username, self.password = username, password
        self.backchannel = backchannel
        self.payload_types = payload_types
        self.nonce = secrets.token_hex(8)
        self.sessions: list[Session] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.done = threading.Condition()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._serve(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"rtsp://127.0.0.1:{self.port}/onvif/media"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> BackchannelCamera:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_teardown(self, timeout: float) -> Session:
        with self.done:
            ok = self.done.wait_for(lambda: any(s.torn_down for s in self.sessions), timeout)
        assert ok, "no back-channel session was torn down"
        return next(s for s in self.sessions if s.torn_down)

    # -- one connection -------------------------------------------------------------

    def _authorised(self, method: str, headers: dict[str, str]) -> bool:
        value = headers.get("authorization", "")
        if not value.startswith("Digest "):
            return False
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', value))
        if params.get("username") != self.username or params.get("nonce") != self.nonce:
            return False
        ha1 = hashlib.md5(f"{self.username}:{REALM}:{self.password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{method}:{params.get('uri', '')}".encode()).hexdigest()
        expected = hashlib.md5(f"{ha1}:{self.nonce}:{ha2}".encode()).hexdigest()
        return params.get("response") == expected

    def _sdp(self, with_backchannel: bool) -> str:
        lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=Backchannel test", "c=IN IP4 0.0.0.0",
                 "t=0 0", "a=control:*", "m=video 0 RTP/AVP 96", "a=rtpmap:96 H264/90000",
                 "a=control:track1", "a=recvonly"]  # fmt: skip
        if with_backchannel and self.backchannel:
            pts = " ".join(str(p) for p in self.payload_types)
            lines += [f"m=audio 0 RTP/AVP {pts}", "a=control:backchannel", "a=sendonly"]
            lines += [f"a=rtpmap:{p} {'PCMU' if p == 0 else 'PCMA'}/8000" for p in
                      self.payload_types]  # fmt: skip
        return "\r\n".join(lines) + "\r\n"

    def _serve(self, sock: socket.socket) -> None:
        session = Session()
        with self.done:
            self.sessions.append(session)
        buf = b""
        session_id = secrets.token_hex(4)
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while buf:
                if buf.startswith(b"$"):
                    if len(buf) < 4:
                        break
                    _, channel, size = struct.unpack("!cBH", buf[:4])
                    if len(buf) < 4 + size:
                        break
                    rtp = buf[4 : 4 + size]
                    buf = buf[4 + size :]
                    if channel == 0 and len(rtp) >= 12:
                        if session.first_at is None:
                            session.first_at = time.perf_counter()
                        pt, seq = rtp[1] & 0x7F, struct.unpack("!H", rtp[2:4])[0]
                        session.packets.append((pt, seq, rtp[12:]))
                    continue
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = buf[:end].decode("utf-8", "replace").split("\r\n")
                buf = buf[end + 4 :]
                method = head[0].split(" ", 1)[0]
                headers = {k.strip().lower(): v.strip()
                           for k, _, v in (h.partition(":") for h in head[1:])}  # fmt: skip
                self.requests.append((method, headers))
                reply = self._answer(method, headers, session, session_id)
                try:
                    sock.sendall(reply)
                except OSError:
                    return
                if method == "TEARDOWN":
                    with self.done:
                        session.torn_down = True
                        self.done.notify_all()
                    return

    def _answer(self, method: str, headers: dict[str, str], session: Session,
                session_id: str) -> bytes:  # fmt: skip
        cseq = headers.get("cseq", "0")
        extra: dict[str, Any] = {}
        body = ""
        if method == "OPTIONS":
            status = "200 OK"
            extra["Public"] = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN"
        elif not self._authorised(method, headers):
            status = "401 Unauthorized"
            extra["WWW-Authenticate"] = f'Digest realm="{REALM}", nonce="{self.nonce}"'
        elif method == "DESCRIBE":
            status = "200 OK"
            body = self._sdp(REQUIRE in headers.get("require", ""))
            extra["Content-Type"] = "application/sdp"
            extra["Content-Base"] = self.url + "/"
        elif method == "SETUP":
            status = "200 OK"
            session.transport = headers.get("transport", "")
            extra["Transport"] = "RTP/AVP/TCP;unicast;interleaved=0-1"
            extra["Session"] = f"{session_id};timeout=60"
        elif method in ("PLAY", "TEARDOWN"):
            status = "200 OK"
            extra["Session"] = session_id
        else:
            status = "405 Method Not Allowed"
        lines = [f"RTSP/1.0 {status}", f"CSeq: {cseq}"]
        lines += [f"{k}: {v}" for k, v in extra.items()]
        lines.append(f"Content-Length: {len(body.encode())}")
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()
