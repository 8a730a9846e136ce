"""A TCP peer that accepts and never answers: a camera that hangs its handshake."""

from __future__ import annotations

import socket
import threading


class SilentServer:
    """A TCP server that accepts connections and never answers (a camera whose RTSP
    service hangs its handshake); it notes which connections the client has closed."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.open = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self.open += 1
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            while True:  # read what the client sends, answer nothing
                try:
                    if not conn.recv(4096):
                        break
                except OSError:
                    break
        with self._lock:
            self.open -= 1

    def close(self) -> None:
        self.sock.close()
