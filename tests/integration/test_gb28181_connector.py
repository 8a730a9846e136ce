"""The ``kind: gb28181`` dispatch connector against a real SIPp superior platform:
REGISTER with digest, Notify Alarm with the mapped AlarmType, keepalive; a wrong
password and a superior that is down are retryable failures (the outbox retries)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from alerts.config import DispatchTarget
from alerts.connectors import make_connector
from alerts.connectors.base import Message
from gb28181 import manscdp
from tests.peers import sipp as peers
from tests.peers.procs import free_port

pytestmark = pytest.mark.slow  # real SIPp peers

SUPERIOR = "34010000002000000001"
LOCAL = "34020000002000000001"
CHANNEL = "34150201001310000001"
ALARM_CHANNEL = "34020000001340000001"


def target(port: int, password: str, **extra: Any) -> DispatchTarget:
    return DispatchTarget.model_validate({
        "name": "city", "kind": "gb28181", "timeout_s": 3,
        "gb28181": {"server_id": SUPERIOR, "server_domain": "3401000000", "host": "127.0.0.1",
                    "port": port, "local_id": LOCAL, "password": password, "keepalive_s": 0.5,
                    **extra},
    })  # fmt: skip


def message(alert_type: str = "intrusion", camera: dict[str, Any] | None = None,
            event: str = "alert.created") -> Message:
    body = {"event": event, "sequence": 1, "alert": {
        "id": "a1", "type": alert_type, "severity": "high", "started_at": 1796600000.0,
        "camera": camera or {"id": "east-gate", "name": "东门", "gb28181_id": CHANNEL},
        "trace": {"explanation": "人员进入围栏 4.2 s"},
    }}  # fmt: skip
    return Message(row_id=7, alert_id="a1", target="city", event=event, seq=1,
                   idempotency_key="a1:alert.created:1",
                   body=json.dumps(body).encode())  # fmt: skip


def bodies(text: str, root: str) -> list[manscdp.Body]:
    return [manscdp.parse_body(m.group(0).encode("utf-8"))
            for m in re.finditer(rf"<\?xml[^>]*>\s*<{root}>.*?</{root}>", text, re.S)]  # fmt: skip


def alarms(text: str) -> list[manscdp.Body]:
    return [b for b in bodies(text, "Notify") if b.cmd == "Alarm"]


def wait_for(check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    return check()


def test_alarm_goes_up_to_a_sipp_superior() -> None:
    port = free_port()
    sup = peers.start_superior(port, password="Up-Secr3t")
    conn = make_connector(target(port, "Up-Secr3t", channel_ids={"east-gate": CHANNEL},
                                 default_channel_id=ALARM_CHANNEL), None)  # type: ignore[arg-type]
    try:
        time.sleep(0.3)
        result = conn.send(message())
        assert result.ok, (result, sup.logs())
        assert conn.send(message(event="alert.acknowledged")).ok  # nothing to send
        got = wait_for(lambda: alarms(sup.messages()), 5)
        assert len(got) == 1
        alarm = got[0]
        assert alarm.device_id == CHANNEL and alarm.text("AlarmMethod") == "5"
        assert alarm.text("AlarmPriority") == "2"
        info = alarm.element.find("Info")
        assert info is not None and info.findtext("AlarmType") == "6"  # intrusion
        assert "人员进入围栏" in (alarm.text("AlarmDescription") or "")
        assert alarm.text("AlarmTime") == "2026-12-07T07:33:20"  # local time (Asia/Shanghai)
        # Registered with digest first, then the heartbeat keeps going.
        assert wait_for(lambda: sup.messages().count("<CmdType>Keepalive</CmdType>") >= 2, 5)
        assert "Authorization: Digest" in sup.messages()
        assert "Up-Secr3t" not in sup.messages()
        # The superior's Catalog query is answered with Shaobing's alarm channels.
        catalog = wait_for(lambda: [b for b in bodies(sup.messages(), "Response")
                                    if b.cmd == "Catalog"], 5)  # fmt: skip
        assert catalog and catalog[0].sn == 77 and catalog[0].device_id == LOCAL
        total, items = manscdp.catalog_items(catalog[0])
        assert total == 2 and {i.id for i in items} == {CHANNEL, ALARM_CHANNEL}
    finally:
        conn.close()
        sup.stop()


def test_wrong_password_and_no_superior_are_retryable() -> None:
    port = free_port()
    sup = peers.start_superior(port, password="the-right-one")
    conn = make_connector(target(port, "a-wrong-one"), None)  # type: ignore[arg-type]
    try:
        time.sleep(0.3)
        result = conn.send(message())
        assert not result.ok and result.retryable
        assert "403" in (result.error or "") and "a-wrong-one" not in (result.error or "")
    finally:
        conn.close()
        sup.stop()
    down = make_connector(target(free_port(), "x"), None)  # type: ignore[arg-type]
    try:
        result = down.send(message())
        assert not result.ok and result.retryable and "no answer" in (result.error or "")
    finally:
        down.close()


def test_camera_without_channel_id_is_a_dead_letter_unless_a_default_is_set() -> None:
    conn = make_connector(target(free_port(), "x"), None)  # type: ignore[arg-type]
    try:
        result = conn.send(message(camera={"id": "plain-rtsp"}))
        assert not result.ok and not result.retryable and "channel id" in (result.error or "")
    finally:
        conn.close()
