"""The evidence storage port: where snapshots, clips and track thumbnails live, for every
role to write, read and delete.

Every evidence writer (snapshots and annotated snapshots, alert clips, track thumbnails
and clips), reader (the API's evidence endpoints, the case export) and the retention
threads go through one :class:`EvidenceStorage` made once per process from the config
(``storage.evidence``):

* ``kind: directory`` (the default): :class:`SharedDirectory` at ``alerts.snapshot_dir``
  (default ``<data_dir>/snapshots``). Embedded mode: a local folder. Distributed mode: a
  **shared directory** mounted at the same path on every worker and API node (NFS,
  CephFS, a SAN volume): workers write evidence there, API nodes serve it and export
  cases from it, the retention threads of any worker delete from it.
* ``kind: s3``: :class:`S3Bucket`, an S3-compatible bucket (MinIO on the video network)
  through ``boto3`` (the ``s3`` extra).

References. ``put`` returns the reference stored in the database: the **key** relative
to the storage root (``<camera>/<YYYYMMDD>/<alert>.jpg``; track files under
``tracks/``), the same for both kinds, so a bucket filled with a copy of the directory
serves the same rows. Rows written by older versions hold **absolute paths**: those inside
the root keep working (read and deleted by key); nothing outside it is ever opened or
deleted (:class:`OutsideStorage`: path traversal, a symlink out of the root, a row
pointing elsewhere).
"""

from __future__ import annotations

import io
import logging
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, BinaryIO, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import Field, StrictBool, field_validator

from core.model import StrictModel

log = logging.getLogger(__name__)

#: Key prefix of the track index's files (thumbnails, clips); alert evidence is keyed
#: ``<camera>/<day>/...``. The alert retention leaves this prefix to the track retention.
TRACKS_PREFIX = "tracks/"


class StorageError(RuntimeError):
    """The storage failed (unreachable, refused) or a reference it will not touch.
    Messages never hold a credential."""


