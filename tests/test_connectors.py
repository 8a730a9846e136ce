"""Each connector against a real peer: an HTTP receiver, Mosquitto on 127.0.0.1:1883,
Redis on 127.0.0.1:6379 (WVP-GB28181-pro's alarm channel)."""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import redis
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from alerts.adapters.sql import OutboxRecord
from alerts.config import DispatchTarget
from alerts.dispatcher import Dispatcher
from alerts.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify
from shaobing.db import open_database
from tests.factories import make_alert, store
from tests.peers.receiver import Receiver

SECRET = "k-0123456789"
TEMPLATE = (
    '{"bh": {{ alert.id | tojson }}, "lx": {{ alert.type | tojson }}, '
    '"dd": {{ (alert.area.township ~ "/" ~ alert.camera.name) | tojson }}, '
    '"sj": {{ event | tojson }}}'
)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield sessions
    engine.dispose()


def rows(sessions: sessionmaker[Session]) -> list[OutboxRecord]:
    with sessions() as session:
        return list(session.query(OutboxRecord).order_by(OutboxRecord.id))


def run_once(sessions: sessionmaker[Session], target: DispatchTarget) -> None:
    dispatcher = Dispatcher(sessions, [target])
    try:
        dispatcher.dispatch_due()
    finally:
        dispatcher.close()


# -- configuration ---------------------------------------------------------------------


def test_a_template_that_does_not_compile_is_a_config_error() -> None:
    with pytest.raises(ValidationError) as err:
        DispatchTarget(name="c", url="http://127.0.0.1:9/x", secret=SECRET, template="{{ alert.id ")
    assert err.value.errors()[0]["loc"] == ("template",)
    assert "template: line 1" in str(err.value)


def test_a_webhook_without_secret_must_say_unsigned() -> None:
    # An empty secret must not silently send unsigned alerts; ``unsigned: true`` says it is meant.
    for secret in (None, ""):
        with pytest.raises(ValidationError, match="has no secret"):
            DispatchTarget(name="c", url="http://127.0.0.1:9/x", secret=secret)
    DispatchTarget(name="c", url="http://127.0.0.1:9/x", unsigned=True)
    with pytest.raises(ValidationError, match="both secret and unsigned"):
        DispatchTarget(name="c", url="http://127.0.0.1:9/x", secret=SECRET, unsigned=True)
    with pytest.raises(ValidationError, match="webhook needs url"):
        DispatchTarget(name="c", secret=SECRET)


def test_kinds_have_defaults() -> None:
    m = DispatchTarget(name="m", kind="mqtt")
    assert m.mqtt is not None and (m.mqtt.host, m.mqtt.port) == ("127.0.0.1", 1883)
    w = DispatchTarget(name="w", kind="wvp_redis")
    assert w.wvp is not None and w.wvp.channel == "alarm_receive"
    with pytest.raises(ValidationError, match="unknown alert type"):
        DispatchTarget(name="w", kind="wvp_redis", wvp={"alarm_types": {"no_such": 1}})


# -- webhook ---------------------------------------------------------------------------


def test_webhook_template_renders_the_centres_schema_and_signs_it(
    sessions: sessionmaker[Session], receiver: Receiver
) -> None:
    target = DispatchTarget(name="centre", url=f"{receiver.url}/in", secret=SECRET,
                            template=TEMPLATE)  # fmt: skip
    alert = store(sessions, make_alert(1), ["centre"])
    run_once(sessions, target)
    headers, body, _ = receiver.wait_for(1)[0]
    assert json.loads(body) == {"bh": alert.id, "lx": "loitering", "dd": "城关镇/村口",
                                "sj": "alert.created"}  # fmt: skip
    assert verify(body, SECRET, headers[SIGNATURE_HEADER])  # over the rendered bytes
    assert headers[IDEMPOTENCY_HEADER] == f"{alert.id}:alert.created:1"
    assert rows(sessions)[0].state == "delivered"


def test_webhook_template_error_at_render_time_is_dead(
    sessions: sessionmaker[Session], receiver: Receiver
) -> None:
    target = DispatchTarget(name="centre", url=f"{receiver.url}/in", unsigned=True,
                            template='{"x": {{ alert.no_such_field | tojson }}}')  # fmt: skip
    store(sessions, make_alert(1), ["centre"])
    run_once(sessions, target)
    (row,) = rows(sessions)
    assert row.state == "dead" and "template" in (row.dead_reason or "")
    assert receiver.requests == []


def test_webhook_unsigned_sends_no_signature(
    sessions: sessionmaker[Session], receiver: Receiver
) -> None:
    target = DispatchTarget(name="centre", url=f"{receiver.url}/in", unsigned=True)
    store(sessions, make_alert(1), ["centre"])
    run_once(sessions, target)
    headers, body, _ = receiver.wait_for(1)[0]
    assert SIGNATURE_HEADER not in headers and json.loads(body)["event"] == "alert.created"


# -- MQTT ------------------------------------------------------------------------------


