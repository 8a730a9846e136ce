"""Response schemas of the REST API (separate from the storage models)."""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import BaseModel, Field

from accounts.domain import Role
from accounts.store import UserRecord
from alerts.domain.model import Action, Alert, Severity, Status
from alerts.payload import alert_payload
from analytics.config import RuleConfig
from core.area import Area
from core.schedule import ScheduleWindow
from core.vocabulary import AlertType, CameraState

__all__ = ["Area"]


class CameraStatusOut(BaseModel):
    state: CameraState
    since: float
    last_frame_at: float | None = None
    input_fps: float = 0.0
    analysed_fps: float = 0.0
    reconnects: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    frames_decoded: int = 0
    frames_analysed: int = 0
    frames_gated: int = Field(0, description="analysed without detection (no motion)")
    frames_dropped: int = 0
    decode_errors: int = 0
    resolution: tuple[int, int] | None = None
    codec: str | None = None
    faults: list[str] = Field(
        default_factory=list,
        description="picture faults holding now: black, overexposed, frozen, blur, occlusion, "
        "colour_cast, scene_change, noise",
    )
    ring_bytes: int = Field(0, description="encoded video held for evidence clips (bytes)")
    ring_seconds: float = Field(0.0, description="seconds of video held for evidence clips")
    live_viewers: int = Field(0, description="live-view streams open on this camera")
    patrol: bool = Field(False, description="visited in turn (轮巡): the state is the last visit's")
    visits: int = Field(0, description="patrol visits since the hub started")
    last_visit_at: float | None = Field(None, description="end of the last patrol visit")
    next_visit_at: float | None = Field(None, description="when the next patrol visit is due")


class CameraOut(BaseModel):
    id: str
    name: str
    enabled: bool
    programme: str
    area: Area
    lat: float | None = None
    lon: float | None = None
    gb28181_id: str | None = None
    source: str = Field(description="source description with credentials masked")
    stream_url: str | None = Field(None, description="stream URL in use, credentials masked")
    detect_fps: float
    origin: str
    zones: list[str] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)
    counters: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="running counts by rule since start (line_crossing: a_to_b, b_to_a)",
    )
    status: CameraStatusOut | None = None


class CameraAreaOut(BaseModel):
    """A place of the camera tree (county, township or village) with its camera counts."""

    path: str = Field(
        description="the area path the camera list's `area` takes: 示例县/城关镇 "
        "('' for cameras registered without a county)"
    )
    county: str | None = None
    township: str | None = None
    village: str | None = None
    total: int = Field(description="cameras here and in the places below")
    online: int = Field(description="of them, online now")
    direct: int = Field(
        description="cameras registered at this place itself, not below "
        "(the camera list with `exact=true`)"
    )


class Evidence(BaseModel):
    url: str | None = None
    sha256: str | None = None
    start: float | None = None  # clips: first and last moment (epoch seconds)
    end: float | None = None


class Delivery(BaseModel):
    target: str
    state: str
    attempts: int
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: float | None = None
    next_attempt_at: float | None = None
    event: str = "alert.created"
    sequence: int = 1


class Handling(BaseModel):
    department_id: str | None = Field(None, description="department handling it now")
    assignee: str | None = Field(None, description="person handling it, if dispatched to one")
    departments: list[str] = Field(
        default_factory=list, description="every department it was routed/dispatched/escalated to"
    )
    tier: str = Field(description="dispatch tier: grid, township or county")
    escalation_level: int = 0
    acknowledged_at: float | None = None
    resolved_at: float | None = None
    due_at: float | None = Field(None, description="when it escalates if nobody acts")
    false_alarm_reason: str | None = None


class HistoryOut(BaseModel):
    at: float
    actor: str
    action: str
    from_status: str | None = None
    to_status: str
    note: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


class AlertCamera(BaseModel):
    id: str
    name: str
    gb28181_id: str | None = Field(None, description="GB/T 28181 channel id, if it has one")


class Trace(BaseModel):
    """Why the rule fired: what it measured against its threshold."""

    measured: float
    threshold: float
    unit: str
    explanation: str = Field(description="the rule's own text (English)")
    explanation_zh: str = Field("", description="the same in Chinese, from measured and threshold")
    details: dict[str, Any] = Field(
        default_factory=dict, description="rule-specific (e.g. fault kind, crossing direction)"
    )


class IncidentInfo(BaseModel):
    """The incident this alert opened: repeated alerts of its camera × rule × zone."""

    count: int = Field(description="alerts gathered (1: this one only)")
    first_at: float
    last_at: float
    last_alert_id: str | None = None
    suppressed: bool = Field(
        description="the rule passed its hourly cap on this camera: later alerts are "
        "counted here without notifications"
    )


class OccurrenceOut(BaseModel):
    """One alert inside an incident (the first is the incident's own alert)."""

    alert_id: str
    at: float
    track_ids: list[int]
    measured: float
    explanation: str
    explanation_zh: str = ""
    confidence: float
    suppressed: bool
    snapshot_url: str | None = None
    annotated_url: str | None = None
    clip_url: str | None = None


