"""Live video in distributed mode: each worker serves the cameras it holds, API nodes relay.

A camera's packets live on the worker that holds its lease (ingest/live.py); they never
go through Redis. Each worker runs a small HTTP server (``bus.media_listen``) answering
``GET /live/<camera>.flv?exp=<unix time>&sig=<hex>`` with the same FLV stream the embedded
hub serves, and puts its address (``bus.media_advertise``) in the camera's live state in
Redis. An API node checks the user (login, area scope) as for any camera, signs a URL for
the worker that holds the camera now, and relays the bytes. The signature is an HMAC of
the camera and the expiry with a key derived from the camera-password key every role
already shares (``SHAOBING_SECRET_KEY`` or ``secret.key``): a worker serves no one who
did not pass an API node's checks, and a URL is good for :data:`URL_TTL_S` seconds.

When the camera moves to another worker (a lease lost, a worker killed), the stream
ends; the player reconnects and the API node relays from the new holder.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import queue
import re
import select
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

from core.secrets import SecretCipher, same_text
from ingest.live import FlvViewer, LiveFeed, LiveRefused
from ingest.ring import BufferedPacket

log = logging.getLogger(__name__)

#: How long a signed live URL is accepted (the API node signs one per viewer).
URL_TTL_S = 30.0
_PATH = re.compile(r"^/live/(?P<camera>[^/]+)\.flv$")


def live_key(cipher: SecretCipher) -> bytes:
    """The key signing live URLs, derived from the camera-password key all roles share."""
    return cipher.derive("live-video")


def sign(key: bytes, camera_id: str, exp: int) -> str:
    return hmac.new(key, f"live:{camera_id}:{exp}".encode(), hashlib.sha256).hexdigest()


def signed_path(key: bytes, camera_id: str, now: float | None = None) -> str:
    exp = int((time.time() if now is None else now) + URL_TTL_S)
    return f"/live/{quote(camera_id, safe='')}.flv?exp={exp}&sig={sign(key, camera_id, exp)}"


def verify(key: bytes, camera_id: str, exp: str, sig: str, now: float | None = None) -> bool:
    try:
        expires = int(exp)
    except ValueError:
        return False
    if expires < (time.time() if now is None else now):
        return False
    return same_text(sign(key, camera_id, expires), sig)


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8091`` for IPv6); port 0 picks a free one."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"{value!r} is not host:port")
    return host.strip("[]"), int(port)


class MediaServer:
    """The worker's live-video endpoint (a thread per viewer; stdlib HTTP server).

    ``feeds(camera_id)`` gives the camera's :class:`LiveFeed` when this worker holds it
    (None otherwise: 404, the API node looks the holder up again on the next try).
    """

    def __init__(
        self,
        key: bytes,
        feeds: Callable[[str], LiveFeed | None],
        listen: str,
        advertise: str | None = None,
    ) -> None:
        self.key = key
        self.feeds = feeds
        host, port = parse_listen(listen)
        server = self

        class Handler(_LiveHandler):
            media = server

        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

        self.httpd = Server((host, port), Handler)
        bound_port = self.httpd.server_address[1]
        if advertise:
            self.base_url = f"http://{advertise}" if "://" not in advertise else advertise
            if not re.search(r":\d+$", self.base_url.split("://", 1)[1]):
                self.base_url += f":{bound_port}"
        else:
            shown = socket.getfqdn() if host in ("0.0.0.0", "::") else host
            shown = f"[{shown}]" if ":" in shown else shown
            self.base_url = f"http://{shown}:{bound_port}"
        self._thread = threading.Thread(target=self._serve, name="media-server", daemon=True)
        self._lock = threading.Lock()
        self.viewers = 0

    def count_viewer(self, delta: int) -> None:
        with self._lock:
            self.viewers += delta

    def _serve(self) -> None:
        try:
            self.httpd.serve_forever(poll_interval=0.5)
        except Exception:  # noqa: BLE001 - logged: live video stops, analysis goes on
            log.exception("media server stopped")

    def start(self) -> MediaServer:
        self._thread.start()
        log.info("live video served on %s", self.base_url)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    @property
    def thread(self) -> threading.Thread:
        return self._thread


class _LiveHandler(BaseHTTPRequestHandler):
    media: MediaServer
    protocol_version = "HTTP/1.0"  # the stream ends when the connection closes
    server_version = "shaobing-media"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass  # the query holds a signature: no access log of URLs

    def _fail(self, status: int, message: str) -> None:
        body = message.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        url = urlsplit(self.path)
        match = _PATH.match(url.path)
        if match is None:
            return self._fail(404, "not found")
        camera_id = unquote(match["camera"])
        query = parse_qs(url.query)
        exp, sig = query.get("exp", [""])[0], query.get("sig", [""])[0]
        if not verify(self.media.key, camera_id, exp, sig):
            return self._fail(403, "bad or expired signature")
        feed = self.media.feeds(camera_id)
        if feed is None:
            return self._fail(404, f"camera {camera_id!r} is not held by this worker")
        packets: queue.Queue[BufferedPacket | None] = queue.Queue()
        try:
            viewer = FlvViewer(camera_id, feed, packets.put)
        except LiveRefused as refused:
            return self._fail(refused.status, refused.message)
        self.media.count_viewer(+1)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "video/x-flv")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self._stream(viewer, packets)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the viewer (the API node) went away
        finally:
            self.media.count_viewer(-1)
            viewer.close()

    def _stream(self, viewer: FlvViewer, packets: queue.Queue[BufferedPacket | None]) -> None:
        for chunk in viewer.opening():
            self._write(chunk)
        while not viewer.behind(packets.qsize()):
            try:
                item = packets.get(timeout=5.0)
            except queue.Empty:
                if self._peer_closed() or self.media.feeds(viewer.camera_id) is None:
                    return  # the API node left, or the camera is no longer held here
                continue
            if item is None:  # the camera reconnected: the player starts again
                return
            self._write(viewer.chunk(item))

    def _write(self, chunk: bytes) -> None:
        if chunk:
            self.wfile.write(chunk)
            self.wfile.flush()

    def _peer_closed(self) -> bool:
        """Whether the API node closed the connection (no packets to notice it by)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True
