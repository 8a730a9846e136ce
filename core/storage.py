"""The evidence storage port: where snapshots, clips and track thumbnails live, for every
role to write, read and delete.

Every evidence writer (snapshots and annotated snapshots, alert clips, track thumbnails
and clips), reader (the API's evidence endpoints, the case export) and the retention
threads go through one :class:`EvidenceStorage` made once per process from the config
(``storage.evidence``):

* ``kind: directory`` (the default): :class:`~core.storage_directory.SharedDirectory`
  at ``alerts.snapshot_dir`` (default ``<data_dir>/snapshots``). Embedded mode: a local
  folder. Distributed mode: a **shared directory** mounted at the same path on every
  worker and API node (NFS, CephFS, a SAN volume): workers write evidence there, API
  nodes serve it and export cases from it, the retention threads of any worker delete
  from it.
* ``kind: s3``: :class:`~core.storage_s3.S3Bucket`, an S3-compatible bucket (MinIO on the
  video network) through ``boto3`` (the ``s3`` extra).

References. ``put`` returns the reference stored in the database: the **key** relative
to the storage root (``<camera>/<YYYYMMDD>/<alert>.jpg``; track files under
``tracks/``), the same for both kinds, so a bucket filled with a copy of the directory
serves the same rows. Rows written by older versions hold **absolute paths**: those inside
the root keep working (read and deleted by key); nothing outside it is ever opened or
deleted (:class:`OutsideStorage`: path traversal, a symlink out of the root, a row
pointing elsewhere).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, BinaryIO, Literal, Protocol
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


def as_storage(where: EvidenceStorage | Path) -> EvidenceStorage:
    """A storage as given, or a plain folder (references: absolute paths)."""
    from core.storage_directory import SharedDirectory

    if isinstance(where, Path):
        return SharedDirectory(where, absolute_refs=True)
    return where


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
    from core.storage_directory import SharedDirectory
    from core.storage_s3 import S3Bucket

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
