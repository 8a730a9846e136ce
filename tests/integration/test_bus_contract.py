"""One contract, two adapters: the in-process bus and the Redis Streams bus must behave
alike for the alert service (at-least-once, acknowledged, redelivered after a nack)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from alerts.adapters.memory_bus import MemoryEventBus
from alerts.ports import EventBus
from shaobing.adapters.redis_bus import RedisEventBus
from tests.redisproc import REDIS_URL, redis_prefix


@pytest.fixture(params=["memory", "redis"])
def bus(request: pytest.FixtureRequest) -> Iterator[EventBus]:
    if request.param == "memory":
        yield MemoryEventBus()
        return
    with redis_prefix() as prefix:
        b = RedisEventBus(REDIS_URL, prefix=prefix)
        yield b
        b.r.close()


def test_a_message_is_delivered_with_its_payload_and_gone_after_ack(bus: EventBus) -> None:
    bus.subscribe("events", "alerts")
    payload = {"alert_id": "a-1", "camera": "雪亮-01", "n": 3, "box": [1.5, 2.0]}
    message_id = bus.publish("events", payload)
    assert isinstance(message_id, str) and message_id
    assert bus.pending("events", "alerts") == 1
    delivery = bus.consume("events", "alerts", timeout_s=2)
    assert delivery is not None
    assert delivery.payload == payload and delivery.attempts == 1
    assert bus.pending("events", "alerts") == 1  # delivered, not yet acknowledged
    delivery.ack()
    assert bus.pending("events", "alerts") == 0
    assert bus.consume("events", "alerts", timeout_s=0.2) is None


def test_messages_come_in_order(bus: EventBus) -> None:
    bus.subscribe("events", "alerts")
    for i in range(20):
        bus.publish("events", {"i": i})
    seen = []
    for _ in range(20):
        d = bus.consume("events", "alerts", timeout_s=2)
        assert d is not None
        seen.append(d.payload["i"])
        d.ack()
    assert seen == list(range(20))


def test_a_nacked_message_comes_again_with_one_more_attempt(bus: EventBus) -> None:
    bus.subscribe("events", "alerts")
    bus.publish("events", {"alert_id": "a-1"})
    first = bus.consume("events", "alerts", timeout_s=2)
    assert first is not None
    first.nack()
    assert bus.pending("events", "alerts") == 1
    again = bus.consume("events", "alerts", timeout_s=2)
    assert again is not None
    assert again.payload == {"alert_id": "a-1"} and again.attempts == 2
    again.ack()
    assert bus.pending("events", "alerts") == 0


def test_a_nack_with_a_delay_holds_the_message_back(bus: EventBus) -> None:
    bus.subscribe("events", "alerts")
    bus.publish("events", {"alert_id": "slow"})
    bus.publish("events", {"alert_id": "next"})
    first = bus.consume("events", "alerts", timeout_s=2)
    assert first is not None and first.payload["alert_id"] == "slow"
    first.nack(1.0)
    nxt = bus.consume("events", "alerts", timeout_s=2)
    assert nxt is not None and nxt.payload["alert_id"] == "next"  # not blocked by the retry
    nxt.ack()
    again = None
    for _ in range(20):
        again = bus.consume("events", "alerts", timeout_s=0.5)
        if again is not None:
            break
    assert again is not None and again.payload["alert_id"] == "slow" and again.attempts == 2
    again.ack()
    assert bus.pending("events", "alerts") == 0


def test_every_group_gets_every_message(bus: EventBus) -> None:
    bus.subscribe("events", "alerts")
    bus.subscribe("events", "audit")
    bus.publish("events", {"k": 1})
    for group in ("alerts", "audit"):
        d = bus.consume("events", group, timeout_s=2)
        assert d is not None and d.payload == {"k": 1}
        d.ack()
        assert bus.pending("events", group) == 0


def test_a_second_ack_or_a_nack_after_ack_changes_nothing(bus: EventBus) -> None:
    bus.subscribe("events", "alerts")
    bus.publish("events", {"k": 1})
    d = bus.consume("events", "alerts", timeout_s=2)
    assert d is not None
    d.ack()
    d.ack()
    d.nack()
    assert bus.pending("events", "alerts") == 0
    assert bus.consume("events", "alerts", timeout_s=0.3) is None


def test_consuming_an_unknown_group_is_an_error(bus: EventBus) -> None:
    with pytest.raises(KeyError):
        bus.consume("events", "nobody", timeout_s=0.1)
    assert bus.pending("events", "nobody") == 0


def test_consumers_of_one_group_share_the_messages_none_twice(bus: EventBus) -> None:
    bus.subscribe("events", "alerts")
    n = 60
    for i in range(n):
        bus.publish("events", {"i": i})
    got: list[int] = []
    lock = threading.Lock()

    def consume() -> None:
        while True:
            d = bus.consume("events", "alerts", timeout_s=0.5)
            if d is None:
                return
            with lock:
                got.append(d.payload["i"])
            d.ack()

    threads = [threading.Thread(target=consume) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(got) == list(range(n))
    assert bus.pending("events", "alerts") == 0
