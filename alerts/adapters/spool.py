"""Local disk spools in front of an event bus: a published event survives the process.

Two spools, one file format (:func:`write_spool_file`):

* :class:`SpoolingEventBus` (the embedded hub, the alerts role) keeps each message on
  disk until every consumer group acknowledged it;
* :class:`ForwardingSpool` (a worker publishing to a remote bus) keeps it until the bus
  took it, forwarding in order from a background thread while the bus is down.

The rest of this text is about :class:`SpoolingEventBus`.

Every message is written to a file (and fsynced) before it is handed to the bus,
and the file is deleted only when every consumer group that was subscribed has
acknowledged it (after its alert was committed). On the next start, ``recover``
publishes what is left again: an event whose alert could not be stored before a
crash, a kill or a power cut is stored after the restart. Redelivering an event
already stored is harmless: its alert id was chosen where it was born.

A full or failing disk loses nothing either: a message whose file cannot be written
(``ENOSPC``, a read-only or vanished folder) is kept in a bounded memory buffer and
handed to the bus all the same; a writer thread writes it through as soon as the disk
takes it again (so a restart after the space came back still recovers it). When the
buffer is full, ``publish`` waits for room (back-pressure on the producer) instead of
dropping an event. Messages that can never be handled (a clip for an alert that does
not exist) are set aside in ``dead/`` with their reason (:meth:`dead_letter`).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alerts.ports import BusUnavailable, Delivery, EventBus
from core import metrics

log = logging.getLogger(__name__)

#: Messages kept in memory at most while the disk refuses them (then ``publish`` waits).
MEMORY_LIMIT = 10_000
#: Seconds between two attempts of the writer thread to write the buffer through.
RETRY_S = 1.0
#: Seconds between two warnings of a ``publish`` held by a full buffer.
WAIT_LOG_S = 10.0


class _Entry:
    """A message not yet acknowledged by every group: on disk (``path``) or only in memory."""

    __slots__ = ("topic", "payload", "path", "groups")

    def __init__(self, topic: str, payload: dict[str, Any], path: Path | None) -> None:
        self.topic = topic
        self.payload = payload
        self.path = path
        self.groups: set[str] = set()


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

    def __init__(
        self,
        inner: EventBus,
        directory: Path,
        *,
        memory_limit: int = MEMORY_LIMIT,
        retry_s: float = RETRY_S,
    ) -> None:
        self.inner = inner
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.memory_limit = memory_limit
        self.retry_s = retry_s
        self._groups: dict[str, set[str]] = {}
        self._entries: dict[str, _Entry] = {}  # message id -> entry (groups left)
        self._unwritten: dict[str, _Entry] = {}  # message id -> entry kept in memory only
        self._lock = threading.Condition()
        self._writer: threading.Thread | None = None
        self.last_error: str | None = None  # why the disk refused the last write
        self.written_late = 0  # messages written through after the disk came back
        self.dead_lettered = 0

    def subscribe(self, topic: str, group: str) -> None:
        self.inner.subscribe(topic, group)
        with self._lock:
            self._groups.setdefault(topic, set()).add(group)

    def publish(self, topic: str, payload: dict[str, Any]) -> str:
        self._wait_for_room()
        try:
            path: Path | None = self._write(topic, payload)
        except OSError as exc:
            path = None  # kept in memory, written through when the disk takes it
            self._disk_refused(exc)
        return self._hand_over(topic, payload, path)

    def consume(self, topic: str, group: str, timeout_s: float) -> Delivery | None:
        delivery = self.inner.consume(topic, group, timeout_s)
        if delivery is None:
            return None
        return _SpooledDelivery(delivery, lambda mid: self._acked(mid, group))

    def pending(self, topic: str, group: str) -> int:
        return self.inner.pending(topic, group)

    def spooled(self) -> int:
        """Messages not yet acknowledged by every group: on disk and in memory."""
        with self._lock:
            in_memory = len(self._unwritten)
        return sum(1 for _ in self.directory.glob("*.json")) + in_memory

    def in_memory(self) -> int:
        """Messages the disk refused, held in memory until it takes them."""
        with self._lock:
            return len(self._unwritten)

    def holds(self, topic: str, match: Callable[[dict[str, Any]], bool]) -> bool:
        """Whether an unacknowledged message of ``topic`` matches (e.g. the event of a
        clip's alert still on its way: the clip is then not a poison message)."""
        with self._lock:
            return any(e.topic == topic and match(e.payload) for e in self._entries.values())

    def dead_letter(self, topic: str, payload: dict[str, Any], reason: str) -> Path | None:
        """Set a message aside for good in ``dead/`` with ``reason`` (never retried)."""
        self.dead_lettered += 1
        folder = self.directory / "dead"
        record = {"topic": topic, "payload": payload, "reason": reason, "at": time.time()}
        try:
            folder.mkdir(exist_ok=True, mode=0o700)
            path = folder / f"{time.time():017.6f}-{uuid.uuid4().hex}.json"
            path.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
        except OSError as exc:
            log.error("dead letter not written (%s): %s", exc, json.dumps(record)[:2000])
            return None
        log.error("message dead-lettered (%s): %s", reason, path.name)
        return path

    def health(self) -> dict[str, object]:
        """``degraded`` while messages wait in memory for the disk (and why)."""
        waiting = self.in_memory()
        reason = f"event spool: {waiting} event(s) in memory, disk refused: {self.last_error}"
        return {"ok": waiting == 0, "in_memory": waiting, "reason": None if not waiting else reason}

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
        return write_spool_file(self.directory, topic, payload)

    def _disk_refused(self, exc: OSError) -> None:
        name = errno.errorcode.get(exc.errno or 0, "error")
        first = self.last_error is None
        self.last_error = f"{name}: {exc.strerror or exc}"
        if first:
            log.error("event spool %s refuses writes (%s): events kept in memory (at most %d) "
                      "until it takes them again", self.directory, self.last_error,
                      self.memory_limit)  # fmt: skip

    def _wait_for_room(self) -> None:
        """Back-pressure: hold the publisher while the memory buffer is full."""
        with self._lock:
            since = time.monotonic()
            while len(self._unwritten) >= self.memory_limit:
                if not self._lock.wait(WAIT_LOG_S):
                    log.error("event spool: %d event(s) in memory, disk still refuses (%s); "
                              "publisher waiting %.0f s", len(self._unwritten), self.last_error,
                              time.monotonic() - since)  # fmt: skip

    def _hand_over(self, topic: str, payload: dict[str, Any], path: Path | None) -> str:
        with self._lock:
            groups = set(self._groups.get(topic, ()))
            message_id = self.inner.publish(topic, payload)
            if groups:
                entry = _Entry(topic, payload, path)
                entry.groups = groups
                self._entries[message_id] = entry
                if path is None:
                    self._unwritten[message_id] = entry
                    metrics.SPOOL_MEMORY.inc()
                    self._start_writer()
        if not groups and path is not None:  # nobody would ever acknowledge it
            path.unlink(missing_ok=True)
        return message_id

    def _acked(self, message_id: str, group: str) -> None:
        with self._lock:
            entry = self._entries.get(message_id)
            if entry is None:
                return
            entry.groups.discard(group)
            if entry.groups:
                return
            del self._entries[message_id]
            if self._unwritten.pop(message_id, None) is not None:
                metrics.SPOOL_MEMORY.dec()
                self._lock.notify_all()  # room for a held publisher
            path = entry.path
        if path is not None:
            path.unlink(missing_ok=True)

    def _start_writer(self) -> None:  # with the lock held
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(target=self._write_through, name="spool-writer",
                                            daemon=True)  # fmt: skip
            self._writer.start()

    def _write_through(self) -> None:
        """Write the messages held in memory as soon as the disk takes them; then end."""
        while True:
            with self._lock:
                pending = list(self._unwritten.items())
                if not pending:
                    self._writer = None
                    return
            try:
                for message_id, entry in pending:
                    path = self._write(entry.topic, entry.payload)
                    with self._lock:
                        if self._unwritten.pop(message_id, None) is None:  # acked meanwhile
                            stale: Path | None = path
                        else:
                            entry.path, stale = path, None
                            self.written_late += 1
                            metrics.SPOOL_MEMORY.dec()
                            self._lock.notify_all()
                    if stale is not None:
                        stale.unlink(missing_ok=True)
            except OSError as exc:
                self._disk_refused(exc)
                time.sleep(self.retry_s)
                continue
            except Exception:  # noqa: BLE001 - the writer must not die with events in memory
                log.exception("event spool writer: unexpected error; retrying")
                time.sleep(self.retry_s)
                continue
            with self._lock:
                if not self._unwritten:
                    log.warning("event spool %s writable again: %d event(s) written through",
                                self.directory, self.written_late)  # fmt: skip
                    self.last_error = None


class ForwardingSpool:
    """A publisher's local disk spool in front of a remote bus (a worker's events).

    ``publish`` writes the message to ``directory`` (fsynced) and returns at once; the
    message is handed to the bus in order — at once while the bus is reachable, by a
    background thread with backoff while it is not — and its file deleted only when the
    bus took it. A crash or kill loses nothing: :meth:`recover` hands over what is left.
    ``consume``/``pending``/``subscribe`` go straight to the bus.
    """

    def __init__(
        self,
        inner: EventBus,
        directory: Path,
        *,
        backoff_max_s: float = 5.0,
        memory_limit: int = MEMORY_LIMIT,
        unavailable: tuple[type[BaseException], ...] = (BusUnavailable, OSError),
    ) -> None:
        self.inner = inner
        #: What ``inner.publish`` raises while the bus is down (kept, retried later).
        self.unavailable = unavailable
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.backoff_max_s = backoff_max_s
        # issue 21: a message the disk refuses (ENOSPC) waits in memory (bounded; then
        # publish waits for room) and is forwarded from there: never dropped.
        self.memory_limit = memory_limit
        self.in_memory = 0
        self._room = threading.Condition()
        self._backlog: deque[Path | tuple[str, dict[str, Any]]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bus-forward", daemon=True)
        self._thread.start()
        self.forwarded = 0

    def subscribe(self, topic: str, group: str) -> None:
        self.inner.subscribe(topic, group)

    def publish(self, topic: str, payload: dict[str, Any]) -> str:
        try:
            path = write_spool_file(self.directory, topic, payload)
        except OSError as exc:  # a full or read-only disk: keep it in memory
            return self._keep_in_memory(topic, payload, exc)
        with self._lock:  # the forwarding thread sends: a dead Redis never blocks here
            self._backlog.append(path)
        self._wake.set()
        return path.stem

    def _keep_in_memory(self, topic: str, payload: dict[str, Any], exc: OSError) -> str:
        with self._room:
            if self.in_memory == 0:
                log.error("event spool %s refuses writes (%s): events kept in memory until "
                          "forwarded", self.directory, exc)  # fmt: skip
            while self.in_memory >= self.memory_limit and not self._stop.is_set():
                self._room.wait(1.0)  # back-pressure: the forwarder makes room
            self.in_memory += 1
        with self._lock:
            self._backlog.append((topic, payload))
        self._wake.set()
        return f"memory-{uuid.uuid4().hex}"

    def consume(self, topic: str, group: str, timeout_s: float) -> Delivery | None:
        return self.inner.consume(topic, group, timeout_s)

    def pending(self, topic: str, group: str) -> int:
        return self.inner.pending(topic, group)

    def backlog(self) -> int:
        """Messages (on local disk, or in memory when the disk refused them) the bus has
        not taken yet."""
        with self._lock:
            return len(self._backlog)

    def recover(self) -> int:
        """Queue what a previous run left on disk (oldest first); how many messages."""
        paths = sorted(self.directory.glob("*.json"))
        with self._lock:
            known = {p for p in self._backlog if isinstance(p, Path)}
            fresh = [p for p in paths if p not in known]
            self._backlog.extendleft(reversed(fresh))
        if fresh:
            log.warning("%d event(s) left by the previous run forwarded again", len(fresh))
            self._wake.set()
        return len(fresh)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until the backlog is forwarded (or ``timeout_s``); True if it was."""
        deadline = time.monotonic() + timeout_s
        while self.backlog() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.05)
        return not self.backlog()

    def stop(self, timeout_s: float = 5.0) -> None:
        self.flush(timeout_s)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)

    def _forward(self, path: Path, topic: str, payload: dict[str, Any]) -> bool:
        try:
            self.inner.publish(topic, payload)
        except self.unavailable:
            return False
        path.unlink(missing_ok=True)
        self.forwarded += 1
        return True

    def _forward_memory(self, topic: str, payload: dict[str, Any]) -> bool:
        try:
            self.inner.publish(topic, payload)
        except self.unavailable:
            return False
        with self._lock:
            self._backlog.popleft()
        with self._room:
            self.in_memory -= 1
            self._room.notify_all()
        self.forwarded += 1
        return True

    def _run(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            self._wake.wait(delay if self.backlog() else 1.0)
            self._wake.clear()
            while not self._stop.is_set():  # a stopped spool sends nothing more
                with self._lock:
                    if not self._backlog:
                        delay = 0.1
                        break
                    head = self._backlog[0]
                if not isinstance(head, Path):  # held in memory: the disk refused it
                    if not self._forward_memory(*head):
                        delay = min(delay * 2, self.backoff_max_s)
                        break
                    continue
                path = head
                try:
                    record = json.loads(path.read_text(encoding="utf-8"))
                    topic, payload = record["topic"], record["payload"]
                except (OSError, ValueError, KeyError) as exc:
                    with self._lock:
                        self._backlog.popleft()
                    if path.exists():
                        path.replace(path.with_suffix(".bad"))
                    log.error("spooled event %s unreadable (%s): kept as .bad", path, exc)
                    continue
                if not self._forward(path, topic, payload):
                    delay = min(delay * 2, self.backoff_max_s)
                    break
                with self._lock:
                    self._backlog.popleft()


def write_spool_file(directory: Path, topic: str, payload: dict[str, Any]) -> Path:
    """One message as a file, fsynced (it must survive a power cut, not only a crash),
    written under a temporary name and renamed; named so that names sort by time."""
    path = directory / f"{time.time():017.6f}-{uuid.uuid4().hex}.json"
    tmp = path.with_suffix(".tmp")
    data = json.dumps({"topic": topic, "payload": payload}, ensure_ascii=False).encode()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:  # a short write is possible when the disk is nearly full
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a partial file would be read as corrupt later
        raise
    return path
