"""The state-change log a console's feed reads instead of every camera every second:
the embedded status board's, and the workers' stream in Redis (real Redis)."""

from __future__ import annotations

import redis

from camera_registry.status import StatusBoard
from shaobing.adapters.redis_state import RedisLiveState, RedisStatusView
from tests.redisproc import REDIS_URL, redis_prefix


def test_the_board_names_the_cameras_whose_state_changed() -> None:
    board = StatusBoard()
    cursor, changed = board.changes("")
    assert changed is None  # first look: read everything
    board.update("a", state="online")
    board.update("b", state="offline")
    cursor, changed = board.changes(cursor)
    assert changed == ["a", "a", "b", "b"]  # new to the board, then its state
    board.update("a", input_fps=5.0)  # not a state change
    cursor, changed = board.changes(cursor)
    assert changed == []
    board.update("a", state="offline")
    cursor, changed = board.changes(cursor)
    assert changed == ["a"]


def test_a_reader_too_far_behind_reads_everything_again() -> None:
    board = StatusBoard()
    cursor, _ = board.changes("")
    for i in range(StatusBoard.LOG + 5):
        board.update(f"cam-{i}", state="online")
    _, changed = board.changes(cursor)
    assert changed is None
    assert board.changes("not-a-cursor")[1] is None


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
