"""The hub's configuration: one YAML file, validated by one pydantic model per concern.

Secrets can come from the environment instead of the file:

* ``${NAME}`` anywhere in a string value is replaced by the environment
  variable ``NAME`` (``${NAME:-default}`` gives a default); an unset variable
  without a default is an error naming the field.
* ``SHAOBING_CAMERA_<ID>_PASSWORD`` overrides a camera's password (URL or ONVIF
  source) and ``SHAOBING_DISPATCH_<NAME>_SECRET`` a dispatch target's HMAC key;
  ``<ID>``/``<NAME>`` are upper-cased with ``-`` and ``.`` as ``_``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from alerts.config import (
    AlertsConfig,
    AreaNode,
    DepartmentConfig,
    DispatchTarget,
    EscalationConfig,
    FeedbackSource,
    RoutingRuleConfig,
    check_routing_references,
)
from analytics.config import CameraConfig, DetectorConfig
from camera_registry.config import IngestConfig
from camera_registry.patrol import PatrolConfig
from core.limits import limit_problems
from core.model import StrictModel
from core.storage import DirectoryStorageConfig, EvidenceStorageConfig
from core.storage import config_problems as storage_problems
from gb28181.config import SipConfig
from linkage.config import LinkageConfig  # issue 27: linkage rules, speakers, PTZ
from recording.config import RecordingConfig  # recording/ (issue 24)
from shaobing.basemap import MapConfig, MapError, load_outlines, open_tiles
from tracks.config import TracksConfig

DEFAULT_CONFIG = Path(__file__).parent / "defaults" / "default.yaml"


class StorageConfig(StrictModel):
    database_url: str | None = Field(None, description="default: sqlite:///<data_dir>/shaobing.db")
    evidence: EvidenceStorageConfig = Field(
        default_factory=DirectoryStorageConfig,
        description="where evidence files live (snapshots, clips, track thumbnails): "
        "kind: directory (alerts.snapshot_dir; shared by every host in distributed mode) or "
        "kind: s3 (an S3-compatible bucket; the s3 extra) — see docs/deployment.md",
    )


class ConsoleConfig(StrictModel):
    """The web console served at ``/`` (what it shows is set here; who may do what by roles)."""

    enabled: StrictBool = True
    title: str = Field("哨兵 · 综治视频研判平台", max_length=100)
    tile_url: str | None = Field(
        None,
        description="map base layer, a Leaflet URL template on the video network such as "
        "'http://10.1.2.3/tiles/{z}/{x}/{y}.png' or '/tiles/{z}/{x}/{y}.png'; none: the "
        "area outlines and cameras on a plain background (nothing is fetched from outside)",
    )
    tile_attribution: str = Field("", max_length=200)
    map_center: tuple[float, float] | None = Field(
        None, description="[lat, lon] the map opens on; default: the cameras' centre"
    )
    map_zoom: int = Field(13, ge=1, le=20)


class ApiConfig(StrictModel):
    enabled: StrictBool = True
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8080, ge=0, lt=65536)
    public_url: str | None = Field(
        None, description="base URL receivers use to fetch evidence; default http://host:port"
    )
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "::1", "[::1]"],
        description="Host header values the API answers to (DNS-rebinding defence); the host "
        "of public_url is added. '*' allows any (not recommended)",
    )
    token_ttl_s: float = Field(12 * 3600, gt=0, description="lifetime of a login token")
    metrics_public: StrictBool = Field(
        True,
        description="serve /metrics without login (for an internal Prometheus; it holds counts "
        "and camera ids only); false: an API key or login with audit:read is needed",
    )
    link_ttl_s: float = Field(
        7 * 24 * 3600, gt=0, description="lifetime of the signed evidence links sent to targets"
    )
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    live_max_streams: int = Field(
        256, ge=1, le=10000,
        description="live video streams (wall tiles, main or sub stream) this API process "
        "serves at once; beyond it a tile says 已达上限 (limit reached)",
    )  # fmt: skip
    max_body_kb: int = Field(  # issue 21: a 256 MiB POST is refused, not read whole
        1024, ge=16, le=1024 * 1024,
        description="largest request body (KiB) of the API routes; login and feedback take "
        "16 KiB at most; larger bodies are answered 413",
    )  # fmt: skip
    link_secret: str | None = Field(
        None, repr=False,
        description="key signing evidence links (default: a random key in <data_dir>/link.key; "
        "set the same one on every API node in distributed mode)",
    )  # fmt: skip

    def hosts(self) -> list[str]:
        """allowed_hosts plus the listening address and public_url's host."""
        from urllib.parse import urlsplit

        hosts = list(self.allowed_hosts)
        if self.host not in ("0.0.0.0", "::"):
            hosts.append(self.host)
        if self.public_url:
            public = urlsplit(self.public_url).hostname
            if public:
                hosts.append(public)
        return sorted(set(hosts))


