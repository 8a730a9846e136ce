"""The registered devices and their channels: a state machine, no I/O.

Every method takes ``now`` (epoch seconds) and returns what changed, so the SIP
server (the adapter) decides what to send and what to write to the camera registry,
and the tests drive time by hand.

A device is ``online`` from a successful REGISTER until it unregisters (Expires 0),
its registration expires, or it misses ``keepalive_misses`` keepalives in a row
(GB/T 28181 §9.6: three missed heartbeats). Its channels are ``online`` when both the
device and the catalog's Status say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gb28181.manscdp import CatalogItem

DeviceState = Literal["online", "offline"]

#: Catalog items whose type code (digits 11-13) is a video channel Shaobing can pull.
VIDEO_TYPES = frozenset({"131", "132"})


@dataclass
class CatalogCollector:
    """The pages of one Catalog query, collected until SumNum items have come."""

    sn: int
    started_at: float
    total: int | None = None
    items: dict[str, CatalogItem] = field(default_factory=dict)
    updated_at: float = 0.0


@dataclass
class Device:
    id: str
    transport: str
    host: str
    port: int
    call_id: str
    registered_at: float
    expires_at: float
    last_seen: float
    state: DeviceState = "online"
    since: float = 0.0
    last_keepalive: float | None = None
    channels: dict[str, CatalogItem] = field(default_factory=dict)
    catalog: CatalogCollector | None = None
    catalog_at: float | None = None
    info: dict[str, str] = field(default_factory=dict)  # DeviceInfo answer
    status: dict[str, str] = field(default_factory=dict)  # DeviceStatus answer
    last_error: str | None = None

    def video_channels(self) -> list[CatalogItem]:
        return [c for c in self.channels.values() if c.type_code in VIDEO_TYPES]


@dataclass
class Changes:
    """What the camera registry must apply after one event."""

    upsert: list[tuple[str, CatalogItem]] = field(default_factory=list)  # (device, channel)
    removed: list[str] = field(default_factory=list)  # channel ids
    online: dict[str, bool] = field(default_factory=dict)  # channel id → online
    went_offline: list[str] = field(default_factory=list)  # device ids
    came_online: list[str] = field(default_factory=list)  # device ids

    def __bool__(self) -> bool:
        return bool(self.upsert or self.removed or self.online or self.went_offline
                    or self.came_online)  # fmt: skip


@dataclass
class RegisterResult:
    device: Device
    new_session: bool  # first registration, or back after offline: query the catalog
    changes: Changes


class Registry:
    """Devices by id. Not thread-safe: the SIP server's event loop owns it."""

    def __init__(self, *, keepalive_interval_s: float = 60.0, keepalive_misses: int = 3,
                 catalog_timeout_s: float = 60.0, max_channels: int = 50_000) -> None:  # fmt: skip
        self.keepalive_interval_s = keepalive_interval_s
        self.keepalive_misses = keepalive_misses
        self.catalog_timeout_s = catalog_timeout_s
        self.max_channels = max_channels
        self.devices: dict[str, Device] = {}

    # -- registration --------------------------------------------------------------

    def register(self, device_id: str, *, host: str, port: int, transport: str, expires: int,
                 call_id: str, now: float) -> RegisterResult:  # fmt: skip
        dev = self.devices.get(device_id)
        new_session = dev is None or dev.state == "offline" or dev.call_id != call_id
        if dev is None:
            dev = Device(id=device_id, transport=transport, host=host, port=port,
                         call_id=call_id, registered_at=now, expires_at=now + expires,
                         last_seen=now, since=now)  # fmt: skip
            self.devices[device_id] = dev
        dev.transport, dev.host, dev.port = transport, host, port
        dev.call_id = call_id
        dev.expires_at = now + expires
        dev.last_seen = now
        if new_session:
            dev.registered_at = now
        changes = Changes()
        if dev.state == "offline":
            self._set_state(dev, "online", now, changes)
        return RegisterResult(dev, new_session, changes)

    def unregister(self, device_id: str, now: float) -> Changes:
        """Expires 0: the device leaves; its channels go offline (they stay known)."""
        dev = self.devices.get(device_id)
        changes = Changes()
        if dev is not None and dev.state == "online":
            self._set_state(dev, "offline", now, changes)
        return changes

    def remove(self, device_id: str) -> Changes:
        """An operator removes a device: its channels leave the registry."""
        dev = self.devices.pop(device_id, None)
        changes = Changes()
        if dev is not None:
            changes.removed = list(dev.channels)
        return changes

    def keepalive(self, device_id: str, now: float) -> Changes | None:
        """A keepalive; None when the device is not registered (answer it 403/404)."""
        dev = self.devices.get(device_id)
        if dev is None or (dev.state == "offline" and now >= dev.expires_at):
            return None
        dev.last_keepalive = now
        dev.last_seen = now
        changes = Changes()
        if dev.state == "offline":  # missed keepalives, but its registration holds
            self._set_state(dev, "online", now, changes)
        return changes

    def tick(self, now: float) -> Changes:
        """Devices silent for ``keepalive_misses`` intervals or whose registration ran out
        go offline; catalog queries that never complete are closed with what came."""
        changes = Changes()
        limit = self.keepalive_interval_s * self.keepalive_misses
        limit_catalog = self.catalog_timeout_s
        for dev in self.devices.values():
            col = dev.catalog
            if col is not None and now - max(col.started_at, col.updated_at) > limit_catalog:
                got, total = len(col.items), col.total
                dev.last_error = f"catalog incomplete: {got} of {total} item(s) arrived"
                self._apply_catalog(dev, col, changes)
                dev.catalog = None
            if dev.state != "online":
                continue
            if now >= dev.expires_at:
                dev.last_error = "registration expired"
                self._set_state(dev, "offline", now, changes)
            elif now - dev.last_seen > limit:
                dev.last_error = f"{self.keepalive_misses} keepalives missed"
                self._set_state(dev, "offline", now, changes)
        return changes

    def _set_state(self, dev: Device, state: DeviceState, now: float, changes: Changes) -> None:
        dev.state, dev.since = state, now
        (changes.came_online if state == "online" else changes.went_offline).append(dev.id)
        for cid, item in dev.channels.items():
            changes.online[cid] = state == "online" and item.online

    # -- catalog -----------------------------------------------------------------

    def start_catalog(self, device_id: str, sn: int, now: float) -> None:
        dev = self.devices[device_id]
        dev.catalog = CatalogCollector(sn=sn, started_at=now, updated_at=now)

    def catalog_page(self, device_id: str, sn: int, total: int, items: list[CatalogItem],
                     now: float) -> Changes | None:  # fmt: skip
        """One page of a Catalog response; the changes once SumNum items have come.

        A page of an answer we did not ask for (another SN) starts a new collection:
        devices that reboot answer an old query with a new SN.
        """
        dev = self.devices.get(device_id)
        if dev is None:
            return None
        col = dev.catalog
        if col is None or col.sn != sn:
            col = dev.catalog = CatalogCollector(sn=sn, started_at=now)
        col.total = min(total, self.max_channels)
        col.updated_at = now
        for item in items:
            if len(col.items) < self.max_channels:
                col.items[item.id] = item
        if len(col.items) < col.total:
            return None
        changes = Changes()
        self._apply_catalog(dev, col, changes)
        dev.catalog = None
        if total > self.max_channels:
            dev.last_error = f"catalog of {total} items cut at {self.max_channels}"
        return changes

    def _apply_catalog(self, dev: Device, col: CatalogCollector, changes: Changes) -> None:
        """A complete catalog replaces the device's channels."""
        for cid in set(dev.channels) - set(col.items):
            changes.removed.append(cid)
        dev.channels = dict(col.items)
        dev.catalog_at = col.updated_at
        for cid, item in dev.channels.items():
            changes.upsert.append((dev.id, item))
            changes.online[cid] = dev.state == "online" and item.online

    def catalog_notify(self, device_id: str, items: list[CatalogItem]) -> Changes | None:
        """A catalog notification (§9.5.2.3): ON/OFF/VLOST/DEFECT/ADD/DEL/UPDATE."""
        dev = self.devices.get(device_id)
        if dev is None:
            return None
        changes = Changes()
        for item in items:
            event = item.event or "UPDATE"
            known = dev.channels.get(item.id)
            if event == "DEL":
                if dev.channels.pop(item.id, None) is not None:
                    changes.removed.append(item.id)
            elif event in ("ON", "OFF", "VLOST", "DEFECT"):
                if known is None:
                    continue
                known.status = "ON" if event == "ON" else "OFF"
                changes.online[item.id] = dev.state == "online" and known.online
            elif len(dev.channels) < self.max_channels or known is not None:  # ADD / UPDATE
                dev.channels[item.id] = item
                changes.upsert.append((dev.id, item))
                changes.online[item.id] = dev.state == "online" and item.online
        return changes


class FloodGuard:
    """At most ``limit`` requests per key (a device id) within ``window_s``: a device
    that floods REGISTER (a broken firmware loop) is dropped, the others are served."""

    def __init__(self, limit: int = 20, window_s: float = 10.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._seen: dict[str, tuple[float, int]] = {}

    def allow(self, key: str, now: float) -> bool:
        start, count = self._seen.get(key, (now, 0))
        if now - start >= self.window_s:
            start, count = now, 0
        count += 1
        self._seen[key] = (start, count)
        if len(self._seen) > 100_000:  # ids sprayed at us: forget the old windows
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s}
        return count <= self.limit
