"""Case export: the evidence of chosen alerts as one signed zip, and its verification.

The evidence is read through the storage port (:mod:`core.storage`: the shared directory
or the bucket) and hashed as it is copied into the zip. The zip holds each alert's
snapshots and clip under ``<alert id>/``, a
``manifest.json`` (SHA-256 and size of every file, the alerts' camera and times, who
exported them when, the case number and reason) and ``manifest.sig``: HMAC-SHA256
of the manifest's bytes with the hub's key (``alerts.links.load_or_create_key``).
Whoever holds the key can prove that no file was changed, added or removed since.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.domain.model import OPEN_STATUSES, Alert, EvidenceRef
from core.secrets import same_text
from core.storage import EvidenceStorage, OutsideStorage

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
FORMAT = "shaobing-evidence-export/1"

FILE_NAMES = {"snapshot": "snapshot.jpg", "annotated_snapshot": "annotated.jpg",
              "clip": "clip.mp4"}  # fmt: skip


def manifest_header(case_number: str, reason: str, user: str, when: float) -> dict[str, Any]:
    """What every export's manifest starts with (alerts, hub recordings, device recordings):
    the format, the case, why, who and when."""
    return {
        "format": FORMAT,
        "case_number": case_number,
        "reason": reason,
        "exported_by": user,
        "exported_at": when,
        "exported_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)),
    }


class ExportError(ValueError):
    """Evidence that cannot be exported as it stands (altered in the storage)."""


def sign(manifest: bytes, key: bytes) -> str:
    return hmac.new(key, manifest, hashlib.sha256).hexdigest()


def _files(alert: Alert) -> Iterator[tuple[str, str, EvidenceRef]]:
    """(name in the zip, kind, ref) of an alert's evidence, in a fixed order."""
    for kind, name in FILE_NAMES.items():
        ref = alert.evidence.get(kind)
        if ref is not None:
            yield f"{alert.id}/{name}", kind, ref


def _alert_entry(alert: Alert) -> dict[str, Any]:
    clip = alert.evidence.get("clip")
    return {
        "id": alert.id, "type": alert.type, "rule": alert.rule, "status": alert.status,
        "camera": {"id": alert.camera_id, "name": alert.camera_name,
                   "gb28181_id": alert.camera_gb28181_id},  # fmt: skip
        "area": alert.area.model_dump(), "created_at": alert.created_at,
        "started_at": alert.started_at, "explanation": alert.explanation,
        "clip": {"start": clip.start, "end": clip.end} if clip else None,
    }  # fmt: skip


def _copy(storage: EvidenceStorage, ref: EvidenceRef, zf: zipfile.ZipFile, name: str
          ) -> tuple[str, int] | None:  # fmt: skip
    """Copy one evidence object into the zip, hashing it on the way: (SHA-256, size), or
    None when the storage no longer has it (retention) or the reference is outside it."""
    try:
        source = storage.open(ref.path)
    except (FileNotFoundError, IsADirectoryError):
        return None
    except OutsideStorage:
        log.warning("export: %s refers outside the evidence storage; listed as missing", name)
        return None
    digest, size = hashlib.sha256(), 0
    with source, zf.open(name, "w", force_zip64=True) as target:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            target.write(block)
            size += len(block)
    return digest.hexdigest(), size


def write_export(
    target: Path,
    alerts: list[Alert],
    key: bytes,
    *,
    storage: EvidenceStorage,
    user: str,
    case_number: str,
    reason: str,
    now: float | None = None,
) -> dict[str, Any]:
    """Write the signed zip to ``target``; its manifest. Evidence altered in the storage
    is refused (:class:`ExportError`; ``target`` is then incomplete: delete it); evidence
    no longer there (retention) is listed as missing. A failing storage raises
    :class:`core.storage.StorageError`."""
    when = time.time() if now is None else now
    files: list[dict[str, Any]] = []
    missing: list[dict[str, Any]] = []
    # Stored, not deflated: JPEG and H.264 do not compress, and plain entries stay readable.
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
        for alert in alerts:
            for name, kind, ref in _files(alert):
                copied = _copy(storage, ref, zf, name)
                if copied is None:  # deleted by retention: say so, export the rest
                    missing.append({"name": name, "alert_id": alert.id, "kind": kind,
                                    "sha256": ref.sha256})  # fmt: skip
                    continue
                sha, size = copied
                if sha != ref.sha256:
                    raise ExportError(f"{name}: in the evidence storage it no longer matches "
                                      "the alert's SHA-256")  # fmt: skip
                files.append({"name": name, "alert_id": alert.id, "kind": kind, "sha256": sha,
                              "size": size})  # fmt: skip
        manifest = {
            **manifest_header(case_number, reason, user, when),
            "alerts": [_alert_entry(a) for a in alerts],
            "files": files,
            "missing_on_disk": missing,
        }
        raw = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
        zf.writestr(MANIFEST, raw)
        zf.writestr(SIGNATURE, sign(raw, key) + "\n")
    return manifest


@dataclass
class Verification:
    """What :func:`verify_export` found; ``ok`` only if nothing is wrong."""

    signature_ok: bool = False
    problems: list[str] = field(default_factory=list)
    files: int = 0

    @property
    def ok(self) -> bool:
        return self.signature_ok and not self.problems


def verify_export(path: Path, key: bytes) -> Verification:
    """Check the manifest's signature and every file's hash; name what is wrong."""
    result = Verification()
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        if MANIFEST not in names or SIGNATURE not in names:
            result.problems.append(f"{MANIFEST} or {SIGNATURE} missing")
            return result
        raw = zf.read(MANIFEST)
        sig = zf.read(SIGNATURE).decode(errors="replace").strip()
        result.signature_ok = same_text(sign(raw, key), sig)
        if not result.signature_ok:
            result.problems.append(f"{MANIFEST}: signature does not match (manifest altered, "
                                   "or another hub's key)")  # fmt: skip
        listed = json.loads(raw).get("files", [])
        for entry in listed:
            name = entry["name"]
            if name not in names:
                result.problems.append(f"{name}: missing")
            elif hashlib.sha256(zf.read(name)).hexdigest() != entry["sha256"]:
                result.problems.append(f"{name}: altered (SHA-256 differs)")
        result.files = len(listed)
        extra = names - {e["name"] for e in listed} - {MANIFEST, SIGNATURE}
        result.problems.extend(f"{name}: not in the manifest (added)" for name in sorted(extra))
    return result


def open_evidence_paths(sessions: sessionmaker[Session]) -> set[str]:
    """The evidence references of open alerts (retention never deletes them)."""
    from alerts.adapters.sql import AlertRecord  # the adapter: imported where it is used

    columns = (AlertRecord.snapshot_path, AlertRecord.annotated_path, AlertRecord.clip_path)
    stmt = select(*columns).where(
        AlertRecord.status.in_(sorted(OPEN_STATUSES)), or_(*(c.is_not(None) for c in columns))
    )
    with sessions() as session:
        return {p for row in session.execute(stmt) for p in row if p}
