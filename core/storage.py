"""The evidence storage port: where snapshots and clips live, for every role to read.

Embedded mode: the data directory. Distributed mode: a **shared directory** mounted at
the same path on every worker and API node (NFS, CephFS, a SAN volume): workers write
evidence there, API nodes serve it and export cases from it, the retention thread of
any worker deletes from it. An S3-compatible bucket (MinIO on the video network) fits
the same port — ``put``/``open``/``delete`` by key — and is documented as an option in
docs/deployment.md; the evidence writers today write files under ``alerts.snapshot_dir``,
which is this port's shared-directory adapter.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import BinaryIO, Protocol

log = logging.getLogger(__name__)


class EvidenceStorage(Protocol):
    def put(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key`` (a relative path); returns its reference."""

    def open(self, ref: str) -> BinaryIO:
        """Read a stored object."""

    def delete(self, ref: str) -> None:
        """Delete a stored object (missing: nothing happens)."""


class StorageError(RuntimeError):
    pass


class SharedDirectory:
    """Evidence files under ``root`` (local in embedded mode, a shared mount otherwise).
    Writes are atomic (a temporary name, fsync, rename): a reader on another host never
    sees half a file."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise StorageError(f"key {key!r} leaves the evidence directory")
        return path

    def put(self, key: str, data: bytes) -> str:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
        return str(path)

    def open(self, ref: str) -> BinaryIO:
        return Path(ref).open("rb")

    def delete(self, ref: str) -> None:
        Path(ref).unlink(missing_ok=True)

    def check(self, *, shared_required: bool, data_dir: Path) -> list[str]:
        """Problems with this directory for the mode (writable; in distributed mode not a
        folder private to one host, i.e. not the default under ``data_dir``)."""
        problems = []
        try:
            probe = self.put(f".probe-{uuid.uuid4().hex}", b"ok")
            self.delete(probe)
        except OSError as exc:
            problems.append(f"evidence directory {self.root} is not writable: {exc}")
        if shared_required and self.root.resolve().is_relative_to(data_dir.resolve()):
            problems.append(
                f"evidence directory {self.root} is inside data_dir: in distributed mode set "
                "alerts.snapshot_dir to a directory shared by every worker and API node "
                "(same path everywhere), or API nodes on other hosts cannot serve evidence"
            )
        return problems
