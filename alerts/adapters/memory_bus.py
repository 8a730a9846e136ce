"""The in-process event bus (embedded mode): at-least-once, acknowledged delivery.

Each (topic, group) has a queue; a delivered message stays *pending* until the
consumer acknowledges it; a negative acknowledgement (or a consumer that raised)
puts it back after a delay. Nothing here survives the process: the hub wraps this
bus in :class:`alerts.adapters.spool.SpoolingEventBus`, which keeps each message on
disk until the alert service acknowledged it (after the commit) and publishes what
is left again on the next start.
"""

from __future__ import annotations

import itertools
import queue
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Message:
    id: str
    payload: dict[str, Any]
    attempts: int = 0


@dataclass
class _Group:
    queue: queue.Queue[_Message] = field(default_factory=queue.Queue)
    unacked: dict[str, _Message] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class MemoryDelivery:
    def __init__(self, group: _Group, message: _Message) -> None:
        self._group = group
        self._message = message
        self._done = False

    @property
    def id(self) -> str:
        return self._message.id

    @property
    def payload(self) -> dict[str, Any]:
        return self._message.payload

    @property
    def attempts(self) -> int:
        return self._message.attempts

    def ack(self) -> None:
        if self._done:
            return
        self._done = True
        with self._group.lock:
            self._group.unacked.pop(self._message.id, None)

    def nack(self, delay_s: float = 0.0) -> None:
        if self._done:
            return
        self._done = True
        if delay_s <= 0:
            self._group.queue.put(self._message)
            return
        timer = threading.Timer(delay_s, self._group.queue.put, args=(self._message,))
        timer.daemon = True
        timer.start()


class MemoryEventBus:
    """Topics and consumer groups in memory; thread-safe."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], _Group] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def subscribe(self, topic: str, group: str) -> None:
        with self._lock:
            self._groups.setdefault((topic, group), _Group())

    def publish(self, topic: str, payload: dict[str, Any]) -> str:
        message_id = f"{next(self._ids)}"
        with self._lock:
            groups = [g for (t, _), g in self._groups.items() if t == topic]
        for group in groups:
            message = _Message(message_id, payload)
            with group.lock:
                group.unacked[message_id] = message
            group.queue.put(message)
        return message_id

    def consume(self, topic: str, group: str, timeout_s: float) -> MemoryDelivery | None:
        g = self._groups.get((topic, group))
        if g is None:
            raise KeyError(f"no consumer group {group!r} on topic {topic!r}: subscribe first")
        try:
            message = g.queue.get(timeout=timeout_s)
        except queue.Empty:
            return None
        message.attempts += 1
        return MemoryDelivery(g, message)

    def pending(self, topic: str, group: str) -> int:
        g = self._groups.get((topic, group))
        if g is None:
            return 0
        with g.lock:
            return len(g.unacked)
