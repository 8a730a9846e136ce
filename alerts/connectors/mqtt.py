"""MQTT: publish the stored JSON with QoS 1 to ``<prefix>/<county>/<township>/<type>``;
delivered once the broker's PUBACK arrives. Camera states go, retained, to
``<status prefix>/<camera id>`` so a subscriber that connects later reads each
camera's current state at once. TLS with the broker's CA (and a client certificate
where the broker asks for one)."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from alerts.config import DispatchTarget, MqttSettings
from alerts.connectors.base import Message, Result

log = logging.getLogger(__name__)

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
        if self.cfg.tls:
            self.client.tls_set(
                ca_certs=self.cfg.ca_file, certfile=self.cfg.cert_file, keyfile=self.cfg.key_file
            )
            self.client.tls_insecure_set(self.cfg.tls_insecure)
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

    def publish_status(self, camera_id: str, status: dict[str, Any]) -> bool:
        """A camera's state, retained (QoS 1, not waited for: the next change or the
        retained copy corrects a lost one). False when not sent."""
        prefix = self.cfg.status_topic_prefix
        if prefix is None:
            return False
        try:
            # Connect once if needed; afterwards never wait for a broker that is down.
            if (self.started and not self.client.is_connected()) or not self._connected():
                return False
            topic = f"{prefix.rstrip('/')}/{_UNSAFE.sub('_', camera_id)}"
            body = json.dumps({"camera_id": camera_id, **status}, ensure_ascii=False)
            info = self.client.publish(topic, body, qos=1, retain=True)
            return info.rc == mqtt.MQTT_ERR_SUCCESS
        except (OSError, RuntimeError, ValueError) as exc:
            log.warning("MQTT %s: camera status not published: %s", self.target.name, exc)
            return False

    def close(self) -> None:
        if self.started:
            self.client.disconnect()
            self.client.loop_stop()
