"""A local spool under any event bus: a published event survives the process.

Every message is written to a file (and fsynced) before it is handed to the bus,
and the file is deleted only when every consumer group that was subscribed has
acknowledged it (after its alert was committed). On the next start, ``recover``
publishes what is left again: an event whose alert could not be stored before a
crash, a kill or a power cut is stored after the restart. Redelivering an event
already stored is harmless: its alert id was chosen where it was born.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from alerts.ports import Delivery, EventBus

log = logging.getLogger(__name__)


class _SpooledDelivery:
    def __init__(self, inner: Delivery, on_ack: Any) -> None:
        self._inner = inner
        self._on_ack = on_ack

    @property
    def id(self) -> str:
        return self._inner.id

    @property
    def payload(self) -> dict[str, Any]:
        return self._inner.payload

    @property
    def attempts(self) -> int:
        return self._inner.attempts

    def ack(self) -> None:
        self._inner.ack()
        self._on_ack(self._inner.id)

    def nack(self, delay_s: float = 0.0) -> None:
        self._inner.nack(delay_s)


class SpoolingEventBus:
    """``EventBus`` wrapper keeping each message in ``directory`` until acknowledged."""

    def __init__(self, inner: EventBus, directory: Path) -> None:
        self.inner = inner
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._groups: dict[str, set[str]] = {}
        self._files: dict[str, tuple[Path, set[str]]] = {}  # message id -> file, groups left
        self._lock = threading.Lock()

    def subscribe(self, topic: str, group: str) -> None:
        self.inner.subscribe(topic, group)
        with self._lock:
            self._groups.setdefault(topic, set()).add(group)

    def publish(self, topic: str, payload: dict[str, Any]) -> str:
        path = self._write(topic, payload)
        return self._hand_over(topic, payload, path)

    def consume(self, topic: str, group: str, timeout_s: float) -> Delivery | None:
        delivery = self.inner.consume(topic, group, timeout_s)
        if delivery is None:
            return None
        return _SpooledDelivery(delivery, lambda mid: self._acked(mid, group))

    def pending(self, topic: str, group: str) -> int:
        return self.inner.pending(topic, group)

    def spooled(self) -> int:
        """Messages on disk not yet acknowledged by every group."""
        return sum(1 for _ in self.directory.glob("*.json"))

    def recover(self) -> int:
        """Publish again what a previous run left in the spool; how many messages."""
        count = 0
        for path in sorted(self.directory.glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                topic, payload = record["topic"], record["payload"]
            except (OSError, ValueError, KeyError) as exc:
                bad = path.with_suffix(".bad")
                path.replace(bad)
                log.error("spooled event %s unreadable (%s): kept as %s", path.name, exc, bad.name)
                continue
            self._hand_over(topic, payload, path)
            count += 1
        if count:
            log.warning("%d event(s) left by the previous run published again", count)
        return count

    # -- internals -------------------------------------------------------------------

    def _write(self, topic: str, payload: dict[str, Any]) -> Path:
        name = f"{time.time():017.6f}-{uuid.uuid4().hex}.json"
        path = self.directory / name
        tmp = path.with_suffix(".tmp")
        data = json.dumps({"topic": topic, "payload": payload}, ensure_ascii=False).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)  # the event must survive a power cut, not only a crash
        finally:
            os.close(fd)
        tmp.replace(path)
        return path

    def _hand_over(self, topic: str, payload: dict[str, Any], path: Path) -> str:
        with self._lock:
            groups = set(self._groups.get(topic, ()))
            message_id = self.inner.publish(topic, payload)
            if groups:
                self._files[message_id] = (path, groups)
        if not groups:  # nobody would ever acknowledge it
            path.unlink(missing_ok=True)
        return message_id

    def _acked(self, message_id: str, group: str) -> None:
        with self._lock:
            entry = self._files.get(message_id)
            if entry is None:
                return
            path, left = entry
            left.discard(group)
            if left:
                return
            del self._files[message_id]
        path.unlink(missing_ok=True)
