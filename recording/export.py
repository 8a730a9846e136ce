"""A recorded range exported into a signed case export (the zip of alerts/export.py:
``manifest.json`` + ``manifest.sig``, checked by ``shaobing evidence verify``).

The range is remuxed into one MP4 (no re-encoding) from segments whose SHA-256 is
checked first; the manifest lists the MP4's SHA-256 and size and the segments it was
made from (their keys and SHA-256 in the recording index).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alerts.export import FORMAT, MANIFEST, SIGNATURE, sign
from core.storage import EvidenceStorage
from recording.playback import write_range
from recording.store import SegmentRecord


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
    with tempfile.TemporaryDirectory(prefix="shaobing-rec-") as tmp:
        video = Path(tmp) / "range.mp4"
        # Not faststart: that is a second pass over the file, and a file played from disk
        # does not need its index in front.
        made = write_range(storage, segments, start, end, video, verify=True, faststart=False)
        name = f"recordings/{camera['id']}_{_stamp(made.start)}_{_stamp(made.end)}.mp4"
        digest = hashlib.sha256()
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
            with video.open("rb") as source, zf.open(name, "w", force_zip64=True) as dest:
                for block in iter(lambda: source.read(1 << 20), b""):
                    digest.update(block)
                    dest.write(block)
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
                "files": [{"name": name, "kind": "recording", "sha256": digest.hexdigest(),
                           "size": video.stat().st_size}],
                "missing_on_disk": [],
            }  # fmt: skip
            raw = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
            zf.writestr(MANIFEST, raw)
            zf.writestr(SIGNATURE, sign(raw, key) + "\n")
    return manifest
