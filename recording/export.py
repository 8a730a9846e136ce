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
import queue
import threading
import time
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from alerts.export import MANIFEST, SIGNATURE, manifest_header, sign
from core.storage import EvidenceStorage
from recording.playback import write_range
from recording.store import SegmentRecord


class _HashingWriter:
    """Write-only sink for the muxer (no seek): what it writes is gathered into chunks of
    ``CHUNK`` bytes that a second thread hashes and writes on to ``target`` (a zip entry:
    its CRC and the file write), so the remux goes on meanwhile (SHA-256, CRC-32 and the
    write release the GIL). ``close()`` flushes and waits; a failure of the target is
    raised on the next ``write`` or at ``close``."""

    CHUNK = 1 << 20

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0
        self._buf = bytearray()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="recording-export-write",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain: the muxer is told on its next write
            try:
                self.digest.update(chunk)
                self.target.write(chunk)
            except BaseException as exc:  # noqa: BLE001 - handed to the writing thread
                self._error = exc

    def write(self, data: bytes) -> int:
        if self._error is not None:
            raise self._error
        n = len(data)
        self._buf += data
        self.size += n
        if len(self._buf) >= self.CHUNK:
            self._queue.put(bytes(self._buf))
            self._buf.clear()
        return n

    def close(self) -> None:
        if self._buf:
            self._queue.put(bytes(self._buf))
            self._buf.clear()
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


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
            try:
                made = write_range(storage, segments, start, end, sink, verify=True)  # type: ignore[arg-type]
            finally:
                sink.close()
        manifest = {
            **manifest_header(case_number, reason, user, when),
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