class LoggingConfig(StrictModel):
    """The log: always to standard error (the systemd journal under systemd); also to a
    file when ``file`` is set, rotated by size with a cap on the space it takes."""

    level: str = "INFO"
    file: str | None = Field(
        None,
        description="also write the log here (relative: to the config's folder), e.g. "
        "/var/log/shaobing/shaobing.log; a distributed role adds its name "
        "(shaobing-api.log, shaobing-worker-w1.log): one file per process",
    )
    max_mb: int = Field(20, ge=1, le=10_000, description="rotate the file at this size (MiB)")
    keep: int = Field(
        10, ge=1, le=1000, description="old files kept (.1 … .N); at most (keep + 1) × max_mb"
    )


class BusConfig(StrictModel):
    """Event bus and live state: ``memory`` (one process, the default) or ``redis``
    (distributed mode: roles on several processes or hosts; see docs/deployment.md)."""

    kind: Literal["memory", "redis"] = "memory"
    url: str = Field("redis://127.0.0.1:6379/0", description="Redis (kind: redis)")
    prefix: str = Field("shaobing", pattern=r"^[A-Za-z0-9_.-]+$", description="key prefix")
    lease_s: float = Field(
        10.0, ge=2, le=300, description="camera lease: a dead worker's cameras resume "
        "elsewhere within this time",
    )  # fmt: skip
    claim_idle_s: float = Field(
        30.0, gt=0, description="events pending this long at a dead consumer are taken over"
    )
    maxlen: int = Field(100_000, ge=100, description="acknowledged events kept in the stream")
    frame_interval_s: float = Field(
        2.0, gt=0, description="how often a worker stores each camera's latest frame (JPEG)"
    )
    media_listen: str = Field(
        "127.0.0.1:0",
        pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$",
        description="where a worker serves the live video of its cameras to the API nodes "
        "(host:port; port 0: any free port). Several hosts: an address the API nodes reach, "
        "e.g. '0.0.0.0:8091' with media_advertise",
    )
    media_advertise: str | None = Field(
        None,
        description="how API nodes reach this worker's live video (host or host:port); "
        "default: the media_listen host (this host's name when it listens on all addresses)",
    )


