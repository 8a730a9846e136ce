"""Connectors: how one dispatch target is reached (webhook, MQTT, WVP via Redis)."""

from __future__ import annotations

import httpx

from alerts.config import DispatchTarget
from alerts.connectors.base import Connector, Message, Result
from alerts.connectors.mqtt import MqttConnector
from alerts.connectors.webhook import WebhookConnector
from alerts.connectors.wvp import WvpRedisConnector

__all__ = ["Connector", "Message", "Result", "make_connector"]


def make_connector(target: DispatchTarget, client: httpx.Client) -> Connector:
    """The connector for ``target``; webhooks share the dispatcher's HTTP client."""
    if target.kind == "mqtt":
        return MqttConnector(target)
    if target.kind == "wvp_redis":
        return WvpRedisConnector(target)
    if target.kind == "gb28181":
        from alerts.connectors.gb28181 import GbAlarmConnector

        return GbAlarmConnector(target)
    return WebhookConnector(target, client)
