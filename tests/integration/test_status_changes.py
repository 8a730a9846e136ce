"""The workers' camera state changes reach an API node through Redis (real Redis)."""

from __future__ import annotations

import redis

from shaobing.adapters.redis_state import RedisLiveState, RedisStatusView
from tests.redisproc import REDIS_URL, redis_prefix


def test_the_workers_state_changes_reach_an_api_node_through_redis() -> None:
    with redis_prefix() as prefix:
        r = redis.Redis.from_url(REDIS_URL)
        live = RedisLiveState(r, prefix, ttl_s=10)
        view = RedisStatusView(live)
        cursor, changed = view.changes("")
        assert changed is None
        live.record_changes([("cam-1", "online"), ("cam-2", "offline")])
        cursor, changed = view.changes(cursor)
        assert changed == ["cam-1", "cam-2"]
        cursor, changed = view.changes(cursor)
        assert changed == []
        live.record_changes([("cam-2", "online")] * 1500)  # more than one page
        cursor, changed = view.changes(cursor)
        assert changed == ["cam-2"] * 1500
        r.close()