@pytest.fixture
def subscriber() -> Iterator[tuple[str, queue.Queue[mqtt.MQTTMessage]]]:
    """A real MQTT subscriber on 127.0.0.1:1883 to ``<unique prefix>/#``."""
    prefix = f"shaobing-test/{uuid.uuid4().hex[:8]}"
    got: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    ready = queue.Queue[bool]()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, msg: got.put(msg)
    client.on_subscribe = lambda *a: ready.put(True)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    client.subscribe(f"{prefix}/#", qos=1)
    ready.get(timeout=5)
    yield prefix, got
    client.disconnect()
    client.loop_stop()


def test_mqtt_publishes_per_area_and_type_with_qos1(
    sessions: sessionmaker[Session], subscriber: tuple[str, queue.Queue[mqtt.MQTTMessage]]
) -> None:
    prefix, got = subscriber
    target = DispatchTarget(name="broker", kind="mqtt", mqtt={"topic_prefix": prefix})
    alert = store(sessions, make_alert(1, type="intrusion"), ["broker"])
    run_once(sessions, target)
    msg = got.get(timeout=5)
    assert msg.topic == f"{prefix}/示例县/城关镇/intrusion"
    assert msg.qos == 1
    (row,) = rows(sessions)
    assert row.state == "delivered"  # only after the PUBACK
    assert msg.payload.decode() == row.body
    assert json.loads(msg.payload)["alert"]["id"] == alert.id


def test_mqtt_broker_unreachable_is_retried(sessions: sessionmaker[Session]) -> None:
    target = DispatchTarget(name="broker", kind="mqtt", timeout_s=0.5,
                            mqtt={"port": 1})  # nothing listens on 127.0.0.1:1  # fmt: skip
    store(sessions, make_alert(1), ["broker"])
    run_once(sessions, target)
    (row,) = rows(sessions)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.lease_owner is None and "MQTT" in (row.last_error or "")


# -- WVP-GB28181-pro via Redis -----------------------------------------------------------


@pytest.fixture
def wvp_channel() -> Iterator[tuple[str, redis.client.PubSub]]:
    """A real Redis subscriber on a unique channel, standing in for WVP's listener."""
    channel = f"alarm_receive_test_{uuid.uuid4().hex[:8]}"
    r = redis.Redis(host="127.0.0.1", port=6379)
    pubsub = r.pubsub()
    pubsub.subscribe(channel)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
    yield channel, pubsub
    pubsub.close()
    r.close()


def next_data(pubsub: redis.client.PubSub) -> dict[str, object]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        msg = pubsub.get_message(timeout=0.5)
        if msg and msg["type"] == "message":
            return json.loads(msg["data"])  # type: ignore[no-any-return]
    raise AssertionError("no message on the channel")


def test_wvp_alarm_message(
    sessions: sessionmaker[Session], wvp_channel: tuple[str, redis.client.PubSub]
) -> None:
    channel, pubsub = wvp_channel
    gb_id = "51012300001320000001"
    target = DispatchTarget(name="wvp", kind="wvp_redis",
                            wvp={"channel": channel, "gb_ids": {"cam-a": gb_id}})  # fmt: skip
    alert = store(sessions, make_alert(1, type="line_crossing"), ["wvp"])
    run_once(sessions, target)
    data = next_data(pubsub)
    assert data == {"gbId": gb_id, "alarmSn": rows(sessions)[0].id, "alarmType": 5,
                    "alarmDescription": alert.explanation}  # fmt: skip
    assert rows(sessions)[0].state == "delivered"


def test_wvp_uses_the_cameras_own_gb28181_id(
    sessions: sessionmaker[Session], wvp_channel: tuple[str, redis.client.PubSub]
) -> None:
    """The camera's GB/T 28181 id from its config travels on the alert; a target's
    ``gb_ids`` map is only needed for cameras without one (or to remap)."""
    channel, pubsub = wvp_channel
    own = "51012300001320000042"
    target = DispatchTarget(name="wvp", kind="wvp_redis", wvp={"channel": channel})
    store(sessions, make_alert(1, type="intrusion", camera_gb28181_id=own), ["wvp"])
    run_once(sessions, target)
    data = next_data(pubsub)
    assert data["gbId"] == own and data["alarmType"] == 6
    stored = json.loads(rows(sessions)[0].body)
    assert stored["alert"]["camera"]["gb28181_id"] == own


def test_wvp_without_subscriber_retries_and_without_gb_id_is_dead(
    sessions: sessionmaker[Session],
) -> None:
    wvp = {"channel": f"nobody_{uuid.uuid4().hex}", "gb_ids": {"cam-a": "51012300001320000001"}}
    nobody = DispatchTarget(name="wvp", kind="wvp_redis", wvp=wvp)
    store(sessions, make_alert(1), ["wvp"])
    store(sessions, make_alert(2, camera_id="cam-b"), ["wvp"])
    run_once(sessions, nobody)
    first, second = rows(sessions)
    assert (first.state, first.attempts) == ("pending", 1)
    assert "no subscriber" in (first.last_error or "")
    assert second.state == "dead" and "cam-b" in (second.dead_reason or "")
