"""MQTT: publish the stored JSON with QoS 1 to ``<prefix>/<county>/<township>/<type>``;
delivered once the broker's PUBACK arrives."""

from __future__ import annotations

import os
import re
import threading
import time

import paho.mqtt.client as mqtt

from alerts.config import DispatchTarget, MqttSettings
from alerts.connectors.base import Message, Result

#: Topic levels come from area names: wildcards and separators would change the topic.
_UNSAFE = re.compile(r"[+#/\x00]")


def topic_for(prefix: str, message: Message) -> str:
    """``<prefix>/<county>/<township>/<type>``; a missing level is ``_``."""
    alert = message.data().get("alert", {})
    area = alert.get("area") or {}
    levels = [area.get("county"), area.get("township"), alert.get("type")]
    return "/".join([prefix.rstrip("/"), *(_UNSAFE.sub("_", str(v or "")) or "_" for v in levels)])


class MqttConnector:
    """One client per target; paho's network thread reconnects after a drop."""

    def __init__(self, target: DispatchTarget) -> None:
        assert target.mqtt is not None
        self.target = target
        self.cfg: MqttSettings = target.mqtt
        client_id = self.cfg.client_id or f"shaobing-{target.name}-{os.getpid()}"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if self.cfg.username:
            self.client.username_pw_set(self.cfg.username, self.cfg.password)
        self.client.connect_timeout = target.timeout_s
        self.lock = threading.Lock()
        self.started = False

    def _connected(self) -> bool:
        """Connect on first use (a broker down at start-up is a retry, not a crash)."""
        with self.lock:
            if not self.started:
                self.client.connect(self.cfg.host, self.cfg.port, self.cfg.keepalive_s)
                self.client.loop_start()
                self.started = True
        deadline = time.monotonic() + self.target.timeout_s
        while not self.client.is_connected():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def send(self, message: Message) -> Result:
        try:
            if not self._connected():
                return Result(ok=False, error="MQTT: not connected to the broker")
            info = self.client.publish(topic_for(self.cfg.topic_prefix, message), message.body,
                                       qos=1)  # fmt: skip
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return Result(ok=False, error=f"MQTT: {mqtt.error_string(info.rc)}")
            info.wait_for_publish(self.target.timeout_s)
        except (OSError, RuntimeError, ValueError) as exc:
            return Result(ok=False, error=f"MQTT: {type(exc).__name__}: {exc}")
        if not info.is_published():
            return Result(ok=False, error="MQTT: no PUBACK within the timeout")
        return Result(ok=True)

    def close(self) -> None:
        if self.started:
            self.client.disconnect()
            self.client.loop_stop()