class OutsideStorage(StorageError):
    """A reference outside the storage root (``..``, an absolute path elsewhere, a
    symbolic link leading out): never opened, served or deleted."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    mtime: float  # epoch seconds


class EvidenceStorage(Protocol):
    """Evidence objects by key. ``open`` raises ``FileNotFoundError`` for a missing object,
    :class:`OutsideStorage` for a reference outside the storage, :class:`StorageError`
    when the storage fails."""

    def describe(self) -> str:
        """Where the evidence is (for logs; no credential)."""

    def put(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key`` (a relative path, ``/``-separated), atomically;
        returns the reference to store."""

    def open(self, ref: str) -> BinaryIO:
        """A seekable binary reader of a stored object."""

    def delete(self, ref: str) -> None:
        """Delete a stored object (missing: nothing happens)."""

    def key(self, ref: str) -> str:
        """The canonical key of a reference (raises :class:`OutsideStorage`)."""

    def local_path(self, ref: str) -> Path | None:
        """The object's file on this host when the storage is a directory (a fast path for
        serving), None otherwise. Raises :class:`OutsideStorage`."""

    def objects(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every stored object whose key starts with ``prefix``."""

    def check(self, *, shared_required: bool, data_dir: Path) -> list[str]:
        """Problems with this storage (not writable; in distributed mode private to one
        host)."""


def normalise_key(key: str) -> str:
    """``key`` as ``a/b/c`` (no empty or ``.`` parts); ``..``, a backslash, a NUL byte or
    an empty key is refused."""
    if not key or "\x00" in key or "\\" in key:
        raise OutsideStorage(f"invalid evidence key {key!r}")
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise OutsideStorage(f"evidence key {key!r} leaves the evidence storage")
    return "/".join(parts)


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


def as_storage(where: EvidenceStorage | Path) -> EvidenceStorage:
    """A storage as given, or a plain folder (references: absolute paths)."""
    if isinstance(where, Path):
        return SharedDirectory(where, absolute_refs=True)
    return where


# -- S3-compatible bucket (the ``s3`` extra: boto3) ----------------------------------------


class _S3Reader(io.RawIOBase):
    """A seekable reader of one object: one ranged GET per contiguous read."""

    def __init__(self, bucket: S3Bucket, name: str, size: int) -> None:
        self._bucket = bucket
        self._name = name
        self._size = size
        self._pos = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        pos = max(0, base + offset)
        if pos != self._pos:
            self._drop()
            self._pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size:
            return 0
        if self._body is None:
            self._body = self._bucket._get_body(self._name, self._pos)
        want = min(len(buffer), self._size - self._pos)
        data = self._bucket._read(self._body, want)
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n

    def _drop(self) -> None:
        if self._body is not None:
            try:
                self._body.close()
            except Exception:  # noqa: BLE001 - closing a finished stream
                pass
            self._body = None

    def close(self) -> None:
        self._drop()
        super().close()


class S3Bucket:
    """Evidence objects in an S3-compatible bucket (MinIO, Ceph RGW, a cloud bucket on the
    video network), object name = ``prefix`` + key. Credentials are given here (read from
    the environment variables the config names); they never appear in a log, a ``repr``
    or an error message. Turn bucket versioning on for tamper evidence.

    ``path_root``: the directory evidence was kept in before (``alerts.snapshot_dir``):
    absolute references inside it, from rows written then, are read by their key below
    it (copy the directory into the bucket: ``rclone copy``/``mc mirror``).
    """

    def __init__(
        self,
        *,
        endpoint_url: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        prefix: str = "",
        region: str = "us-east-1",
        verify: bool | str = True,
        addressing_style: str = "path",
        timeout_s: float = 10.0,
        path_root: Path | None = None,
    ) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:  # pragma: no cover - the extra missing is a config error first
            raise StorageError(
                "storage.evidence.kind: s3 needs boto3: install the s3 extra "
                "(pip install 'shaobing[s3]')"
            ) from None
        self.endpoint_url = endpoint_url
        self.bucket = bucket
        self.prefix = prefix
        self.path_root = path_root
        self._secrets = tuple(s for s in (access_key, secret_key) if s)
        self._client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            verify=verify,
            config=Config(
                s3={"addressing_style": addressing_style},
                connect_timeout=timeout_s,
                read_timeout=timeout_s,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )

    def __repr__(self) -> str:
        return f"S3Bucket({self.endpoint_url!r}, {self.bucket!r})"

    def describe(self) -> str:
        return f"s3 bucket {self.bucket}{'/' + self.prefix if self.prefix else ''} at " \
               f"{self.endpoint_url}"  # fmt: skip

    # -- errors: masked, 404 as FileNotFoundError ---------------------------------------

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _fail(self, what: str, exc: Exception) -> Exception:
        code = ""
        response = getattr(exc, "response", None)
        if isinstance(response, Mapping):
            error = response.get("Error") or {}
            code = str(error.get("Code", ""))
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            if code in ("404", "NoSuchKey", "NotFound") or status == 404:
                return FileNotFoundError(f"no evidence object {what!r}")
        return StorageError(f"{self.describe()}: {what}: {self.mask(str(exc))}")

    def _errors(self) -> tuple[type[Exception], ...]:
        from botocore.exceptions import BotoCoreError, ClientError

        return (BotoCoreError, ClientError)

    # -- references -----------------------------------------------------------------------

    def key(self, ref: str) -> str:
        if "\x00" in ref:
            raise OutsideStorage("invalid evidence reference (NUL byte)")
        if os.path.isabs(ref):
            if self.path_root is not None:
                root = Path(os.path.normpath(self.path_root))
                path = Path(os.path.normpath(ref))
                if path != root and path.is_relative_to(root):
                    return normalise_key(path.relative_to(root).as_posix())
            raise OutsideStorage(f"{ref!r} is a file path, not a key of {self.describe()}")
        return normalise_key(ref)

    def _name(self, ref: str) -> str:
        return self.prefix + self.key(ref)

    def local_path(self, ref: str) -> None:
        self.key(ref)  # refuses what is outside
        return None

    # -- operations -------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> str:
        key = normalise_key(key)
        try:
            self._client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)
        except self._errors() as exc:
            raise self._fail(key, exc) from None
        return key

    def open(self, ref: str) -> BinaryIO:
        name = self._name(ref)
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=name)
        except self._errors() as exc:
            raise self._fail(ref, exc) from None
        reader = _S3Reader(self, name, int(head["ContentLength"]))
        return io.BufferedReader(reader, buffer_size=1 << 20)  # type: ignore[return-value]

    def _get_body(self, name: str, start: int) -> Any:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=name,
                                           Range=f"bytes={start}-")["Body"]  # fmt: skip
        except self._errors() as exc:
            raise self._fail(name, exc) from None

    def _read(self, body: Any, n: int) -> bytes:
        try:
            return bytes(body.read(n))
        except self._errors() as exc:
            raise self._fail("read", exc) from None

    def delete(self, ref: str) -> None:
        name = self._name(ref)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=name)
        except self._errors() as exc:
            failure = self._fail(ref, exc)
            if not isinstance(failure, FileNotFoundError):
                raise failure from None

    def objects(self, prefix: str = "") -> Iterator[StoredObject]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix) :]
                    if key.rsplit("/", 1)[-1].startswith("."):
                        continue
                    yield StoredObject(key, int(obj["Size"]), obj["LastModified"].timestamp())
        except self._errors() as exc:
            raise self._fail(f"list {prefix!r}", exc) from None

    def check(self, *, shared_required: bool, data_dir: Path) -> list[str]:
        try:
            probe = self.put(f".probe-{uuid.uuid4().hex}", b"ok")
            self.delete(probe)
        except (OSError, StorageError) as exc:
            return [f"evidence storage {self.describe()} is not writable: {exc}"]
        return []


# -- configuration (``storage.evidence``) ---------------------------------------------------

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class DirectoryStorageConfig(StrictModel):
    """Evidence in a directory: ``alerts.snapshot_dir`` (default ``<data_dir>/snapshots``);
    in distributed mode a directory shared by every worker and API node."""

    kind: Literal["directory"] = "directory"


class S3StorageConfig(StrictModel):
    """Evidence in an S3-compatible bucket (the ``s3`` extra: boto3)."""

    kind: Literal["s3"]
    endpoint_url: str = Field(
        pattern=r"^https?://", description="the S3 endpoint, e.g. http://10.1.2.3:9000 (MinIO)"
    )
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = Field(
        "", pattern=r"^([A-Za-z0-9_.-]+/)*$", description="object name prefix, e.g. evidence/"
    )
    region: str = Field("us-east-1", max_length=64)
    access_key_env: str = Field(
        "SHAOBING_S3_ACCESS_KEY", pattern=ENV_NAME,
        description="name of the environment variable holding the access key",
    )  # fmt: skip
    secret_key_env: str = Field(
        "SHAOBING_S3_SECRET_KEY", pattern=ENV_NAME,
        description="name of the environment variable holding the secret key",
    )  # fmt: skip
    verify_tls: StrictBool = Field(True, description="check the endpoint's TLS certificate")
    ca_file: str | None = Field(None, description="CA bundle for the endpoint (a path)")
    addressing_style: Literal["path", "virtual"] = "path"
    timeout_s: float = Field(10.0, gt=0, le=300)

    @field_validator("endpoint_url")
    @classmethod
    def _no_credentials(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.username or parts.password:
            raise ValueError("no credentials in the URL: set them in the environment variables "
                             "named by access_key_env and secret_key_env")  # fmt: skip
        if not parts.hostname:
            raise ValueError("no host in the URL")
        return v


EvidenceStorageConfig = Annotated[
    DirectoryStorageConfig | S3StorageConfig, Field(discriminator="kind")
]


def config_problems(
    cfg: DirectoryStorageConfig | S3StorageConfig, env: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """(field below ``storage.evidence``, reason) of what a validated config still lacks
    on this host: the s3 extra, the credentials' environment variables."""
    if not isinstance(cfg, S3StorageConfig):
        return []
    import importlib.util

    env = os.environ if env is None else env
    problems = []
    if importlib.util.find_spec("boto3") is None:
        problems.append(("kind", "s3 needs boto3: install the s3 extra "
                                 "(pip install 'shaobing[s3]')"))  # fmt: skip
    for field, what in (("access_key_env", "access key"), ("secret_key_env", "secret key")):
        name = getattr(cfg, field)
        if not env.get(name):
            problems.append((field, f"environment variable {name} (the S3 {what}) is not set"))
    return problems


def open_evidence_storage(
    cfg: DirectoryStorageConfig | S3StorageConfig,
    directory: Path,
    *,
    legacy_roots: Sequence[Path] = (),
    ca_file: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> EvidenceStorage:
    """The storage of ``storage.evidence``: ``directory`` is ``alerts.snapshot_dir``
    resolved (the root of ``kind: directory``; for ``kind: s3``, where older rows'
    absolute paths point)."""
    if isinstance(cfg, DirectoryStorageConfig):
        return SharedDirectory(directory, legacy_roots=legacy_roots)
    env = os.environ if env is None else env
    keys = {}
    for field in ("access_key_env", "secret_key_env"):
        value = env.get(getattr(cfg, field))
        if not value:
            raise StorageError(f"storage.evidence.{field}: environment variable "
                               f"{getattr(cfg, field)} is not set")  # fmt: skip
        keys[field] = value
    verify: bool | str = str(ca_file) if ca_file is not None else cfg.verify_tls
    return S3Bucket(
        endpoint_url=cfg.endpoint_url, bucket=cfg.bucket, prefix=cfg.prefix,
        region=cfg.region, access_key=keys["access_key_env"],
        secret_key=keys["secret_key_env"], verify=verify,
        addressing_style=cfg.addressing_style, timeout_s=cfg.timeout_s, path_root=directory,
    )  # fmt: skip
