"""The event bus on Redis Streams (distributed mode): the same at-least-once contract
as :class:`alerts.adapters.memory_bus.MemoryEventBus`, across processes and hosts.

* a topic is the stream ``<prefix>:stream:<topic>``; a message is one entry whose
  field ``p`` holds the JSON payload (``XADD``);
* a group is a consumer group created with ``MKSTREAM`` from the start of the stream
  (a worker may publish before the ``alerts`` role first subscribed: nothing is lost);
* ``consume`` = ``XREADGROUP ... >``; the entry stays in the group's pending list
  (PEL) until :meth:`RedisDelivery.ack` (``XACK``), which the alert service calls only
  after its SQL commit;
* ``nack(delay)`` leaves the entry pending and takes it back (``XCLAIM`` to the same
  consumer, which counts the attempt) once the delay has passed;
* entries pending for a consumer that died are taken over by another consumer of the
  group with ``XAUTOCLAIM`` once idle for ``claim_idle_s``;
* once the stream holds more than ``maxlen`` entries its acknowledged history is
  trimmed with ``XTRIM MINID ~``: the trim point is never past the oldest entry some
  group has not acknowledged (or not yet read), so an unacknowledged entry is never
  dropped (``MAXLEN`` alone would drop them);
* connection errors are retried with exponential backoff (Redis restarting): consume
  returns None meanwhile, ack retries, publish raises :class:`BusUnavailable` — put
  :class:`ForwardingSpool` in front of a publisher so that an event is on local disk
  before and until Redis has it.

Redis must persist the stream (``appendonly yes``; ``appendfsync always`` makes an
acknowledged ``XADD`` survive a crash of Redis itself, see docs/deployment.md).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from alerts.adapters.spool import ForwardingSpool
from alerts.ports import BusUnavailable

log = logging.getLogger(__name__)

__all__ = ["BusUnavailable", "ForwardingSpool", "RedisEventBus"]

#: Errors meaning "Redis is not reachable right now" (restart, network): retried.
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)
FIELD = "p"


def redis_client(url: str, *, socket_timeout: float = 10.0) -> redis.Redis:
    """A client that reconnects with backoff (a few quick retries per command)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=2.0,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def consumer_name() -> str:
    """Unique per bus instance: host, process, random (a restarted process is a new
    consumer; what its predecessor left pending is reclaimed by XAUTOCLAIM)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class RedisDelivery:
    def __init__(
        self, bus: RedisEventBus, topic: str, group: str, entry_id: str,
        payload: dict[str, Any], attempts: int,
    ) -> None:  # fmt: skip
        self._bus = bus
        self._topic = topic
        self._group = group
        self._id = entry_id
        self._payload = payload
        self._attempts = attempts
        self._done = False

    @property
    def id(self) -> str:
        return self._id

    @property
    def payload(self) -> dict[str, Any]:
        return self._payload

    @property
    def attempts(self) -> int:
        return self._attempts

    def ack(self) -> None:
        if self._done:
            return
        self._done = True
        self._bus._ack(self._topic, self._group, self._id)

    def nack(self, delay_s: float = 0.0) -> None:
        if self._done:
            return
        self._done = True
        self._bus._nack(self._topic, self._group, self._id, delay_s)


class RedisEventBus:
    """``EventBus`` on Redis Streams with consumer groups. Thread-safe."""

    def __init__(
        self,
        url_or_client: str | redis.Redis,
        *,
        prefix: str = "shaobing",
        consumer: str | None = None,
        maxlen: int = 100_000,
        claim_idle_s: float = 30.0,
        trim_interval_s: float = 5.0,
        backoff_max_s: float = 5.0,
    ) -> None:
        # Any: redis-py's stream replies are typed loosely (unions of reply shapes)
        self.r: Any = (
            redis_client(url_or_client) if isinstance(url_or_client, str) else url_or_client
        )
        self.prefix = prefix
        self.consumer = consumer or consumer_name()
        self.maxlen = maxlen
        self.claim_idle_s = claim_idle_s
        self.trim_interval_s = trim_interval_s
        self.backoff_max_s = backoff_max_s
        self._groups: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        # nacked entries of this consumer: (topic, group) -> deque of (due, entry id)
        self._retry: dict[tuple[str, str], deque[tuple[float, str]]] = {}
        self._last_claim: dict[tuple[str, str], float] = {}
        self._last_trim: dict[str, float] = {}
        self._down_since: float | None = None
        self._backoff = 0.1
        self.reclaimed = 0  # entries taken over from dead consumers

    def key(self, topic: str) -> str:
        return f"{self.prefix}:stream:{topic}"

    # -- the port ---------------------------------------------------------------------

    def subscribe(self, topic: str, group: str) -> None:
        self._create_group(topic, group)
        with self._lock:
            self._groups.add((topic, group))

    def publish(self, topic: str, payload: dict[str, Any]) -> str:
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        try:
            entry_id = self.r.xadd(self.key(topic), {FIELD: data})
        except UNAVAILABLE as exc:
            raise BusUnavailable(f"Redis unavailable: {exc}") from exc
        self._up()
        self.maybe_trim(topic)
        return _s(entry_id)

    def consume(self, topic: str, group: str, timeout_s: float) -> RedisDelivery | None:
        if (topic, group) not in self._groups:
            raise KeyError(f"no consumer group {group!r} on topic {topic!r}: subscribe first")
        try:
            delivery = self._retry_due(topic, group) or self._reclaim(topic, group)
            if delivery is None:
                delivery = self._read_new(topic, group, timeout_s)
        except UNAVAILABLE as exc:
            self._down(exc, timeout_s)
            return None
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # Redis lost the stream (restarted without persistence): make it again.
            log.warning("stream %s: group %s missing; created again", self.key(topic), group)
            self._create_group(topic, group)
            return None
        self._up()
        return delivery

    def pending(self, topic: str, group: str) -> int:
        """Entries not yet acknowledged by ``group``: read and pending, or not yet read."""
        try:
            info = self._group_info(topic, group)
            if info is None:
                return 0
            lag = info.get("lag")
            if lag is None:  # Redis cannot tell (entries deleted): count them
                last = _s(info["last-delivered-id"])
                lag = len(self.r.xrange(self.key(topic), f"({last}", "+"))
            return int(info["pending"]) + int(lag)
        except UNAVAILABLE as exc:
            raise BusUnavailable(f"Redis unavailable: {exc}") from exc

    # -- trimming ---------------------------------------------------------------------

    def maybe_trim(self, topic: str) -> None:
        now = time.monotonic()
        if now - self._last_trim.get(topic, float("-inf")) < self.trim_interval_s:
            return
        self._last_trim[topic] = now
        try:
            self.trim(topic)
        except UNAVAILABLE:
            pass
        except ResponseError as exc:  # never fail a publish or an ack over housekeeping
            log.warning("trimming %s failed: %s", self.key(topic), exc)

    def trim(self, topic: str) -> int:
        """Once the stream holds more than ``maxlen`` entries, drop its acknowledged
        history; never an entry that a group has not acknowledged or not yet read (the
        memory bound is ``max(maxlen, unacknowledged)``). Returns the entries removed."""
        key = self.key(topic)
        if int(self.r.xlen(key)) <= self.maxlen:
            return 0
        groups = self.r.xinfo_groups(key)
        if not groups:  # nobody to keep anything for
            return int(self.r.xtrim(key, maxlen=self.maxlen, approximate=True))
        limit: str | None = None
        for info in groups:
            name = _s(info["name"])
            if int(info["pending"]):
                first_unacked = _s(self.r.xpending(key, name)["min"])
            else:  # all read entries acknowledged: the first unread one is the bound
                last = _s(info["last-delivered-id"])
                following = self.r.xrange(key, f"({last}", "+", count=1)
                first_unacked = _s(following[0][0]) if following else _next_id(last)
            if limit is None or _id_key(first_unacked) < _id_key(limit):
                limit = first_unacked
        # MINID removes entries with a smaller id only; "~" may keep a few more.
        return int(self.r.xtrim(key, minid=limit, approximate=True))

    # -- internals ----------------------------------------------------------------------

    def _create_group(self, topic: str, group: str) -> None:
        try:
            self.r.xgroup_create(self.key(topic), group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        except UNAVAILABLE as exc:
            raise BusUnavailable(f"Redis unavailable: {exc}") from exc

    def _group_info(self, topic: str, group: str) -> dict[str, Any] | None:
        try:
            groups = self.r.xinfo_groups(self.key(topic))
        except ResponseError:  # no such stream
            return None
        for info in groups:
            if _s(info["name"]) == group:
                return dict(info)
        return None

    def _delivery(
        self, topic: str, group: str, entry_id: Any, fields: Any, attempts: int
    ) -> RedisDelivery | None:
        entry = _s(entry_id)
        if not fields:  # deleted while pending (trimmed by a foreign client): drop it
            self.r.xack(self.key(topic), group, entry)
            return None
        raw = fields.get(FIELD.encode()) if isinstance(fields, dict) else None
        if raw is None:
            raw = fields.get(FIELD)
        try:
            payload = json.loads(raw)
        except (TypeError, ValueError):
            log.error("stream %s entry %s is not a message; acknowledged and dropped",
                      self.key(topic), entry)  # fmt: skip
            self.r.xack(self.key(topic), group, entry)
            return None
        return RedisDelivery(self, topic, group, entry, payload, attempts)

    def _read_new(self, topic: str, group: str, timeout_s: float) -> RedisDelivery | None:
        block = max(1, int(min(timeout_s, 5.0) * 1000))
        reply = self.r.xreadgroup(
            group, self.consumer, {self.key(topic): ">"}, count=1, block=block
        )
        if not reply:
            return None
        _, entries = reply[0]
        if not entries:
            return None
        entry_id, fields = entries[0]
        return self._delivery(topic, group, entry_id, fields, 1)

    def _retry_due(self, topic: str, group: str) -> RedisDelivery | None:
        """An entry this consumer nacked whose delay has passed (taken back: XCLAIM)."""
        with self._lock:
            waiting = self._retry.get((topic, group))
            if not waiting or waiting[0][0] > time.monotonic():
                return None
            _, entry = waiting.popleft()
        return self._claim(topic, group, entry)

    def _claim(self, topic: str, group: str, entry: str) -> RedisDelivery | None:
        claimed = self.r.xclaim(self.key(topic), group, self.consumer, 0, [entry])
        if not claimed:  # acknowledged meanwhile, or taken by another consumer
            return None
        entry_id, fields = claimed[0]
        return self._delivery(topic, group, entry_id, fields, self._attempts(topic, group, entry))

    def _reclaim(self, topic: str, group: str) -> RedisDelivery | None:
        """One entry idle in another (dead) consumer's pending list, taken over."""
        now = time.monotonic()
        if now - self._last_claim.get((topic, group), float("-inf")) < min(
            1.0, self.claim_idle_s / 4
        ):
            return None
        idle_ms = int(self.claim_idle_s * 1000)
        reply = self.r.xautoclaim(
            self.key(topic), group, self.consumer, idle_ms, start_id="0-0", count=1
        )
        entries = reply[1] if len(reply) > 1 else []
        if not entries:
            self._last_claim[(topic, group)] = now  # nothing idle: look again later
            return None
        entry_id, fields = entries[0]
        entry = _s(entry_id)
        with self._lock:
            waiting = self._retry.get((topic, group))
            if waiting:  # our own delayed retry: it is ours, not a dead consumer's
                self._retry[(topic, group)] = deque(x for x in waiting if x[1] != entry)
        self.reclaimed += 1
        attempts = self._attempts(topic, group, entry)
        log.warning("stream %s: entry %s reclaimed from an idle consumer (attempt %d)",
                    self.key(topic), entry, attempts)  # fmt: skip
        return self._delivery(topic, group, entry_id, fields, attempts)

    def _attempts(self, topic: str, group: str, entry: str) -> int:
        info = self.r.xpending_range(self.key(topic), group, entry, entry, 1)
        return int(info[0]["times_delivered"]) if info else 1

    def _ack(self, topic: str, group: str, entry: str) -> None:
        """XACK, retried while Redis is away (bounded): if it never gets through, the
        entry stays pending and is delivered again — harmless, the alert is stored."""
        delay = 0.1
        deadline = time.monotonic() + 30.0
        while True:
            try:
                self.r.xack(self.key(topic), group, entry)
                break
            except UNAVAILABLE as exc:
                if time.monotonic() > deadline:
                    log.warning("ack of %s not sent (%s): it will be delivered again", entry, exc)
                    return
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        self.maybe_trim(topic)

    def _nack(self, topic: str, group: str, entry: str, delay_s: float) -> None:
        with self._lock:
            waiting = self._retry.setdefault((topic, group), deque())
            waiting.append((time.monotonic() + max(0.0, delay_s), entry))
            self._retry[(topic, group)] = deque(sorted(waiting))

    def _down(self, exc: Exception, timeout_s: float) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("Redis unavailable (%s); retrying with backoff", exc)
        time.sleep(min(self._backoff, max(timeout_s, 0.05)))
        self._backoff = min(self._backoff * 2, self.backoff_max_s)

    def _up(self) -> None:
        if self._down_since is not None:
            log.warning("Redis reachable again after %.1f s", time.monotonic() - self._down_since)
            self._down_since = None
        self._backoff = 0.1


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_key(entry: str) -> tuple[int, int]:
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0)


def _next_id(entry: str) -> str:
    ms, seq = _id_key(entry)
    return f"{ms}-{seq + 1}"
