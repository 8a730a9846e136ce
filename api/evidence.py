"""Serving evidence files from the evidence storage (:mod:`core.storage`).

:func:`locate` finds a stored reference (404 when there is none, it is gone, or it lies
outside the storage: a path-traversal attempt or a row pointing elsewhere is never
served); :func:`evidence_response` answers with it: a file on this host (the shared
directory) as a ``FileResponse``, anything else (a bucket) streamed from
``storage.open`` — both with ``Range`` requests (players seek in clips) and the
caller's headers (``X-Content-SHA256``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TypeAlias

from fastapi import HTTPException
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from core.storage import EvidenceStorage, OutsideStorage, StorageError

log = logging.getLogger(__name__)

CHUNK = 1 << 16
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

Found: TypeAlias = Path | BinaryIO


def locate(storage: EvidenceStorage, ref: str | None, missing: str) -> Found:
    """The stored object of ``ref``: a local file, or an open reader. ``missing``: the
    404 message."""
    if not ref:
        raise HTTPException(404, missing)
    try:
        path = storage.local_path(ref)
        if path is not None:
            if not path.is_file():
                raise HTTPException(404, missing)
            return path
        return storage.open(ref)
    except OutsideStorage:
        log.warning("evidence reference outside the storage refused: %r", ref[:200])
        raise HTTPException(404, missing) from None
    except (FileNotFoundError, IsADirectoryError):
        raise HTTPException(404, missing) from None
    except StorageError as exc:
        log.error("evidence storage failed: %s", exc)
        raise HTTPException(503, "evidence storage unavailable") from None


def close(found: Found) -> None:
    """Release what :func:`locate` opened (when no response is sent after all)."""
    if not isinstance(found, Path):
        found.close()


def evidence_response(
    found: Found, media_type: str, headers: dict[str, str], range_header: str | None = None
) -> Response:
    if isinstance(found, Path):  # the shared directory: Starlette serves ranges itself
        return FileResponse(found, media_type=media_type, headers=headers)
    return _stream(found, media_type, headers, range_header)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(first, last) of a single ``bytes=`` range, None for the whole object, or
    ``"unsatisfiable"``. Several ranges or another unit: the whole object (allowed)."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if m is None:
        return None
    first, last = m.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        n = int(last)
        if n == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return "unsatisfiable"
    return start, end


def _chunks(reader: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    try:
        reader.seek(start)
        left = length
        while left > 0:
            block = reader.read(min(CHUNK, left))
            if not block:
                break
            left -= len(block)
            yield block
    finally:
        reader.close()


def _stream(
    reader: BinaryIO, media_type: str, headers: dict[str, str], range_header: str | None
) -> Response:
    size = reader.seek(0, 2)
    wanted = _byte_range(range_header, size)
    out = {**headers, "Accept-Ranges": "bytes"}
    if wanted == "unsatisfiable":
        reader.close()
        return Response(status_code=416, headers={**out, "Content-Range": f"bytes */{size}"})
    if wanted is None:
        start, end, status = 0, size - 1, 200
    else:
        assert not isinstance(wanted, str)
        (start, end), status = wanted, 206
        out["Content-Range"] = f"bytes {start}-{end}/{size}"
    length = max(0, end - start + 1)
    out["Content-Length"] = str(length)
    return StreamingResponse(
        _chunks(reader, start, length), status_code=status, media_type=media_type,
        headers=out, background=BackgroundTask(reader.close),
    )  # fmt: skip


def case_zip_response(path: Path, case_number: str, *name_parts: object) -> FileResponse:
    """A signed case export (a temporary zip, deleted once sent), named after its case
    number (kept to safe characters) and ``name_parts``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", case_number)
    filename = "-".join([safe, *(str(p) for p in name_parts)]) + ".zip"
    return FileResponse(path, media_type="application/zip", filename=filename,
                        background=BackgroundTask(path.unlink, missing_ok=True))  # fmt: skip
