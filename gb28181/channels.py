"""Catalog channels → camera records (pure): id, name, area path, place, source URL.

The area path comes from the civil code (GB/T 2260 + GB/T 28181 §D): digits 1-6 are the
county, 7-8 the township (grassroots unit), 9-10 (or 9-12) a village when the channel's
CivilCode is that long. The channel's own CivilCode wins over its id's first 8 digits.
Names come from ``sip.area_names``; a code without a name stands for itself.
No credentials: a channel is reached through its device's registration.
"""

from __future__ import annotations

from typing import Any

from camera_registry.config import CameraBase
from core.area import Area
from gb28181.manscdp import CatalogItem

SCHEME = "gb28181"


def camera_id(channel_id: str) -> str:
    return f"gb-{channel_id}"


def source_url(device_id: str, channel_id: str) -> str:
    return f"{SCHEME}://{device_id}/{channel_id}"


def parse_source_url(url: str) -> tuple[str, str]:
    """(device id, channel id) of a ``gb28181://device/channel`` URL."""
    rest = url.split("://", 1)[1] if "://" in url else url
    device, _, channel = rest.strip("/").partition("/")
    if not (device.isdigit() and len(device) == 20 and channel.isdigit() and len(channel) == 20):
        raise ValueError(f"{url!r} is not gb28181://<20-digit device id>/<20-digit channel id>")
    return device, channel


def civil_code(item: CatalogItem) -> str:
    code = (item.civil_code or "").strip()
    if code.isdigit() and len(code) >= 6:
        return code
    return item.id[:8]


def area_of(code: str, names: dict[str, str]) -> Area:
    """The county → township → village path of a civil code (prefixes of 6/8/10+ digits)."""
    parts: dict[str, str] = {}
    if len(code) >= 6 and code[:6] != "000000":
        parts["county"] = names.get(code[:6], code[:6])
        if len(code) >= 8 and code[6:8] != "00":
            parts["township"] = names.get(code[:8], code[:8])
            village = code[:12] if len(code) >= 12 else code[:10]
            if len(village) >= 10 and village[8:].strip("0"):
                parts["village"] = names.get(village, village)
    return Area(**parts)


def camera_for(device_id: str, item: CatalogItem, *, names: dict[str, str], enabled: bool,
               programme: str) -> CameraBase:  # fmt: skip
    """The camera a catalog channel becomes (validated like any other camera)."""
    data: dict[str, Any] = {
        "id": camera_id(item.id),
        "name": (item.name or item.id)[:200],
        "enabled": enabled,
        "source": {"url": source_url(device_id, item.id)},
        "area": area_of(civil_code(item), names).model_dump(),
        "programme": programme,
        "gb28181_id": item.id,
    }
    lat, lon = item.latitude, item.longitude
    if lat is not None and lon is not None and (lat or lon):  # 0,0: "not set" on many devices
        if -90 <= lat <= 90 and -180 <= lon <= 180:
            data["lat"], data["lon"] = item.latitude, item.longitude
    return CameraBase.model_validate(data)
