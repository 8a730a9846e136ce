"""Camera leases on Redis (distributed mode): which worker analyses which camera.

* A lease is a redis-py :class:`redis.lock.Lock` per camera (``SET NX PX`` with a
  token naming the worker; renewed with ``extend``; released only by its holder —
  the library's Lua scripts). A worker that dies stops renewing: its cameras are free
  again after ``lease_s`` and another worker takes them.
* Each acquisition draws a **fencing token** (``INCR`` per camera; the issue time is
  kept from Redis' clock). A worker stamps its events with the token of the lease it
  held; the alert consumer rejects an event whose token is older than the camera's
  current one *and* that was made after the newer token was issued (:class:`Fences`):
  a worker that lost its lease and goes on writing is not believed.
* A worker that cannot renew before its lease runs out (Redis away, a long pause)
  treats the lease as lost and stops the camera (:meth:`WorkerLeases.renew`).
* Workers announce themselves in a sorted set (heartbeat with expiry); each takes
  about its fair share ``ceil(cameras / live workers)``, cameras ordered by rendezvous
  hashing so that a camera tends to go back to the same worker.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

import redis
from redis.exceptions import LockError

log = logging.getLogger(__name__)

#: INCR the camera's counter; record (token, issue time in ms) in a sorted set.
_DRAW = """
local n = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], n, n .. ':' .. ms)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -17)
return {n, ms}
"""


@dataclass
class Held:
    lock: redis.lock.Lock
    token: int  # the fencing token
    valid_until: float  # monotonic: the lease is surely ours until then


class Fences:
    """Fencing tokens of cameras (read by the alert consumer, drawn by workers)."""

    def __init__(self, r: redis.Redis, prefix: str) -> None:
        self.r = r
        self.prefix = prefix
        self._draw = r.register_script(_DRAW)

    def _keys(self, camera_id: str) -> list[str]:
        return [f"{self.prefix}:fence:{camera_id}:n", f"{self.prefix}:fence:{camera_id}:issued"]

    def draw(self, camera_id: str) -> int:
        n, _ = self._draw(keys=self._keys(camera_id))
        return int(n)

    def current(self, camera_id: str) -> int:
        return int(self.r.get(self._keys(camera_id)[0]) or 0)

    def is_stale(self, camera_id: str, token: int, created_at: float) -> bool:
        """True if a newer lease on the camera was granted before the event was made:
        its worker had lost the lease when it wrote it."""
        newer = self.r.zrangebyscore(self._keys(camera_id)[1], f"({token}", "+inf", 0, 1)
        if not newer:
            return False
        raw = newer[0].decode() if isinstance(newer[0], bytes) else str(newer[0])
        issued_ms = int(raw.split(":", 1)[1])
        return created_at * 1000 > issued_ms


class WorkerLeases:
    """The leases of one worker."""

    def __init__(self, r: redis.Redis, prefix: str, worker_id: str, lease_s: float) -> None:
        self.r = r
        self.prefix = prefix
        self.worker_id = worker_id
        self.lease_s = lease_s
        self.fences = Fences(r, prefix)
        self.held: dict[str, Held] = {}
        self._workers_key = f"{prefix}:workers"
        self._ranks: dict[str, int] = {}

    def lock_key(self, camera_id: str) -> str:
        return f"{self.prefix}:lease:{camera_id}"

    # -- membership ---------------------------------------------------------------------

    def heartbeat(self) -> None:
        now = time.time()
        pipe = self.r.pipeline()
        pipe.zadd(self._workers_key, {self.worker_id: now + self.lease_s})
        pipe.zremrangebyscore(self._workers_key, "-inf", now)
        pipe.execute()

    def live_workers(self) -> list[str]:
        members = self.r.zrangebyscore(self._workers_key, time.time(), "+inf")
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    def leave(self) -> None:
        for camera_id in list(self.held):
            self.release(camera_id)
        self.r.zrem(self._workers_key, self.worker_id)

    # -- leases -------------------------------------------------------------------------

    def try_acquire(self, camera_id: str) -> int | None:
        """The new fencing token if the camera was free and is now ours, else None."""
        lock = self.r.lock(self.lock_key(camera_id), timeout=self.lease_s, blocking=False,
                           thread_local=False)  # fmt: skip
        started = time.monotonic()
        if not lock.acquire(token=f"{self.worker_id}|{time.time_ns()}"):
            return None
        token = self.fences.draw(camera_id)
        self.held[camera_id] = Held(lock, token, started + self.lease_s)
        log.info("camera %s: lease taken by %s (fencing token %d)", camera_id, self.worker_id,
                 token)  # fmt: skip
        return token

    def renew(self) -> list[str]:
        """Extend every lease; the cameras whose lease is lost (taken over, expired, or
        not renewable before it runs out) — the caller must stop them."""
        lost = []
        for camera_id, held in list(self.held.items()):
            started = time.monotonic()
            try:
                held.lock.extend(self.lease_s, replace_ttl=True)
                held.valid_until = started + self.lease_s
                continue
            except LockError as exc:  # not ours any more (expired and maybe taken)
                reason = str(exc)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                if time.monotonic() < held.valid_until - 0.5:
                    continue  # still surely ours: try again on the next round
                reason = f"Redis unreachable until the lease ran out ({exc})"
            log.warning("camera %s: lease lost by %s: %s", camera_id, self.worker_id, reason)
            del self.held[camera_id]
            lost.append(camera_id)
        return lost

    def release(self, camera_id: str) -> None:
        held = self.held.pop(camera_id, None)
        if held is None:
            return
        try:
            held.lock.release()
        except (LockError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            pass  # expired already, or Redis away: it expires by itself
        log.info("camera %s: lease released by %s", camera_id, self.worker_id)

    def token(self, camera_id: str) -> int | None:
        held = self.held.get(camera_id)
        return None if held is None else held.token

    def holders(self, camera_ids: list[str]) -> dict[str, str]:
        """camera id -> the worker holding its lease (cameras nobody holds left out)."""
        if not camera_ids:
            return {}
        values = self.r.mget([self.lock_key(c) for c in camera_ids])
        out = {}
        for camera_id, value in zip(camera_ids, values, strict=True):
            if value:
                raw = value.decode() if isinstance(value, bytes) else str(value)
                out[camera_id] = raw.split("|", 1)[0]
        return out

    # -- the share ----------------------------------------------------------------------

    def plan(self, cameras: list[str]) -> tuple[list[str], list[str], int]:
        """(cameras to give up, cameras to try in order, the fair share) to move toward
        ``ceil(cameras / live workers)`` held by this worker."""
        workers = self.live_workers() or [self.worker_id]
        if self.worker_id not in workers:
            workers.append(self.worker_id)
        share = math.ceil(len(cameras) / len(workers)) if cameras else 0
        wanted = set(cameras)
        give_up = [c for c in self.held if c not in wanted]  # removed or disabled
        mine = sorted((c for c in self.held if c in wanted), key=self._rank, reverse=True)
        give_up += mine[share:]  # keep the ones this worker ranks highest
        if len(mine) >= share:
            return give_up, [], share
        free = sorted((c for c in cameras if c not in self.held), key=self._rank, reverse=True)
        return give_up, free, share

    def _rank(self, camera_id: str) -> int:
        rank = self._ranks.get(camera_id)
        if rank is None:  # a worker's ranks never change: hashed once per camera
            digest = hashlib.blake2b(f"{camera_id}|{self.worker_id}".encode(), digest_size=8)
            rank = self._ranks[camera_id] = int.from_bytes(digest.digest(), "big")
        return rank
