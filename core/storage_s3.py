"""Evidence in an S3-compatible bucket (``storage.evidence.kind: s3``, the ``s3`` extra:
boto3; see :mod:`core.storage`)."""

from __future__ import annotations

import io
import logging
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from core.storage import OutsideStorage, StorageError, StoredObject, normalise_key

log = logging.getLogger(__name__)


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
