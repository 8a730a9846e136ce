"""A recorded range exported into a signed case export (the zip of alerts/export.py:
``manifest.json`` + ``manifest.sig``, checked by ``shaobing evidence verify``).

The range is remuxed into one MP4 (no re-encoding; fragmented, muxed straight into the
zip entry and hashed on the way) from segments whose SHA-256 is checked as they are read;
the manifest lists the MP4's SHA-256 and size and the segments it was made from (their
keys and SHA-256 in the recording index).
"""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from alerts.export import FORMAT, MANIFEST, SIGNATURE, sign
from core.storage import EvidenceStorage
from recording.playback import write_range
from recording.store import SegmentRecord


class _HashingWriter:
    """Writes through to ``target`` and hashes what passes (write-only: no seek)."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        chunk = bytes(data)
        self.digest.update(chunk)
        self.target.write(chunk)
        self.size += len(chunk)
        return len(chunk)


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y%m%dT%H%M%SZ")


def write_recording_export(
    target: Path,
    camera: dict[str, Any],
    segments: Sequence[SegmentRecord],
    start: float,
    end: float,
    key: bytes,
    *,
    storage: EvidenceStorage,
    user: str,
    case_number: str,
    reason: str,
    now: float | None = None,
) -> dict[str, Any]:
    """Write the signed zip to ``target``; its manifest. Raises
    :class:`recording.playback.RangeError` for an empty range or an altered segment."""
    when = time.time() if now is None else now
    stamp = _stamp(start)
    name = f"recordings/{camera['id']}_{stamp}.mp4"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
        # Muxed straight into the zip, hashed on the way: one pass over the video. A
        # stream cannot be sought back: a fragmented MP4 (players and ffprobe read it).
        with zf.open(name, "w", force_zip64=True) as entry:
            sink = _HashingWriter(entry)
            made = write_range(storage, segments, start, end, sink, verify=True)  # type: ignore[arg-type]
        manifest = {
            "format": FORMAT,
            "case_number": case_number,
            "reason": reason,
            "exported_by": user,
            "exported_at": when,
            "exported_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)),
            "alerts": [],
            "recordings": [{
                "camera": camera, "name": name, "requested": {"start": start, "end": end},
                "start": made.start, "end": made.end, "segments": made.segments,
            }],
            "files": [{"name": name, "kind": "recording", "sha256": sink.digest.hexdigest(),
                       "size": sink.size}],
            "missing_on_disk": [],
        }  # fmt: skip
        raw = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
        zf.writestr(MANIFEST, raw)
        zf.writestr(SIGNATURE, sign(raw, key) + "\n")
    return manifest
