"""A device's recording (fetched by playback, gb28181/playback.py) as a signed case export:
the zip of alerts/export.py (``manifest.json`` + ``manifest.sig``, checked by
``shaobing evidence verify``) holding the MP4 and, in the manifest, where it came from
(device, channel, the range asked for and the duration received) and its SHA-256."""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alerts.export import MANIFEST, SIGNATURE, manifest_header, sign
from gb28181.playback import Clip


def write_device_export(target: Path, camera: dict[str, Any], device_id: str, clip: Clip,
                        start: int, end: int, key: bytes, *, user: str, case_number: str,
                        reason: str, now: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Write the signed zip to ``target``; its manifest."""
    when = time.time() if now is None else now
    stamp = datetime.fromtimestamp(start, UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"device_recordings/{camera['id']}_{stamp}.mp4"
    digest = hashlib.sha256()
    size = 0
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
        with clip.path.open("rb") as src, zf.open(name, "w", force_zip64=True) as entry:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                entry.write(chunk)
                size += len(chunk)
        manifest = {
            **manifest_header(case_number, reason, user, when),
            "alerts": [],
            "device_recordings": [{
                "camera": camera, "name": name, "device_id": device_id,
                "channel_id": camera.get("gb28181_id"), "requested": {"start": start, "end": end},
                "duration_s": clip.duration_s, "codec": clip.codec, "ended_by": clip.ended_by,
                "source": "GB/T 28181 playback from the device's own storage",
            }],
            "files": [{"name": name, "kind": "device_recording", "sha256": digest.hexdigest(),
                       "size": size}],
            "missing_on_disk": [],
        }  # fmt: skip
        raw = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
        zf.writestr(MANIFEST, raw)
        zf.writestr(SIGNATURE, sign(raw, key) + "\n")
    return manifest
