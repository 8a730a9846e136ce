"""Import camera lists from YAML or CSV (the spreadsheets counties keep).

CSV columns (header row required; only ``id`` and one of ``url`` / ``onvif_host``
are mandatory): id, name, url, onvif_host, onvif_port, onvif_profile, username,
password, transport, county, township, village, grid, lat, lon, programme,
gb28181_id, detect_fps, enabled.

An import is all or nothing: every row is validated first and every problem is
reported as ``file: row N (id=...): field: reason``.

Files are read as UTF-8 (with or without BOM), else as GB18030 (a superset of GBK,
what Excel saves in China); anything else is a clear error.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from camera_registry.config import CameraBase
from core.limits import limit_problems

C = TypeVar("C", bound=CameraBase)

#: Tried in order; GB18030 decodes GBK and GB2312 files too.
ENCODINGS = ("utf-8-sig", "gb18030")
#: Accepted spellings of the ``enabled`` column (case-insensitive).
ENABLED_VALUES = {
    "true": True, "1": True, "yes": True, "是": True,
    "false": False, "0": False, "no": False, "否": False,
}  # fmt: skip

CSV_COLUMNS = (
    "id", "name", "url", "onvif_host", "onvif_port", "onvif_profile", "username", "password",
    "transport", "county", "township", "village", "grid", "lat", "lon", "programme",
    "gb28181_id", "detect_fps", "enabled",
)  # fmt: skip


class ImportError_(ValueError):
    """Problems in an import file; ``problems`` lists each one."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s)\n" + "\n".join(problems))


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(row)"


def _row_from_csv(row: dict[str, str]) -> dict[str, Any]:
    def val(key: str) -> str | None:
        v = (row.get(key) or "").strip()
        return v or None

    source: dict[str, Any] = {}
    if val("url"):
        source["url"] = val("url")
        if val("username"):
            source["username"] = val("username")
        if val("password"):
            source["password"] = val("password")
    if val("onvif_host"):
        onvif: dict[str, Any] = {"host": val("onvif_host")}
        for key in ("port", "profile"):
            if val(f"onvif_{key}"):
                onvif[key] = val(f"onvif_{key}")
        for key in ("username", "password"):
            if val(key):
                onvif[key] = val(key)
        source["onvif"] = onvif
    if val("transport"):
        source["transport"] = val("transport")
    cam: dict[str, Any] = {"id": val("id") or "", "source": source}
    area = {k: val(k) for k in ("county", "township", "village", "grid") if val(k)}
    if area:
        cam["area"] = area
    for key in ("name", "lat", "lon", "programme", "gb28181_id", "detect_fps"):
        if val(key) is not None:
            cam[key] = val(key)
    enabled = val("enabled")
    if enabled is not None:
        # An unknown spelling stays a string: the model (StrictBool) rejects it, naming
        # the row, instead of the camera being silently switched off.
        cam["enabled"] = ENABLED_VALUES.get(enabled.lower(), enabled)
    return cam


def read_text(path: Path) -> str:
    """The file's text in the first of :data:`ENCODINGS` that decodes it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportError_(path, [f"{path}: cannot read file: {exc.strerror}"]) from exc
    return decode_text(data, path)


def decode_text(data: bytes, path: Path) -> str:
    """``data`` (the contents of ``path``) decoded with the first of :data:`ENCODINGS`
    that decodes it."""
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ImportError_(
        path,
        [f"{path}: cannot decode the file: it is neither UTF-8 nor GBK/GB18030 "
         "(save it as 'CSV UTF-8' or in the GBK encoding)"],
    )  # fmt: skip


def _message(err: Any) -> str:
    """Pydantic's message, with the accepted spellings for a bad ``enabled``."""
    if tuple(err["loc"]) == ("enabled",):
        return f"{err['msg']}: use one of {', '.join(ENABLED_VALUES)}"
    return str(err["msg"])


def load_camera_file(path: Path, model: type[C]) -> list[C]:
    """Parse and validate a YAML or CSV camera list with ``model``; raises
    :class:`ImportError_`."""
    return parse_camera_text(read_text(path), path, model)


def load_camera_bytes(data: bytes, name: str, model: type[C]) -> list[C]:
    """The same for a file received rather than read (an upload through the API):
    ``name`` gives the format by its suffix (``.csv``, else YAML) and names the file in
    every problem."""
    path = Path(name)
    return parse_camera_text(decode_text(data, path), path, model)


def parse_camera_text(text: str, path: Path, model: type[C]) -> list[C]:
    """Parse and validate the text of a YAML or CSV camera list named ``path``."""
    problems: list[str] = []
    rows: list[tuple[str, dict[str, Any]]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        unknown = [c for c in (reader.fieldnames or []) if c and c.strip() not in CSV_COLUMNS]
        if unknown:
            problems.append(f"header: unknown column(s) {unknown}; known: {', '.join(CSV_COLUMNS)}")
        try:
            for n, raw in enumerate(reader, start=2):  # row 1 is the header
                clean = {(k or "").strip(): v for k, v in raw.items()}
                rows.append((f"row {n}", _row_from_csv(clean)))
        except csv.Error as exc:  # issue 21: e.g. a field over the 128 KiB limit
            raise ImportError_(path, [f"row {reader.line_num}: invalid CSV: {exc}"]) from None
    else:
        try:
            data = yaml.safe_load(text)
        except RecursionError:  # issue 21: a traceback before
            raise ImportError_(path, ["invalid YAML: nested too deeply"]) from None
        except yaml.YAMLError as exc:
            raise ImportError_(path, [f"invalid YAML: {exc}"]) from exc
        limits = [f"{path}: {field}: {reason}" for field, reason in limit_problems(data)]
        if limits:  # issue 21: alias bombs, NaN, control characters, huge zones
            raise ImportError_(path, limits)
        if isinstance(data, dict) and "cameras" in data:
            data = data["cameras"]
        if not isinstance(data, list):
            raise ImportError_(path, ["expected a list of cameras (or a 'cameras:' list)"])
        for n, item in enumerate(data):
            rows.append((f"cameras[{n}]", item if isinstance(item, dict) else {"id": item}))
    cameras: list[C] = []
    seen: set[str] = set()
    for where, row in rows:
        label = f"{where} (id={row.get('id') or '?'})"
        try:
            cam = model.model_validate(row)
        except ValidationError as exc:
            for err in exc.errors(include_input=False):
                problems.append(f"{path}: {label}: {_loc(err['loc'])}: {_message(err)}")
            continue
        if cam.id in seen:
            problems.append(f"{path}: {label}: id: duplicate camera id {cam.id!r}")
        seen.add(cam.id)
        cameras.append(cam)
    if problems:
        raise ImportError_(path, problems)
    return cameras
