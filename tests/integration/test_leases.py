"""Camera leases and fencing tokens on a real Redis (shaobing/adapters/leases.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from shaobing.adapters.leases import Fences, WorkerLeases
from tests.redisproc import REDIS_URL, redis_prefix


@pytest.fixture
def ctx() -> Iterator[tuple[redis.Redis, str]]:
    with redis_prefix() as prefix:
        r = redis.Redis.from_url(REDIS_URL)
        yield r, prefix
        r.close()


def test_a_camera_has_one_holder_and_each_lease_a_newer_token(
    ctx: tuple[redis.Redis, str],
) -> None:
    r, prefix = ctx
    a = WorkerLeases(r, prefix, "a", lease_s=1.0)
    b = WorkerLeases(r, prefix, "b", lease_s=1.0)
    first = a.try_acquire("cam-1")
    assert first is not None
    assert b.try_acquire("cam-1") is None  # held
    assert a.holders(["cam-1", "cam-2"]) == {"cam-1": "a"}
    assert a.renew() == []  # renewed while held
    time.sleep(1.3)  # a stops renewing (dies): the lease runs out
    second = b.try_acquire("cam-1")
    assert second is not None and second > first
    assert a.renew() == ["cam-1"]  # a learns it lost the camera and must stop it
    assert "cam-1" not in a.held and b.token("cam-1") == second
    assert Fences(r, prefix).current("cam-1") == second


def test_a_released_lease_is_free_at_once(ctx: tuple[redis.Redis, str]) -> None:
    r, prefix = ctx
    a = WorkerLeases(r, prefix, "a", lease_s=30)
    b = WorkerLeases(r, prefix, "b", lease_s=30)
    assert a.try_acquire("cam-1") is not None
    a.release("cam-1")
    assert b.try_acquire("cam-1") is not None
    a.release("cam-1")  # not held: nothing happens to b's lease
    assert b.holders(["cam-1"]) == {"cam-1": "b"}


def test_fencing_rejects_what_a_worker_wrote_after_losing_its_lease(
    ctx: tuple[redis.Redis, str],
) -> None:
    r, prefix = ctx
    fences = Fences(r, prefix)
    old = fences.draw("cam-1")
    before_handover = time.time()
    time.sleep(0.05)
    new = fences.draw("cam-1")  # another worker took the camera
    time.sleep(0.05)
    after_handover = time.time()
    assert not fences.is_stale("cam-1", new, after_handover)  # the holder's events
    assert not fences.is_stale("cam-1", old, before_handover)  # made while it held it
    assert fences.is_stale("cam-1", old, after_handover)  # made after it lost it
    assert not fences.is_stale("cam-2", 1, after_handover)  # never leased: nothing newer


def test_workers_share_the_cameras_fairly(ctx: tuple[redis.Redis, str]) -> None:
    r, prefix = ctx
    cameras = [f"cam-{i}" for i in range(7)]
    workers = [WorkerLeases(r, prefix, name, lease_s=30) for name in ("a", "b", "c")]

    def round_() -> None:
        for w in workers:
            w.heartbeat()
        for w in workers:
            give_up, candidates, share = w.plan(cameras)
            for c in give_up:
                w.release(c)
            for c in candidates:
                if len(w.held) >= share:
                    break
                w.try_acquire(c)

    workers[0].heartbeat()
    give_up, candidates, share = workers[0].plan(cameras)
    assert share == 7  # alone so far: a would take everything
    for _ in range(3):
        round_()
    held = sorted(len(w.held) for w in workers)
    assert held == [2, 2, 3] or held == [1, 3, 3]
    assert sum(held) == 7
    owners = workers[0].holders(cameras)
    assert len(owners) == 7 and set(owners.values()) == {"a", "b", "c"}
    workers[2].leave()  # c goes away cleanly: its cameras are free at once
    for _ in range(2):
        for w in workers[:2]:
            w.heartbeat()
            give_up, candidates, share = w.plan(cameras)
            for c in candidates:
                if len(w.held) >= share:
                    break
                w.try_acquire(c)
    assert sorted(len(w.held) for w in workers[:2]) == [3, 4]


def test_the_alert_consumer_drops_events_of_a_worker_that_lost_its_lease(
    ctx: tuple[redis.Redis, str],
) -> None:
    from shaobing.adapters.redis_bus import RedisEventBus
    from shaobing.adapters.redis_state import FenceCheckingBus, FencedPublisher

    r, prefix = ctx
    old_holder = WorkerLeases(r, prefix, "old", lease_s=30)
    old_token = old_holder.try_acquire("cam-1")
    assert old_token is not None
    bus = RedisEventBus(r, prefix=prefix)
    consumer = FenceCheckingBus(bus, Fences(r, prefix))
    consumer.subscribe("events", "alerts")
    publisher = FencedPublisher(bus, old_holder.token)

    def event(alert_id: str, created_at: float) -> dict[str, object]:
        return {"alert_id": alert_id, "created_at": created_at,
                "event": {"camera_id": "cam-1"}}  # fmt: skip

    publisher.publish("events", event("before", time.time()))  # made while it held the lease
    time.sleep(0.05)
    old_holder.held["cam-1"].lock.release()  # the lease passes to another worker ...
    new_holder = WorkerLeases(r, prefix, "new", lease_s=30)
    assert new_holder.try_acquire("cam-1") is not None
    time.sleep(0.05)
    publisher.publish("events", event("after", time.time()))  # ... and "old" writes on
    FencedPublisher(bus, new_holder.token).publish("events", event("new", time.time()))

    got = []
    for _ in range(3):
        d = consumer.consume("events", "alerts", timeout_s=1)
        if d is not None:
            assert d.payload["fence"]["camera_id"] == "cam-1"
            got.append(d.payload["alert_id"])
            d.ack()
    assert got == ["before", "new"]  # "after" rejected: its token was stale when made
    assert consumer.rejected == 1
    assert bus.pending("events", "alerts") == 0  # the rejected one acknowledged, not retried
