"""Configuration models for alerts, dispatch targets, areas, departments, routing,
escalation and feedback."""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from pathlib import Path
from typing import Literal

from pydantic import Field, HttpUrl, field_validator, model_validator

from alerts.domain.incidents import DEFAULT_HOURLY_CAP, IncidentPolicy
from analytics.config import ALERT_TYPES
from core.area import Area, AreaLevel
from core.model import NAME_MAX, StrictModel
from core.schedule import ScheduleWindow
from core.vocabulary import Severity


def check_types(types: list[str] | None) -> list[str] | None:
    """Alert type names must exist: a misspelt type would silently never match."""
    unknown = sorted(set(types or []) - set(ALERT_TYPES))
    if unknown:
        raise ValueError(f"unknown alert type(s) {unknown}; known: {', '.join(ALERT_TYPES)}")
    return types


log = logging.getLogger(__name__)

TARGET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


GB_ALARM_TYPES_DOC = "GB/T 28181 video alarm types (alarm method 5)"


class MqttSettings(StrictModel):
    """An MQTT broker (kind ``mqtt``): QoS 1, one topic per area and alert type."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    topic_prefix: str = Field("shaobing/alerts", pattern=r"^[^+#]+$")
    username: str | None = None
    password: str | None = Field(None, repr=False)
    client_id: str | None = Field(None, description="default: shaobing-<target name>-<pid>")
    keepalive_s: int = Field(60, ge=5, le=3600)
    status_topic_prefix: str | None = Field(
        "shaobing/cameras",
        pattern=r"^[^+#]+$",
        description="each camera's state, retained, on <prefix>/<camera id> when it changes "
        "(null: not published)",
    )
    tls: bool = Field(False, description="connect with TLS (mqtts, usually port 8883)")
    ca_file: str | None = Field(None, description="TLS: CA certificate(s) of the broker (PEM)")
    cert_file: str | None = Field(None, description="TLS: client certificate (PEM), if asked")
    key_file: str | None = Field(None, description="TLS: client key (PEM)")
    tls_insecure: bool = Field(
        False, description="TLS: do not check the broker's host name (self-signed test brokers)"
    )

    @model_validator(mode="after")
    def _tls_files(self) -> MqttSettings:
        if (self.ca_file or self.cert_file) and not self.tls:
            raise ValueError("ca_file/cert_file given but tls is false: set tls: true")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ValueError(f"{name}: no such file: {path}")
        return self


class WvpRedisSettings(StrictModel):
    """A WVP-GB28181-pro platform reached through its Redis (kind ``wvp_redis``): WVP
    forwards each message on ``channel`` upward as a GB/T 28181 alarm."""

    url: str = Field("redis://127.0.0.1:6379/0", repr=False, pattern=r"^rediss?://")
    channel: str = Field("alarm_receive", min_length=1)
    gb_ids: dict[str, str] = Field(
        default_factory=dict,
        description="camera id → 20-digit GB/T 28181 channel id (default: the payload's "
        "camera.gb28181_id)",
    )
    alarm_types: dict[str, int] = Field(
        default_factory=dict, description="alert type → GB alarm type, over the built-in map"
    )
    default_alarm_type: int = Field(
        2, ge=1, le=99, description="for alert types without a mapping (2: motion detection)"
    )

    @field_validator("alarm_types")
    @classmethod
    def _known_types(cls, v: dict[str, int]) -> dict[str, int]:
        check_types(list(v))
        return v


class Gb28181UpSettings(StrictModel):
    """A superior GB/T 28181 platform (kind ``gb28181``): Shaobing registers to it as a
    lower platform (MD5 digest), keeps alive, and sends each new alert as MESSAGE Notify
    Alarm (AlarmMethod 5, video alarm; AlarmType from the alert type)."""

    server_id: str = Field(pattern=r"^\d{20}$", description="the superior's 20-digit SIP id")
    server_domain: str = Field(pattern=r"^\d{10}$", description="the superior's SIP domain")
    host: str = Field(description="the superior's SIP address")
    port: int = Field(5060, ge=1, le=65535)
    local_id: str = Field(pattern=r"^\d{20}$",
                          description="Shaobing's 20-digit id as the superior knows it")
    local_host: str = Field("127.0.0.1", description="address to send from (and advertise)")
    local_port: int = Field(0, ge=0, le=65535, description="0: any free port")
    username: str | None = Field(None, description="digest user; default: local_id")
    password: str = Field(repr=False, description="the REGISTER password the superior set")
    expires_s: int = Field(3600, ge=60, le=86400)
    keepalive_s: float = Field(60.0, gt=0, description="heartbeat period the superior expects")
    timezone: str = Field("Asia/Shanghai", description="of AlarmTime (local time, no zone)")
    channel_ids: dict[str, str] = Field(
        default_factory=dict, description="camera id → 20-digit channel id (default: the "
        "camera's gb28181_id, else default_channel_id)",
    )  # fmt: skip
    default_channel_id: str | None = Field(
        None, pattern=r"^\d{20}$", description="alarm channel for cameras without a GB id "
        "(none: such alerts are not sent up, a dead letter says why)",
    )  # fmt: skip
    alarm_types: dict[str, int] = Field(
        default_factory=dict, description="alert type → AlarmType, over the built-in map "
        "(line_crossing 5, intrusion 6, wrong_way 7, loitering/wandering 8, crowd 10, "
        "camera_fault 11)",
    )  # fmt: skip
    default_alarm_type: int = Field(
        2, ge=1, le=99, description="for alert types without a mapping (2: motion detection)"
    )
    priorities: dict[str, int] = Field(
        default_factory=lambda: {"critical": 1, "high": 2, "medium": 3, "low": 4},
        description="severity → AlarmPriority (1 is the most urgent)",
    )

    @field_validator("alarm_types")
    @classmethod
    def _known_types(cls, v: dict[str, int]) -> dict[str, int]:
        check_types(list(v))
        return v


ConnectorKind = Literal["webhook", "mqtt", "wvp_redis", "gb28181"]


class DispatchTarget(StrictModel):
    """Where alerts are delivered: an HTTP endpoint (``kind: webhook``, the governance
    centre's dispatch API), an MQTT broker, or a WVP-GB28181-pro platform via Redis."""

    name: str = Field(pattern=TARGET_NAME_RE.pattern)
    kind: ConnectorKind = "webhook"
    url: HttpUrl | None = Field(None, description="webhook: the endpoint (required)")
    secret: str | None = Field(
        None, repr=False, description="HMAC-SHA256 key for the X-Shaobing-Signature header"
    )
    unsigned: bool = Field(False, description="webhook: send without a signature (no secret)")
    template: str | None = Field(
        None, description="webhook: Jinja2 template of the body, rendered from the message"
    )
    mqtt: MqttSettings | None = None
    wvp: WvpRedisSettings | None = None
    gb28181: Gb28181UpSettings | None = None
    enabled: bool = True
    timeout_s: float = Field(5.0, gt=0, le=120)
    backoff_initial_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(300.0, gt=0)
    max_attempts: int = Field(50, ge=1, le=10_000, description="then the message is dead")
    concurrency: int = Field(2, ge=1, le=32, description="messages in flight at once")
    headers: dict[str, str] = Field(default_factory=dict)
    types: list[str] | None = Field(None, description="only these alert types; default: all")
    _types = field_validator("types")(lambda v: check_types(v))
    scope: Literal["all", "routed"] = Field(
        "all",
        description="all: every alert (of its types); routed: only alerts a routing rule or "
        "a department sends it",
    )

    @field_validator("template")
    @classmethod
    def _template_parses(cls, v: str | None) -> str | None:
        """A template that does not compile is a config error, not a dead letter later."""
        if v is not None:
            from jinja2 import TemplateSyntaxError
            from jinja2.sandbox import SandboxedEnvironment

            try:
                SandboxedEnvironment().parse(v)
            except TemplateSyntaxError as exc:
                raise ValueError(f"template: line {exc.lineno}: {exc.message}") from None
        return v

    @model_validator(mode="after")
    def _kind_settings(self) -> DispatchTarget:
        if self.kind == "webhook":
            if self.url is None:
                raise ValueError(f"dispatch target {self.name!r}: webhook needs url")
            if not self.secret and not self.unsigned:
                # An empty secret must not silently send unsigned alerts.
                raise ValueError(
                    f"dispatch target {self.name!r} has no secret: set secret (signs each "
                    "request), or unsigned: true if the receiver cannot check signatures"
                )
        elif self.kind == "mqtt" and self.mqtt is None:
            self.mqtt = MqttSettings()
        elif self.kind == "wvp_redis" and self.wvp is None:
            self.wvp = WvpRedisSettings()
        elif self.kind == "gb28181" and self.gb28181 is None:
            raise ValueError(f"dispatch target {self.name!r}: kind gb28181 needs gb28181 "
                             "settings (server_id, server_domain, host, local_id, password)")
        if self.secret and self.unsigned:
            raise ValueError(f"dispatch target {self.name!r}: both secret and unsigned set")
        return self


class IncidentsConfig(StrictModel):
    """Repeated alerts of one camera × rule × zone gathered into one incident (合并告警)."""

    enabled: bool = Field(True, description="gather repeated alerts into incidents")
    gap_s: dict[str, float] = Field(
        default_factory=dict,
        description="per rule type: a pause longer than this (seconds) ends the incident; "
        "defaults: intrusion, pedestrian_on_road, line_crossing, wrong_way 60; loitering, "
        "wandering, person_down 120; stopped_vehicle, crowd 300; congestion 600; "
        "camera_fault 1800; any other type 60",
    )  # fmt: skip
    hourly_cap: int | None = Field(
        DEFAULT_HOURLY_CAP, ge=1,
        description="incidents a rule may open on a camera per hour; beyond it its alerts "
        "are counted in the latest incident, which is marked suppressed (null: no cap)",
    )  # fmt: skip
    hourly_caps: dict[str, int | None] = Field(
        default_factory=dict, description="per rule type, overriding hourly_cap"
    )
    update_interval_s: float = Field(
        60.0, ge=0, description="at most one 'repeated' message per incident in this time"
    )

    @field_validator("gap_s")
    @classmethod
    def _positive_gaps(cls, value: dict[str, float]) -> dict[str, float]:
        check_types(list(value))
        for rule_type, gap in value.items():
            if gap <= 0:
                raise ValueError(f"{rule_type}: must be > 0 seconds (got {gap:g})")
        return value

    @field_validator("hourly_caps")
    @classmethod
    def _known_types(cls, value: dict[str, int | None]) -> dict[str, int | None]:
        check_types(list(value))
        for rule_type, cap in value.items():
            if cap is not None and cap < 1:
                raise ValueError(f"{rule_type}: must be ≥ 1 or null (got {cap})")
        return value

    def policy(self) -> IncidentPolicy:
        return IncidentPolicy(self.enabled, dict(self.gap_s), self.hourly_cap,
                              dict(self.hourly_caps), self.update_interval_s)  # fmt: skip


class AlertsConfig(StrictModel):
    incidents: IncidentsConfig = Field(default_factory=IncidentsConfig)
    cooldown_s: float = Field(
        60.0, ge=0, description="per (camera, rule, track): no second alert within this time"
    )
    snapshot_dir: str | None = Field(
        None, description="the evidence directory (storage.evidence.kind: directory; in "
        "distributed mode shared by every host); default: <data_dir>/snapshots",
    )  # fmt: skip
    jpeg_quality: int = Field(85, ge=10, le=100)
    video_quality: bool = Field(
        True,
        description="diagnose every camera's picture (black, frozen, blur, covered, turned, "
        "colour cast, noise) with the camera_fault defaults where it has no camera_fault rule",
    )
    camera_offline_s: float | None = Field(
        120.0, gt=0, description="alert camera_fault when a camera stays offline this long"
    )
    clips_enabled: bool = Field(True, description="save an MP4 clip around each alert")
    clip_pre_s: float = Field(5.0, ge=0, le=60, description="clip seconds before the alert")
    clip_post_s: float = Field(5.0, ge=0, le=60, description="clip seconds after the alert")
    clip_buffer_s: float = Field(
        30.0, gt=0, le=300, description="seconds of encoded video kept per camera for clips"
    )
    clip_buffer_mb: float = Field(16.0, gt=0, le=1024, description="memory cap per camera")
    retention_days: float = Field(
        90.0, gt=0, description="delete evidence files older than this (never an open alert's)"
    )
    evidence_quota_gb: float | None = Field(
        None, gt=0, description="delete the oldest evidence beyond this size (open alerts' kept)"
    )


ID_RE = TARGET_NAME_RE


class AreaNode(Area):
    """One node of the area tree: the path from the county down, its GB/T 2260 civil
    code where known, and a display name (default: the last part of the path)."""

    code: str | None = Field(
        None,
        pattern=r"^\d{6}(\d{3}(\d{3})?)?$",
        description="GB/T 2260 code (6 digits; 9 or 12 below the county)",
    )
    name: str | None = Field(None, max_length=NAME_MAX)

    def area(self) -> Area:
        return Area(county=self.county, township=self.township, village=self.village,
                    grid=self.grid)  # fmt: skip


DepartmentKind = Literal[
    "police",
    "traffic_police",
    "emergency",
    "water",
    "urban_management",
    "grid",
    "centre",
    "other",
]


class DepartmentConfig(StrictModel):
    """A department that answers alerts, the areas it serves and how it is reached."""

    id: str = Field(pattern=ID_RE.pattern)
    name: str = Field(min_length=1, max_length=NAME_MAX)
    kind: DepartmentKind = "other"
    level: AreaLevel = Field(description="the tier it works at: county, township, village, grid")
    areas: list[Area] = Field(default_factory=list, description="default: the whole county")
    targets: list[str] = Field(default_factory=list, description="dispatch targets reaching it")


class RoutingRuleConfig(StrictModel):
    """event type × area × severity × time window → departments and dispatch targets."""

    name: str = Field(min_length=1, max_length=NAME_MAX)
    enabled: bool = True
    types: list[str] | None = Field(None, description="alert types; default: all")
    _types = field_validator("types")(lambda v: check_types(v))
    area: Area = Field(default_factory=Area, description="default: everywhere")
    min_severity: Severity = "info"
    schedule: list[ScheduleWindow] | None = Field(None, description="default: always")
    departments: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)
    ack_deadline_s: float | None = Field(
        None, gt=0, description="escalate when not acknowledged within this time"
    )
    resolve_deadline_s: float | None = Field(
        None, gt=0, description="escalate when not resolved within this time (after acknowledging)"
    )


