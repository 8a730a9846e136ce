"""A disk running out of space is told to the room, not only to ``/healthz``: when a
watched path (``data_dir``, the evidence folder) falls under its free-space floor or
cannot be written, a ``camera_fault`` alert of the host (fault ``disk_low``, Chinese
text) goes through the same producer as a camera's, so it is listed, routed and
delivered like any alert. The host is the alert's "camera": ``system-<host>``, named
``哨兵主机 <host>``, in the county's area when the config has one county.

While ``data_dir`` itself is full the alert waits with the others in memory (the event
spool and the database degrade to memory: alerts/adapters/spool.py) and is stored when
space returns; ``/healthz`` (``degraded``, the reason) and ``/metrics``
(``shaobing_disk_low``) say it at once. A full evidence disk (often its own volume)
does not stop the database: that alert is there at once.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from alerts.producer import CameraInfo
from analytics.types import Event
from core.area import Area
from core.diskwatch import DiskState, DiskWatcher
from shaobing.config import LoadedConfig

log = logging.getLogger(__name__)

#: One alert per path per hour at most while it stays low (and again when it is low
#: again after space returned, once the hour has passed).
COOLDOWN_S = 3600.0
ID_MAX = 64


def system_camera_id(host: str) -> str:
    return f"system-{host}"[:ID_MAX]


def disk_event(state: DiskState, host: str, now: float) -> Event:
    """The alert's event for a low path (``state.low``)."""
    free_mib = state.free_bytes / (1024 * 1024)
    floor_mib = state.floor_bytes / (1024 * 1024)
    where = "数据目录" if state.name == "data_dir" else "证据目录"
    if state.error is not None or not state.writable:
        why = f"无法写入 (not writable){': ' + state.error if state.error else ''}"
    else:
        why = f"剩余 {free_mib:.0f} MiB，低于下限 {floor_mib:.0f} MiB"
    return Event(
        camera_id=system_camera_id(host), rule="disk-low", type="camera_fault", ts=now,
        pts=0.0, track_ids=[], object_class="", zone=state.name, severity="high",
        measured=round(free_mib, 1), threshold=round(floor_mib, 1), unit="MiB",
        explanation=f"磁盘空间不足：主机 {host} 的{where} {state.path} {why}；告警暂存内存，"
        f"证据和轨迹先被丢弃，请清理或扩容 (disk low: {state.reason()})",
        confidence=1.0, cooldown_s=COOLDOWN_S, key=f"disk-{state.name}",
        extra={"fault": "disk_low", "path": state.path, "free_bytes": state.free_bytes,
               "floor_bytes": state.floor_bytes, "host": host},
    )  # fmt: skip


class DiskAlerts:
    """``DiskWatcher.on_change``: an alert through ``producer`` when a path turns low."""

    def __init__(self, producer: Any, host: str, area: Area, clock: Any = None) -> None:
        import time

        self.producer = producer
        self.host = host
        self.clock = clock or time.time
        # The alert's camera: the host itself (name and area for the alert and its routing).
        producer.cameras.setdefault(system_camera_id(host), CameraInfo(f"哨兵主机 {host}", area))

    def __call__(self, state: DiskState) -> None:
        if not state.low:
            return
        alert_id = self.producer.on_event(disk_event(state, self.host, self.clock()), None, None)
        log.error("disk low on %s: alert %s raised (%s)", self.host, alert_id, state.reason())


def county_area(loaded: LoadedConfig) -> Area:
    """The county of the config's area tree when it has exactly one, else no area."""
    counties = {a.county for a in loaded.config.areas if a.county}
    return Area(county=counties.pop()) if len(counties) == 1 else Area()


def watch_disks(loaded: LoadedConfig, producer: Any, host: str | None = None) -> DiskWatcher:
    """The disk watcher of a process that writes to ``data_dir`` and the evidence folder
    (the embedded hub, a distributed worker), alerting through its producer."""
    host = host or socket.gethostname()
    return DiskWatcher(
        {"data_dir": loaded.data_dir, "evidence": loaded.snapshot_dir},
        on_change=DiskAlerts(producer, host, county_area(loaded)),
    )
