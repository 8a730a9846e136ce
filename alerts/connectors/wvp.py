"""WVP-GB28181-pro: publish an ``AlarmChannelMessage`` to its Redis channel
(``alarm_receive``); WVP sends it upward to its superior platforms as a GB/T 28181
alarm. Fields as WVP's ``AlarmChannelMessage``: ``gbId`` (the channel's 20-digit
id), ``alarmSn``, ``alarmType`` (GB/T 28181 video alarm type), ``alarmDescription``.

Only ``alert.created`` goes up: a GB alarm is an event, later status changes have no
GB counterpart (they are recorded as delivered without a publish).
"""

from __future__ import annotations

import json
from typing import Any

import redis

from alerts.config import DispatchTarget, WvpRedisSettings
from alerts.connectors.base import Message, Result

#: Shaobing alert type → GB/T 28181 video alarm type (alarm method 5, 视频报警).
GB_ALARM_TYPES: dict[str, int] = {
    "line_crossing": 5,  # 绊线检测
    "intrusion": 6,  # 入侵检测
    "wrong_way": 7,  # 逆行检测
    "loitering": 8,  # 徘徊检测
    "wandering": 8,
    "crowd": 10,  # 密度检测
    "camera_fault": 11,  # 视频异常检测
}


def alarm_message(message: Message, cfg: WvpRedisSettings) -> dict[str, Any] | None:
    """The JSON WVP expects, or None when the camera has no GB id (cannot be sent)."""
    alert = message.data()["alert"]
    camera = alert.get("camera") or {}
    gb_id = cfg.gb_ids.get(camera.get("id", "")) or camera.get("gb28181_id")
    if not gb_id:
        return None
    types = {**GB_ALARM_TYPES, **cfg.alarm_types}
    return {
        "gbId": gb_id,
        "alarmSn": message.row_id % 2**31,  # WVP reads an int
        "alarmType": types.get(alert.get("type", ""), cfg.default_alarm_type),
        "alarmDescription": alert.get("trace", {}).get("explanation") or alert.get("type", ""),
    }


class WvpRedisConnector:
    def __init__(self, target: DispatchTarget) -> None:
        assert target.wvp is not None
        self.cfg = target.wvp
        self.redis = redis.Redis.from_url(
            self.cfg.url, socket_timeout=target.timeout_s, socket_connect_timeout=target.timeout_s
        )

    def send(self, message: Message) -> Result:
        if message.event != "alert.created":
            return Result(ok=True)
        body = alarm_message(message, self.cfg)
        if body is None:
            camera = message.data()["alert"].get("camera", {}).get("id")
            return Result(ok=False, retryable=False, error=f"no GB/T 28181 id for camera {camera}")
        try:
            receivers = self.redis.publish(self.cfg.channel, json.dumps(body, ensure_ascii=False))
        except redis.RedisError as exc:
            return Result(ok=False, error=f"Redis: {type(exc).__name__}: {exc}")
        if receivers == 0:
            # Redis pub/sub keeps nothing: with WVP not subscribed the alarm would be lost.
            return Result(ok=False, error=f"Redis: no subscriber on {self.cfg.channel!r}")
        return Result(ok=True)

    def close(self) -> None:
        self.redis.close()
