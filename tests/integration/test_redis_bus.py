"""What only the Redis Streams bus has to show: a dead consumer's messages taken over,
trimming that never drops an unacknowledged entry, and Redis restarting mid-flow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from alerts.adapters.spool import ForwardingSpool
from alerts.ports import BusUnavailable
from shaobing.adapters.redis_bus import RedisEventBus
from tests.redisproc import REDIS_URL, RedisServer, redis_prefix


def test_a_killed_consumers_messages_are_reclaimed_by_another(tmp_path: Path) -> None:
    with redis_prefix() as prefix:
        bus = RedisEventBus(REDIS_URL, prefix=prefix, claim_idle_s=1.0)
        bus.subscribe("events", "alerts")
        for i in range(3):
            bus.publish("events", {"i": i})
        # Another process takes two messages, never acknowledges them, and is killed.
        script = textwrap.dedent(f"""
            import sys, time
            from shaobing.adapters.redis_bus import RedisEventBus
            bus = RedisEventBus({REDIS_URL!r}, prefix={prefix!r}, consumer="doomed")
            bus.subscribe("events", "alerts")
            for _ in range(2):
                assert bus.consume("events", "alerts", timeout_s=5) is not None
            print("TOOK", flush=True)
            time.sleep(600)
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                cwd=Path(__file__).resolve().parents[2])  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"TOOK"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert bus.pending("events", "alerts") == 3

        got = {}
        deadline = time.monotonic() + 15
        while len(got) < 3 and time.monotonic() < deadline:
            d = bus.consume("events", "alerts", timeout_s=0.5)
            if d is not None:
                got[d.payload["i"]] = d.attempts
                d.ack()
        assert got == {0: 2, 1: 2, 2: 1}  # the two taken by the dead one: second attempt
        assert bus.reclaimed == 2
        assert bus.pending("events", "alerts") == 0


def test_trimming_drops_only_acknowledged_history() -> None:
    with redis_prefix() as prefix:
        bus = RedisEventBus(REDIS_URL, prefix=prefix, maxlen=5, trim_interval_s=3600,
                            claim_idle_s=0.5)  # fmt: skip
        bus.subscribe("events", "alerts")
        bus.subscribe("events", "audit")
        for i in range(30):
            bus.publish("events", {"i": i})
        for _ in range(20):  # alerts: 20 read, 18 acknowledged, 2 still pending
            d = bus.consume("events", "alerts", timeout_s=1)
            assert d is not None
            if d.payload["i"] not in (3, 7):
                d.ack()
        for _ in range(25):  # audit: 25 read and acknowledged
            d = bus.consume("events", "audit", timeout_s=1)
            assert d is not None
            d.ack()
        bus.r.xtrim(bus.key("events"), maxlen=10_000)  # no-op; then trim exactly:
        removed = _trim_exact(bus)
        assert removed == 3  # entries 0..2: acknowledged by both groups; 3 is pending
        assert bus.pending("events", "alerts") == 12  # 2 pending + 10 unread, all kept
        time.sleep(0.6)  # 3 and 7 go idle: taken back from the pending list
        left = _drain(bus, "alerts")
        assert sorted(left) == [3, 7, *range(20, 30)]
        assert sorted(_drain(bus, "audit")) == list(range(25, 30))


def test_approximate_trimming_bounds_a_long_acknowledged_stream() -> None:
    with redis_prefix() as prefix:
        bus = RedisEventBus(REDIS_URL, prefix=prefix, maxlen=100, trim_interval_s=3600)
        bus.subscribe("events", "alerts")
        pipe = bus.r.pipeline()
        for i in range(2000):
            pipe.xadd(bus.key("events"), {"p": f'{{"i": {i}}}'})
        pipe.execute()
        for _ in range(1700):
            d = bus.consume("events", "alerts", timeout_s=1)
            assert d is not None
            d.ack()
        bus.trim("events")
        length = bus.r.xlen(bus.key("events"))
        assert 300 <= length < 2000  # acknowledged history cut, the unread 300 kept
        assert sorted(_drain(bus, "alerts")) == list(range(1700, 2000))


def test_redis_killed_and_restarted_mid_flow_loses_nothing(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        publisher = ForwardingSpool(RedisEventBus(server.url), tmp_path / "spool")
        consumer = RedisEventBus(server.url, claim_idle_s=2.0)
        consumer.subscribe("events", "alerts")
        n = 120
        got: dict[int, int] = {}
        done = threading.Event()

        def consume() -> None:
            while not done.is_set():
                d = consumer.consume("events", "alerts", timeout_s=0.3)
                if d is not None:
                    got[d.payload["i"]] = got.get(d.payload["i"], 0) + 1
                    d.ack()

        thread = threading.Thread(target=consume)
        thread.start()
        for i in range(n):
            publisher.publish("events", {"i": i})  # never raises, never blocks for long
            if i == 40:
                server.kill()
            if i == 80:
                assert publisher.backlog() > 0  # held on local disk meanwhile
                server.start()
            time.sleep(0.02)
        assert publisher.flush(20)
        deadline = time.monotonic() + 30
        while len(got) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        done.set()
        thread.join(10)
        assert sorted(got) == list(range(n))
        assert not list((tmp_path / "spool").glob("*.json"))
        publisher.stop()
    finally:
        server.stop()


def test_publish_on_a_dead_redis_raises_and_the_spool_keeps_the_message(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")  # never started: its port is closed
    bus = RedisEventBus(server.url)
    with pytest.raises(BusUnavailable):
        bus.publish("events", {"i": 1})
    spool = ForwardingSpool(bus, tmp_path / "spool")
    spool.publish("events", {"i": 1})
    assert spool.backlog() == 1 and len(list((tmp_path / "spool").glob("*.json"))) == 1
    spool._stop.set()  # the process "dies": the file stays for the next start
    spool._wake.set()
    spool._thread.join(10)  # dead before Redis comes back (it must not forward the file)
    again = ForwardingSpool(RedisEventBus(server.url), tmp_path / "spool")
    server.start()
    try:
        consumer = RedisEventBus(server.url)
        consumer.subscribe("events", "alerts")
        assert again.recover() == 1
        assert again.flush(15)
        d = consumer.consume("events", "alerts", timeout_s=2)
        assert d is not None and d.payload == {"i": 1}
        again.stop()
    finally:
        server.stop()


def _trim_exact(bus: RedisEventBus) -> int:
    """``trim`` with an exact MINID (approximate trimming works on whole radix-tree
    nodes of ~100 entries, which a 30-entry stream does not fill)."""
    original = bus.r.xtrim

    def exact(name: str, **kw: object) -> int:
        kw["approximate"] = False
        return int(original(name, **kw))  # type: ignore[arg-type]

    bus.r.xtrim = exact  # type: ignore[method-assign]
    try:
        return bus.trim("events")
    finally:
        bus.r.xtrim = original  # type: ignore[method-assign]


def _drain(bus: RedisEventBus, group: str) -> list[int]:
    out = []
    while True:
        d = bus.consume("events", group, timeout_s=0.3)
        if d is None:
            return out
        out.append(d.payload["i"])
        d.ack()