class AlertOut(BaseModel):
    id: str
    type: AlertType
    rule: str
    severity: Severity
    status: Status
    camera: AlertCamera
    area: Area
    created_at: float
    started_at: float
    updated_at: float
    object_class: str
    object_label: str = Field("", description="the class in Chinese (行人, 轿车…)")
    track_ids: list[int]
    zone: str
    trace: Trace
    confidence: float
    box: list[float] | None = None
    evidence: dict[str, Evidence]
    incident: IncidentInfo
    handling: Handling
    occurrences: list[OccurrenceOut] | None = Field(
        None, description="detail only: the alerts of the incident, oldest first"
    )
    allowed_actions: list[Action] = Field(
        default_factory=list, description="lifecycle actions valid in this state"
    )
    history: list[HistoryOut] | None = None
    deliveries: list[Delivery] | None = None


class ActionIn(BaseModel):
    """A lifecycle action on an alert (受理 acknowledge, 分流 dispatch, 处置 start,
    办结 resolve, 误报 false_alarm, reopen)."""

    action: Action
    note: str = Field("", max_length=2000)
    department_id: str | None = Field(None, description="dispatch: the department")
    assignee: str | None = Field(None, max_length=64, description="dispatch: a person, optional")
    reason: str | None = Field(
        None, max_length=2000, description="false_alarm: why (used to tune the rule)"
    )


class FeedbackIn(BaseModel):
    """A signed status report from the dispatch platform or a department."""

    message_id: str = Field(min_length=1, max_length=128, description="unique per message")
    alert_id: str = Field(min_length=1, max_length=36)
    status: str = Field(
        description="accepted|受理, in_progress|处置中, resolved|办结, false_alarm|误报"
    )
    note: str = Field("", max_length=2000)
    actor: str = Field("", max_length=40, description="who reported it (name or staff id)")
    reason: str | None = Field(None, max_length=2000, description="false_alarm: why")


class FeedbackOut(BaseModel):
    alert_id: str
    action: str
    status: str
    duplicate: bool = False


class AreaOut(BaseModel):
    county: str | None = None
    township: str | None = None
    village: str | None = None
    grid: str | None = None
    level: str | None = None
    code: str | None = None
    name: str
    origin: Literal["config", "api"] = Field(
        "config", description="config: the config file's areas (read-only); api: the console's"
    )


class DepartmentOut(BaseModel):
    id: str
    name: str
    kind: str
    level: str
    areas: list[Area]
    targets: list[str]


class RoutingRuleOut(BaseModel):
    name: str
    origin: Literal["config", "api"]
    enabled: bool
    types: list[str] | None = None
    area: Area
    min_severity: Severity
    schedule: list[ScheduleWindow] | None = None
    departments: list[str]
    targets: list[str]
    ack_deadline_s: float | None = None
    resolve_deadline_s: float | None = None


class AlertPage(BaseModel):
    items: list[AlertOut]
    total: int
    limit: int
    offset: int


class DiskOut(BaseModel):
    path: str
    free_bytes: int
    total_bytes: int
    floor_bytes: int = Field(description="under this free space the path is low (degraded)")
    low: bool


class HealthReport(BaseModel):
    """What a composition reports of itself (``/healthz`` adds the version)."""

    status: Literal["ok", "degraded"] = Field(
        description="degraded: not started, a service thread has died, a disk is low or "
        "events wait in memory (see reasons)"
    )
    cameras: dict[str, int]
    dispatch_pending: int
    dispatch_dead: int = Field(
        0, description="deliveries given up (dead letters): see GET /api/deliveries?state=dead"
    )
    events_pending: int = Field(0, description="events not yet stored as alerts")
    threads: dict[str, bool] = Field(
        default_factory=dict, description="the hub's service threads: alive or not"
    )
    reasons: list[str] = Field(
        default_factory=list,
        description="why the status is degraded: a disk under its free-space floor, events "
        "held in memory because the event spool's disk refuses writes",
    )
    disks: dict[str, DiskOut] = Field(
        default_factory=dict, description="free space of the watched paths (data_dir, evidence)"
    )
    sip: dict[str, Any] | None = Field(
        None, description="the GB/T 28181 SIP server (sip.enabled): ports, devices, streams"
    )
    recording: dict[str, Any] | None = Field(  # recording/ (issue 24)
        None, description="the recorder: storage writable or not, segments per camera"
    )


class Health(HealthReport):
    version: str


class MediaStats(BaseModel):
    """What a camera's video costs in memory where it is read."""

    ring_bytes: int = Field(0, description="encoded video held for evidence clips (bytes)")
    ring_seconds: float = Field(0.0, description="seconds of video held for evidence clips")
    live_viewers: int = Field(0, description="live-view streams open on this camera")


class OverlayBox(BaseModel):
    x1: float
    y1: float
    x2: float
    y2: float
    cls: str
    track_id: int
    score: float


class OverlayZone(BaseModel):
    name: str
    kind: str
    points: list[tuple[float, float]]


class Overlay(BaseModel):
    width: int
    height: int
    ts: float
    boxes: list[OverlayBox]
    zones: list[OverlayZone]


def alert_out(alert: Alert) -> AlertOut:
    """An alert for the API, with the actions its state allows."""
    out = AlertOut.model_validate(alert_payload(alert))
    out.allowed_actions = alert.allowed_actions()
    return out


class UserInfo(BaseModel):
    username: str
    role: Role
    area: Area = Field(description="scope; empty: the whole county")
    department_id: str | None = None
    display_name: str = ""


def user_info(user: UserRecord) -> UserInfo:
    return UserInfo(
        username=user.username,
        role=cast(Role, user.role),  # checked on write (and again by pydantic here)
        area=user.area(),
        department_id=user.department_id,
        display_name=user.display_name,
    )