class HubConfig(StrictModel):
    data_dir: str = "./data"
    timezone: str = Field(
        "Asia/Shanghai",
        description="the hub's time zone: rule schedules, statistics, exports, console times",
    )
    storage: StorageConfig = Field(default_factory=StorageConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    bus: BusConfig = Field(default_factory=BusConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    dispatch: list[DispatchTarget] = Field(default_factory=list)
    areas: list[AreaNode] = Field(
        default_factory=list, description="the area tree (county → township → village → grid)"
    )
    departments: list[DepartmentConfig] = Field(default_factory=list)
    routing: list[RoutingRuleConfig] = Field(
        default_factory=list, description="routing rules from the file (more can be added by API)"
    )
    escalation: EscalationConfig = Field(default_factory=EscalationConfig)
    tracks: TracksConfig = Field(
        default_factory=TracksConfig, description="the investigator search index of tracks"
    )
    patrol: PatrolConfig = Field(
        default_factory=PatrolConfig,
        description="the patrol (轮巡) schedule of the cameras in analysis: patrol",
    )
    feedback: list[FeedbackSource] = Field(
        default_factory=list, description="platforms allowed to call the signed feedback endpoint"
    )
    cameras: list[CameraConfig] = Field(default_factory=list)
    recording: RecordingConfig = Field(  # recording/ (issue 24)
        default_factory=RecordingConfig,
        description="where camera recordings (录像) are written and how long they are kept",
    )
    linkage: LinkageConfig = Field(  # issue 27
        default_factory=LinkageConfig, description="linkage: PTZ presets, voice warnings, pop-ups"
    )
    map: MapConfig = Field(
        default_factory=MapConfig,
        description="the console's offline base map: MBTiles or a tile folder, area outlines "
        "as GeoJSON (served by the hub; docs/console.md)",
    )
    sip: SipConfig = Field(
        default_factory=SipConfig,
        description="GB/T 28181: the hub as a platform devices register to (docs/integrators.md)",
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (e.g. Asia/Shanghai)") from None
        return v

    @model_validator(mode="after")
    def _unique(self) -> HubConfig:
        for what, names in (
            ("camera id", [c.id for c in self.cameras]),
            ("dispatch target name", [d.name for d in self.dispatch]),
            ("feedback source name", [f.name for f in self.feedback]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"duplicate {what}(s): {dupes}")
        check_routing_references(self.departments, self.routing, {d.name for d in self.dispatch})
        return self


@dataclass
class LoadedConfig:
    """A validated config with the paths it implies resolved."""

    config: HubConfig
    path: Path | None
    base_dir: Path

    def resolve(self, value: str | None, default: Path) -> Path:
        if value is None:
            return default
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    @property
    def data_dir(self) -> Path:
        return self.resolve(self.config.data_dir, self.base_dir / "data")

    @property
    def database_url(self) -> str:
        return self.config.storage.database_url or f"sqlite:///{self.data_dir / 'shaobing.db'}"

    @property
    def snapshot_dir(self) -> Path:
        return self.resolve(self.config.alerts.snapshot_dir, self.data_dir / "snapshots")

    @property
    def recording_dir(self) -> Path:  # recording/ (issue 24)
        return self.resolve(self.config.recording.dir, self.data_dir / "recordings")

    def log_file(self, role: str | None = None) -> Path | None:
        """``logging.file`` resolved; a distributed role's own file (``name-<role>.log``)."""
        if self.config.logging.file is None:
            return None
        path = self.resolve(self.config.logging.file, self.data_dir)
        return path if role is None else path.with_name(f"{path.stem}-{role}{path.suffix}")

    @property
    def backup_dir(self) -> Path:
        """Where the database is copied before a migration (shaobing/db.py)."""
        return self.data_dir / "backup"

    @property
    def secret_key_path(self) -> Path:
        """The key file encrypting stored camera passwords (unless SHAOBING_SECRET_KEY)."""
        return self.data_dir / "secret.key"

    @property
    def models_dir(self) -> Path:
        return self.resolve(self.config.detector.models_dir, self.data_dir / "models")

    @property
    def mirror_dir(self) -> Path | None:
        mirror = self.config.detector.mirror_dir
        return None if mirror is None else self.resolve(mirror, self.base_dir)

    def source_url(self, cam: CameraConfig) -> str | None:
        """A file source's URL with a relative path resolved against the config file."""
        url = cam.source.url
        if url is None:
            return None
        if url.startswith("file://"):
            path = url[len("file://") :]
            if not path.startswith("/"):
                return "file://" + str((self.base_dir / path).resolve())
        elif "://" not in url:
            return "file://" + str((self.base_dir / url).resolve())
        return url


@dataclass
class ConfigProblem:
    file: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.reason}"


class ConfigError(ValueError):
    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(node: Any, path: str, file: str, problems: list[ConfigProblem]) -> Any:
    if isinstance(node, dict):
        return {k: _expand_env(v, _join(path, k), file, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, f"{path}[{i}]", file, problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def repl(m: re.Match[str]) -> str:
            value = os.environ.get(m.group(1), m.group(2))
            if value is None:
                problems.append(
                    ConfigProblem(file, path, f"environment variable {m.group(1)} is not set")
                )
                return ""
            return value

        return _ENV_RE.sub(repl, node)
    return node


def _env_key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def _apply_secret_overrides(data: dict[str, Any]) -> None:
    for cam in data.get("cameras") or []:
        if not isinstance(cam, dict) or not isinstance(cam.get("id"), str):
            continue
        secret = os.environ.get(f"SHAOBING_CAMERA_{_env_key(cam['id'])}_PASSWORD")
        source = cam.get("source")
        if secret is None or not isinstance(source, dict):
            continue
        if isinstance(source.get("onvif"), dict):
            source["onvif"]["password"] = secret
        else:
            source["password"] = secret
    for target in data.get("dispatch") or []:
        if isinstance(target, dict) and isinstance(target.get("name"), str):
            secret = os.environ.get(f"SHAOBING_DISPATCH_{_env_key(target['name'])}_SECRET")
            if secret is not None:
                target["secret"] = secret


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _field_path(loc: tuple[Any, ...], data: Any) -> str:
    """Pydantic's error location as ``cameras[0](id=cam-1).source.url``.

    Tagged-union tags (the rule ``type``) that pydantic inserts are dropped.
    """
    out = ""
    node = data
    for part in loc:
        tags = (node.get("type"), node.get("kind")) if isinstance(node, dict) else ()
        if isinstance(node, dict) and part not in node and part in tags:
            continue  # a tagged-union tag ('loitering', storage 's3'): not a key in the file
        out = _join(out, part)
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            if isinstance(node, dict):
                for key in ("id", "name"):
                    if isinstance(node.get(key), str):
                        out += f"({key}={node[key]})"
                        break
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            node = None
    return out or "(top level)"


def parse_config(data: Any, file: str, base_dir: Path, path: Path | None = None) -> LoadedConfig:
    """Validate already-parsed YAML data; raises :class:`ConfigError` with every problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(file, "(top level)", "expected a mapping of settings")])
    # issue 21: bombs, deep nesting, NaN, control characters, huge zones refused first.
    limits = [ConfigProblem(file, field, reason) for field, reason in limit_problems(data)]
    if limits:
        raise ConfigError(limits)
    problems: list[ConfigProblem] = []
    data = _expand_env(data, "", file, problems)
    _apply_secret_overrides(data)
    try:
        config = HubConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            reason = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                reason = "unknown key (misspelt?)"
            problems.append(ConfigProblem(file, _field_path(err["loc"], data), reason))
        raise ConfigError(problems) from None
    for field, reason in storage_problems(config.storage.evidence):
        problems.append(ConfigProblem(file, f"storage.evidence.{field}", reason))
    loaded = LoadedConfig(config, path, base_dir)
    if loaded.data_dir.exists() and not loaded.data_dir.is_dir():  # issue 21
        problems.append(ConfigProblem(file, "data_dir", f"{loaded.data_dir} is a file, not a "
                                                        "folder"))  # fmt: skip
    problems += map_problems(loaded, file)
    if problems:
        raise ConfigError(problems)
    return loaded


def map_problems(loaded: LoadedConfig, file: str) -> list[ConfigProblem]:
    """The base map's files opened and checked (map.tiles, map.areas)."""
    cfg = loaded.config.map
    out = []
    if cfg.tiles and loaded.config.api.console.tile_url:
        reason = "give the base map once: map.tiles (served by the hub) or api.console.tile_url"
        out.append(ConfigProblem(file, "map.tiles", reason))
    for field, check in (("tiles", open_tiles), ("areas", load_outlines)):
        value = getattr(cfg, field)
        if value:
            try:
                check(loaded.resolve(value, loaded.base_dir))
            except MapError as exc:
                out.append(ConfigProblem(file, f"map.{field}", str(exc)))
    return out


def load_config(path: str | Path | None) -> LoadedConfig:
    """Load and validate a config file (the embedded default when ``path`` is None)."""
    file_path = Path(path) if path is not None else DEFAULT_CONFIG
    label = str(file_path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(label, "(file)", f"cannot read: {exc.strerror}")]
        ) from None
    try:
        data = yaml.safe_load(text)
    except RecursionError:  # issue 21: a deeply nested file is an error, not a traceback
        raise ConfigError([ConfigProblem(label, "(file)", "invalid YAML: nested too deeply")]) \
            from None  # fmt: skip
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem(label, where, f"invalid YAML: {reason}")]) from None
    base = file_path.resolve().parent if path is not None else Path.cwd()
    return parse_config(data, label, base, file_path)