class EscalationConfig(StrictModel):
    check_interval_s: float = Field(1.0, gt=0, le=60, description="how often deadlines are checked")
    ack_deadline_s: float | None = Field(
        None, gt=0, description="default for alerts no routing rule sets one (null: none)"
    )
    resolve_deadline_s: float | None = Field(None, gt=0)


class FeedbackSource(StrictModel):
    """A platform allowed to move alerts through the signed feedback callback."""

    name: str = Field(pattern=ID_RE.pattern)
    secret: str = Field(min_length=16, repr=False)
    # issue 21: a source moves only the alerts of the areas / departments it serves.
    areas: list[Area] = Field(
        default_factory=list,
        description="the alerts of these areas only (with departments: either); "
        "both empty: every alert (the centre's own platform)",
    )
    departments: list[str] = Field(
        default_factory=list, description="the alerts routed to these departments only"
    )

    def serves(self, area: Area, departments: Collection[str]) -> bool:
        """Whether this source may move an alert placed in ``area`` routed to ``departments``."""
        if not self.areas and not self.departments:
            return True
        return any(a.contains(area) for a in self.areas) or bool(
            set(self.departments) & set(departments)
        )


def check_routing_references(
    departments: list[DepartmentConfig],
    rules: list[RoutingRuleConfig],
    targets: set[str] | None,
) -> None:
    """Unique ids and names; every department and target named exists."""
    dep_ids = [d.id for d in departments]
    dupes = sorted({d for d in dep_ids if dep_ids.count(d) > 1})
    if dupes:
        raise ValueError(f"duplicate department id(s): {dupes}")
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate routing rule name(s): {dupes}")
    for rule in rules:
        unknown = sorted(set(rule.departments) - set(dep_ids))
        if unknown:
            raise ValueError(f"routing rule {rule.name!r} names unknown department(s) {unknown}")
    if targets is None:
        return
    for dep in departments:
        unknown = sorted(set(dep.targets) - targets)
        if unknown:
            raise ValueError(f"department {dep.id!r} names unknown dispatch target(s) {unknown}")
    for rule in rules:
        unknown = sorted(set(rule.targets) - targets)
        if unknown:
            raise ValueError(
                f"routing rule {rule.name!r} names unknown dispatch target(s) {unknown}"
            )
