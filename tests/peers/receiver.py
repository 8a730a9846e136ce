"""A real HTTP receiver for dispatch tests (webhooks, alert pushes).

In-process (from a test)::

    rx = Receiver()            # port 0: a free port, kept across restarts
    rx.start()
    post_somewhere(rx.url + "/hook")
    headers, body, path = rx.wait_for(1)[0]
    rx.status = 503            # now every request is answered 503
    rx.stop(); rx.start()      # same port again (SO_REUSEADDR)

As a script (from a subprocess; one JSON line per request appended to FILE)::

    python tests/peers/receiver.py --port P --out FILE [--status 200]

Prints ``READY`` on stdout once listening; exits 0 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LOOPBACK = "127.0.0.1"

#: One recorded request: (headers, body, path).
Record = tuple[dict[str, str], bytes, str]


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that can rebind a port right after it was closed."""

    allow_reuse_address = True
    daemon_threads = True
    receiver: Receiver


class _Handler(BaseHTTPRequestHandler):
    """Records every request and answers with the receiver's current status.

    HTTP/1.0 (the default): one request per connection, so after ``stop()`` no
    kept-alive connection can still deliver requests.
    """

    server: _Server

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        receiver = self.server.receiver
        receiver._record(dict(self.headers.items()), body, self.path, self.command)
        if receiver.delay > 0:
            time.sleep(receiver.delay)
        status = receiver.status
        payload = json.dumps({"ok": 200 <= status < 300, "status": status}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_POST = do_PUT = do_PATCH = do_GET = do_DELETE = do_HEAD = _handle

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Silence the per-request stderr log."""


class Receiver:
    """An HTTP server on 127.0.0.1 that records requests and answers ``status``.

    Attributes you may set at any time: ``status`` (the HTTP status of every
    answer, e.g. 500 or 503 to simulate an outage) and ``delay`` (seconds to wait
    before answering, to exercise client timeouts).
    """

    def __init__(
        self,
        port: int = 0,
        status: int = 200,
        on_request: Callable[[dict[str, str], bytes, str, str], None] | None = None,
    ) -> None:
        self.port = port
        self.status = status
        self.delay = 0.0
        self.on_request = on_request
        self._records: list[Record] = []
        self._methods: list[str] = []
        self._lock = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> Receiver:
        """Listen on 127.0.0.1:``port`` (a free port the first time when 0)."""
        if self._server is not None:
            return self
        server = _Server((LOOPBACK, self.port), _Handler)
        server.receiver = self
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"receiver-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (the port is kept for a later ``start()``)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- results --------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123`` (no trailing slash)."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def requests(self) -> list[Record]:
        """A snapshot of the recorded (headers, body, path) tuples, oldest first."""
        with self._lock:
            return list(self._records)

    @property
    def methods(self) -> list[str]:
        """HTTP methods of the recorded requests, in the same order."""
        with self._lock:
            return list(self._methods)

    def clear(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._records.clear()
            self._methods.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Record]:
        """Wait until at least ``count`` requests were recorded; return them all.

        Raises ``TimeoutError`` (saying how many arrived) after ``timeout`` seconds.
        """
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._records) >= count, timeout):
                raise TimeoutError(
                    f"receiver {self.url}: {len(self._records)} request(s) after "
                    f"{timeout:.1f} s, expected {count}"
                )
            return list(self._records)

    def _record(self, headers: dict[str, str], body: bytes, path: str, method: str) -> None:
        with self._lock:
            self._records.append((headers, body, path))
            self._methods.append(method)
            self._lock.notify_all()
        if self.on_request is not None:
            self.on_request(headers, body, path, method)


def _append_json_line(out: Path) -> Callable[[dict[str, str], bytes, str, str], None]:
    lock = threading.Lock()

    def write(headers: dict[str, str], body: bytes, path: str, method: str) -> None:
        line = json.dumps({
            "method": method,
            "path": path,
            "headers": headers,
            "body": body.decode("utf-8", errors="replace"),
            "time": time.time(),
        })
        with lock, out.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    return write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Record HTTP requests as JSON lines.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--status", type=int, default=200)
    args = parser.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    receiver = Receiver(args.port, args.status, on_request=_append_json_line(args.out))
    receiver.start()
    print(f"PORT {receiver.port}", flush=True)
    print("READY", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
