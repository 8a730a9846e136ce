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
from tests.peers.procs import free_port
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


def test_mqtt_camera_state_is_retained_for_late_subscribers(
    sessions: sessionmaker[Session],
) -> None:
    prefix = f"shaobing-test/{uuid.uuid4().hex[:8]}"
    target = DispatchTarget(name="broker", kind="mqtt",
                            mqtt={"status_topic_prefix": f"{prefix}/cameras"})  # fmt: skip
    dispatcher = Dispatcher(sessions, [target])
    try:
        dispatcher.camera_status("cg-0001", {"state": "offline", "last_error": "timeout"})
        dispatcher.camera_status("cg-0001", {"state": "online", "last_error": None})
    finally:
        dispatcher.close()  # waits for the publications in flight
    # A subscriber that connects afterwards gets the last state at once (retained).
    got: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, msg: got.put(msg)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        client.subscribe(f"{prefix}/cameras/#", qos=1)
        msg = got.get(timeout=5)
        assert msg.retain and msg.topic == f"{prefix}/cameras/cg-0001"
        assert json.loads(msg.payload) == {"camera_id": "cg-0001", "state": "online",
                                           "last_error": None}  # fmt: skip
        client.publish(msg.topic, b"", qos=1, retain=True).wait_for_publish(5)  # clean up
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def tls_broker() -> Iterator[tuple[int, Path, Path]]:
    """A real Mosquitto with a TLS listener on 127.0.0.1, its certificate signed by a
    CA made here: (port, CA file, another CA's file)."""
    import shutil
    import subprocess
    import tempfile

    # Mosquitto started as root reads its files as its own user: a folder it can enter.
    tmp_path = Path(tempfile.mkdtemp(prefix="shaobing-mqtt-tls-"))

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)

    for ca in ("ca", "other-ca"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            f"/CN={ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (tmp_path / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.pem")  # fmt: skip
    tmp_path.chmod(0o755)
    for pem in tmp_path.iterdir():
        pem.chmod(0o644)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"cafile {tmp_path}/ca.pem\ncertfile {tmp_path}/server.pem\n"
                    f"keyfile {tmp_path}/server.key\n")  # fmt: skip
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        import socket

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        yield port, tmp_path / "ca.pem", tmp_path / "other-ca.pem"
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_mqtt_over_tls_checks_the_brokers_certificate(
    sessions: sessionmaker[Session], tls_broker: tuple[int, Path, Path]
) -> None:
    port, ca, other_ca = tls_broker
    prefix = f"shaobing-test/{uuid.uuid4().hex[:8]}"
    trusted = DispatchTarget(name="tls", kind="mqtt", timeout_s=3, mqtt={
        "port": port, "tls": True, "ca_file": str(ca), "topic_prefix": prefix})  # fmt: skip
    store(sessions, make_alert(1, type="intrusion"), ["tls"])
    run_once(sessions, trusted)
    assert rows(sessions)[0].state == "delivered"

    # A broker whose certificate another CA signed is refused: retried, never delivered.
    store(sessions, make_alert(2, type="intrusion"), ["tls"])
    wrong = DispatchTarget(name="tls", kind="mqtt", timeout_s=1, mqtt={
        "port": port, "tls": True, "ca_file": str(other_ca), "topic_prefix": prefix})  # fmt: skip
    run_once(sessions, wrong)
    second = rows(sessions)[1]
    assert (second.state, second.attempts) == ("pending", 1)
    assert "MQTT" in (second.last_error or "")


def test_mqtt_tls_files_are_checked_at_load() -> None:
    with pytest.raises(ValidationError, match="ca_file: no such file"):
        DispatchTarget(name="m", kind="mqtt", mqtt={"tls": True, "ca_file": "/nonexistent.pem"})
    with pytest.raises(ValidationError, match="tls is false"):
        DispatchTarget(name="m", kind="mqtt", mqtt={"ca_file": "/etc/hostname"})


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
