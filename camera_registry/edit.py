"""Editing a registered camera: what an edit keeps of the stored config (pure, no I/O).

An edit gives only the fields it changes; zones, rules and everything else stay. A
password is never sent back to the console, so an edit that leaves it out keeps the
stored one — but only for the same device (host and port): a camera pointed at another
host must be given its password again, so that nobody who may edit a camera but not
know its password can have the hub send it to a host of their choosing.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlsplit

#: The fields of a camera an edit may change (the registry's part; zones and rules are
#: the analytics editor's, ``PUT /api/cameras/{id}/analytics``).
EDITABLE = (
    "name", "enabled", "source", "area", "lat", "lon", "programme", "gb28181_id",
    "detect_fps", "analysis", "record",
)  # fmt: skip


def _endpoint(url: object) -> tuple[str, int | None] | None:
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        return (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None


def same_device(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two ``source`` mappings reach the same device (ONVIF host and port, or
    the URL's host and port)."""
    old_onvif, new_onvif = old.get("onvif"), new.get("onvif")
    if isinstance(old_onvif, dict) or isinstance(new_onvif, dict):
        if not (isinstance(old_onvif, dict) and isinstance(new_onvif, dict)):
            return False
        return (str(old_onvif.get("host", "")).lower(), old_onvif.get("port", 80)) == (
            str(new_onvif.get("host", "")).lower(),
            new_onvif.get("port", 80),
        )
    old_end, new_end = _endpoint(old.get("url")), _endpoint(new.get("url"))
    return old_end is not None and old_end == new_end


def merge_edit(
    stored: dict[str, Any], changes: dict[str, Any], *, clear_password: bool = False
) -> dict[str, Any]:
    """The camera config after an edit: ``stored`` (secrets decrypted) with ``changes``
    on top; a ``source`` without a password keeps the stored one for the same device
    (unless ``clear_password``). Unknown fields in ``changes`` are a programming error."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ValueError(f"not editable here: {unknown}")
    out = copy.deepcopy(stored)
    out.update(copy.deepcopy(changes))
    old_source = stored.get("source")
    new_source = out.get("source")
    if "source" not in changes or not isinstance(old_source, dict):
        if clear_password and isinstance(new_source, dict):
            _clear(new_source)
        return out
    assert isinstance(new_source, dict)
    if clear_password:
        _clear(new_source)
    elif same_device(old_source, new_source):
        if new_source.get("password") is None and old_source.get("password") is not None:
            new_source["password"] = old_source["password"]
        old_onvif, new_onvif = old_source.get("onvif"), new_source.get("onvif")
        if (
            isinstance(old_onvif, dict)
            and isinstance(new_onvif, dict)
            and new_onvif.get("password") is None
        ):
            new_onvif["password"] = old_onvif.get("password")
    return out


def _clear(source: dict[str, Any]) -> None:
    source["password"] = None
    onvif = source.get("onvif")
    if isinstance(onvif, dict):
        onvif["password"] = None
