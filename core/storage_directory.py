"""Evidence in a directory (``storage.evidence.kind: directory``): a local folder, or
in distributed mode one shared by every worker and API node (see :mod:`core.storage`)."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from core.storage import OutsideStorage, StorageError, StoredObject, normalise_key

log = logging.getLogger(__name__)


def _make_private_dirs(root: Path, relative: PurePosixPath) -> None:
    """Create ``root`` and each level of ``relative`` below it owner-only (0700); an
    existing directory keeps its mode (the operator may have chosen it)."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder = root
    for part in relative.parts:
        folder = folder / part
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass


class SharedDirectory:
    """Evidence files under ``root`` (local in embedded mode, a shared mount otherwise).
    Writes are atomic (a temporary name, fsync, rename): a reader on another host never
    sees half a file; every folder is created owner-only (0700).

    ``legacy_roots``: folders where older versions wrote evidence outside ``root`` (the
    track index's ``<data_dir>/tracks``): absolute references inside them are still read
    and deleted, never written. ``absolute_refs``: ``put`` returns the absolute path
    instead of the key (a plain folder handed to a tool: ``shaobing replay``, benches).
    """

    def __init__(
        self, root: Path, *, legacy_roots: Sequence[Path] = (), absolute_refs: bool = False
    ) -> None:
        self.root = Path(root)
        self.legacy_roots = tuple(Path(p) for p in legacy_roots)
        self.absolute_refs = absolute_refs

    def __repr__(self) -> str:
        return f"SharedDirectory({str(self.root)!r})"

    def describe(self) -> str:
        return f"directory {self.root}"

    def path(self, ref: str) -> Path:
        """The file of a reference: a key, or an absolute path inside the root (or a legacy
        root); anything else raises :class:`OutsideStorage`."""
        if "\x00" in ref:
            raise OutsideStorage("invalid evidence reference (NUL byte)")
        if os.path.isabs(ref):
            path = Path(ref).resolve()
            for base in (self.root, *self.legacy_roots):
                real = base.resolve()
                if path != real and path.is_relative_to(real):
                    return path
            raise OutsideStorage(f"{ref!r} is outside the evidence directory {self.root}")
        path = (self.root / normalise_key(ref)).resolve()
        if not path.is_relative_to(self.root.resolve()):  # a symbolic link leading out
            raise OutsideStorage(f"{ref!r} leads out of the evidence directory {self.root}")
        return path

    def key(self, ref: str) -> str:
        path = self.path(ref)
        root = self.root.resolve()
        if not path.is_relative_to(root):
            raise OutsideStorage(f"{ref!r} is in a legacy folder, not under {self.root}")
        return path.relative_to(root).as_posix()

    def local_path(self, ref: str) -> Path:
        return self.path(ref)

    def put(self, key: str, data: bytes) -> str:
        key = normalise_key(key)
        path = self.path(key)  # refused before any folder is made
        _make_private_dirs(self.root, PurePosixPath(key).parent)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        tmp.replace(path)
        return str(path) if self.absolute_refs else key

    def open(self, ref: str) -> BinaryIO:
        path = self.path(ref)
        if not path.is_file():
            raise FileNotFoundError(f"no evidence file {ref!r}")
        return path.open("rb")

    def delete(self, ref: str) -> None:
        path = self.path(ref)
        if not path.is_dir():
            path.unlink(missing_ok=True)

    def objects(self, prefix: str = "") -> Iterator[StoredObject]:
        """Files under the root (temporary files and probes, named ``.*``, left out)."""
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / normalise_key(head) if head else self.root
        for folder, dirs, names in os.walk(start):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in names:
                if name.startswith("."):
                    continue
                path = Path(folder) / name
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix) or path.is_symlink():  # never written here
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:  # deleted meanwhile
                    continue
                yield StoredObject(key, st.st_size, st.st_mtime)

    def check(self, *, shared_required: bool, data_dir: Path) -> list[str]:
        """Problems with this directory for the mode (writable; in distributed mode not a
        folder private to one host, i.e. not the default under ``data_dir``)."""
        problems = []
        try:
            probe = self.put(f".probe-{uuid.uuid4().hex}", b"ok")
            self.delete(probe)
        except (OSError, StorageError) as exc:
            problems.append(f"evidence directory {self.root} is not writable: {exc}")
        if shared_required and self.root.resolve().is_relative_to(data_dir.resolve()):
            problems.append(
                f"evidence directory {self.root} is inside data_dir: in distributed mode set "
                "alerts.snapshot_dir to a directory shared by every worker and API node "
                "(same path everywhere), or storage.evidence.kind: s3 — or API nodes on other "
                "hosts cannot serve evidence"
            )
        return problems
