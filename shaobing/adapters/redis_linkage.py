"""The linkage engine's state in Redis (distributed mode): which alerts roles' engine acts
on an alert (claimed once), and the cameras a linkage moved with when each returns home
(kept across a restart of the alerts role)."""

from __future__ import annotations

import json

import redis

CLAIM_TTL_S = 7 * 24 * 3600  # an alert's notification is not re-published after this


class RedisAlertClaim:
    """:class:`~linkage.ports.AlertClaim`: ``SET NX`` on one key per alert."""

    def __init__(self, r: redis.Redis, prefix: str, owner: str) -> None:
        self.r = r
        self.prefix = prefix
        self.owner = owner

    def __call__(self, alert_id: str) -> bool:
        key = f"{self.prefix}:linkage:claim:{alert_id}"
        return bool(self.r.set(key, self.owner, nx=True, ex=CLAIM_TTL_S))


class RedisHomeTimers:
    """:class:`~linkage.ports.HomeTimers`: one hash, camera → ``[at, alert_id]``."""

    def __init__(self, r: redis.Redis, prefix: str) -> None:
        self.r = r
        self.key = f"{prefix}:linkage:home"

    def save(self, camera_id: str, at: float, alert_id: str | None) -> None:
        self.r.hset(self.key, camera_id, json.dumps([at, alert_id]))

    def drop(self, camera_id: str) -> None:
        self.r.hdel(self.key, camera_id)

    def load(self) -> dict[str, tuple[float, str | None]]:
        out: dict[str, tuple[float, str | None]] = {}
        raw: dict[bytes, bytes] = self.r.hgetall(self.key)  # type: ignore[assignment]
        for camera_id, value in raw.items():
            at, alert_id = json.loads(value)
            out[camera_id.decode()] = (float(at), alert_id)
        return out
