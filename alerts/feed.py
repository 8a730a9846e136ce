"""Alert change notifications for live views (the console's alert feed).

The alert service publishes ``(kind, alert_id)`` after each commit; the API's
server-sent-events stream subscribes and reads the alert itself (with the
viewer's scope), so the feed carries no data a viewer may not see. A slow
subscriber loses notifications, never blocks the service: the feed is a
best-effort signal on top of the database, which stays the truth (a console that
reconnects re-reads the list).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal

FeedKind = Literal["alert", "alert_changed"]
Listener = Callable[[FeedKind, str], None]


class AlertFeed:
    """In-process publish/subscribe of alert notifications (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[int, Listener] = {}
        self._next = 0

    def publish(self, kind: FeedKind, alert_id: str) -> None:
        with self._lock:
            listeners = list(self._listeners.values())
        for listener in listeners:
            listener(kind, alert_id)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            key = self._next
            self._next += 1
            self._listeners[key] = listener

        def unsubscribe() -> None:
            with self._lock:
                self._listeners.pop(key, None)

        return unsubscribe

    @property
    def subscribers(self) -> int:
        return len(self._listeners)
