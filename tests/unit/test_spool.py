"""The spool under the event bus: an event not yet stored survives the process."""

from __future__ import annotations

from pathlib import Path

from alerts.adapters.memory_bus import MemoryEventBus
from alerts.adapters.spool import SpoolingEventBus


def bus(directory: Path) -> SpoolingEventBus:
    b = SpoolingEventBus(MemoryEventBus(), directory)
    b.subscribe("events", "alerts")
    return b


def test_an_unacknowledged_event_is_published_again_after_a_restart(tmp_path: Path) -> None:
    first = bus(tmp_path)
    first.publish("events", {"alert_id": "a-1"})
    first.publish("events", {"alert_id": "a-2"})
    delivered = first.consume("events", "alerts", timeout_s=1)
    assert delivered is not None and delivered.payload == {"alert_id": "a-1"}
    delivered.ack()
    assert first.spooled() == 1  # a-2 was never stored: the process dies here

    second = bus(tmp_path)  # the next start, same directory
    assert second.recover() == 1
    again = second.consume("events", "alerts", timeout_s=1)
    assert again is not None and again.payload == {"alert_id": "a-2"}
    again.nack()  # a failed store keeps it on disk
    assert second.spooled() == 1
    retried = second.consume("events", "alerts", timeout_s=1)
    assert retried is not None
    retried.ack()
    assert second.spooled() == 0 and bus(tmp_path).recover() == 0


def test_a_corrupt_spool_file_is_set_aside_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "0000000001.000000-x.json").write_text("{not json", encoding="utf-8")
    b = bus(tmp_path)
    assert b.recover() == 0
    assert [p.suffix for p in tmp_path.iterdir()] == [".bad"]
