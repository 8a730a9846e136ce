"""The API's endless responses (the event feed, live video) end when the server stops.

uvicorn stops on SIGINT/SIGTERM by closing its listening sockets and then waiting for
every open connection to finish its response: an SSE feed or a live video stream never
does, so a console left open kept the hub running (150 s until a second signal). Each
such stream registers a callback here; :class:`ApiServer` (uvicorn's server) calls them
all as soon as it is asked to stop, each stream ends its body, the connections close and
the server stops within a second. Clients see the stream end and reconnect later (the
console shows the feed disconnected and retries).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn

#: How long uvicorn waits for other requests (a clip download) before cancelling them.
GRACE_S = 3


class OpenStreams:
    """The open endless responses, each with the callback that ends it. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closers: dict[int, tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = {}
        self._next = 0
        self.closing = False

    def register(self, close: Callable[[], None]) -> Callable[[], None]:
        """Call ``close`` (on the caller's event loop) when the server stops; returns the
        function that unregisters it. Registered while closing: called at once."""
        loop = asyncio.get_running_loop()
        with self._lock:
            key = self._next
            self._next += 1
            self._closers[key] = (loop, close)
            closing = self.closing
        if closing:
            loop.call_soon(close)

        def unregister() -> None:
            with self._lock:
                self._closers.pop(key, None)

        return unregister

    def __len__(self) -> int:
        with self._lock:
            return len(self._closers)

    def close_all(self) -> int:
        """End every open stream (from any thread, a signal handler included)."""
        with self._lock:
            self.closing = True
            closers = list(self._closers.values())
        for loop, close in closers:
            try:
                loop.call_soon_threadsafe(close)
            except RuntimeError:  # its loop is closed already: nothing left to end
                pass
        return len(closers)


class ApiServer(uvicorn.Server):
    """uvicorn's server, which ends the open streams when it is asked to stop."""

    def __init__(self, config: uvicorn.Config, streams: OpenStreams) -> None:
        if config.timeout_graceful_shutdown is None:
            config.timeout_graceful_shutdown = GRACE_S
        super().__init__(config)
        self.streams = streams

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # a signal handler: no logging here (its locks are not reentrant)
        self.streams.close_all()
        super().handle_exit(sig, frame)
