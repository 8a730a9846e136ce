"""Situation analysis (研判): alert figures by area, type, hour and week, the cameras
and rules with most false alarms, time to acknowledge and resolve, as JSON or as a
workbook for the weekly meeting; camera health (online rate, faulty cameras)."""

from __future__ import annotations

import datetime as dt
import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from accounts.domain import Principal, sees_area
from alerts import stats
from alerts.labels import TYPE_ZH
from api.access import alert_scope, record_area
from api.deps import AlertReader, CameraReader, LiveDep, ServicesDep, SessionDep
from api.ports import HubServices
from camera_registry.store import list_cameras
from core import xlsx
from core.area import LEVELS, Area
from core.model import AREA_PART_MAX

router = APIRouter(prefix="/api/stats", tags=["stats"])


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DEFAULT_SPAN_S = 7 * 86400
MAX_SPAN_S = 400 * 86400
AreaQuery = Query(max_length=300, description="an area path: 示例县/城关镇 (within your scope)")

# -- response models ---------------------------------------------------------------------


class AreaCount(BaseModel):
    area: str = Field(description="area path, one level below the scope (示例县/城关镇)")
    count: int


class TypeCount(BaseModel):
    type: str
    count: int


class SeverityCount(BaseModel):
    severity: str
    count: int


class StatusCount(BaseModel):
    status: str
    count: int


class DayCount(BaseModel):
    date: dt.date = Field(description="local date in the hub's time zone")
    count: int


class CameraFalseAlarms(BaseModel):
    camera_id: str
    name: str
    false_alarms: int
    total: int
    rate: float


class RuleFalseAlarms(BaseModel):
    rule: str
    type: str
    false_alarms: int
    total: int
    rate: float


class ReasonCount(BaseModel):
    reason: str
    count: int


class DurationStats(BaseModel):
    p50: float | None = Field(description="median, seconds (none without data)")
    p90: float | None = Field(description="90th percentile, seconds")
    count: int


class AlertStatsOut(BaseModel):
    start: float
    end: float
    timezone: str = Field(description="time zone of the hour, weekday and date buckets")
    total: int
    by_area: list[AreaCount]
    by_type: list[TypeCount]
    by_severity: list[SeverityCount]
    by_status: list[StatusCount]
    by_hour: list[int] = Field(min_length=24, max_length=24, description="local hour 0-23")
    by_weekday: list[int] = Field(min_length=7, max_length=7, description="Monday first")
    daily: list[DayCount]
    false_alarm_cameras: list[CameraFalseAlarms] = Field(description="top 10")
    false_alarm_rules: list[RuleFalseAlarms] = Field(description="top 10")
    false_alarm_reasons: list[ReasonCount] = Field(description="top 10")
    ack_time_s: DurationStats = Field(description="creation to the first handling action")
    resolve_time_s: DurationStats = Field(description="creation to resolve (false alarms apart)")


class AreaAvailability(BaseModel):
    area: str
    total: int
    online: int
    rate: float


class ProgrammeAvailability(BaseModel):
    programme: str
    total: int
    online: int
    rate: float


class FaultyCamera(BaseModel):
    camera_id: str
    name: str
    area: Area
    state: str = Field(description="offline, auth_failed, invalid_config, unknown (no status), "
                       "or online with picture faults")  # fmt: skip
    last_error: str | None
    since: float | None = Field(description="in this state since (epoch seconds)")
    faults: list[str] = Field(description="picture faults holding now (video quality)")


class CameraFps(BaseModel):
    camera_id: str
    fps: float


class CameraStatsOut(BaseModel):
    total: int = Field(description="enabled cameras in scope")
    online: int
    rate: float
    disabled: int
    by_area: list[AreaAvailability]
    by_programme: list[ProgrammeAvailability]
    faulty: list[FaultyCamera]
    analysed_fps: list[CameraFps]


# -- routes --------------------------------------------------------------------------------


def area_path(area: str | None) -> tuple[str, ...]:
    """The parts of an ``area`` query (422 for more than four, or one over 64 characters)."""
    parts = tuple(part for part in (area or "").split("/") if part)
    if len(parts) > len(LEVELS) or any(len(p) > AREA_PART_MAX for p in parts):
        raise HTTPException(422, f"area: at most {len(LEVELS)} parts of at most "
                                 f"{AREA_PART_MAX} characters (county/township/village/grid)")
    return parts


def compute_alert_stats(
    session: Session,
    services: HubServices,
    principal: Principal,
    start: float | None,
    end: float | None,
    area: str | None,
) -> stats.AlertStats:
    end = time.time() if end is None else end
    start = end - DEFAULT_SPAN_S if start is None else start
    if end <= start:
        raise HTTPException(422, "end must be after start")
    if end - start > MAX_SPAN_S:
        raise HTTPException(422, f"at most {MAX_SPAN_S // 86400} days at once")
    # An area outside the caller's scope is not refused: the scope's filter leaves
    # nothing of it (as the lists do), which says nothing about what exists there.
    return stats.alert_stats(session, alert_scope(principal), start, end,
                             services.alerts.tz.key, area_path(area))  # fmt: skip


def alert_stats_out(s: stats.AlertStats) -> AlertStatsOut:
    return AlertStatsOut(
        start=s.start, end=s.end, timezone=s.timezone, total=s.total,
        by_area=[AreaCount(area=a, count=c) for a, c in s.by_area],
        by_type=[TypeCount(type=t, count=c) for t, c in s.by_type],
        by_severity=[SeverityCount(severity=v, count=c) for v, c in s.by_severity],
        by_status=[StatusCount(status=v, count=c) for v, c in s.by_status],
        by_hour=s.buckets.by_hour, by_weekday=s.buckets.by_weekday,
        daily=[DayCount(date=d, count=c) for d, c in s.buckets.daily.items()],
        false_alarm_cameras=[
            CameraFalseAlarms(camera_id=r.key, name=r.name, false_alarms=r.false_alarms,
                              total=r.total, rate=r.rate)
            for r in s.false_alarm_cameras
        ],
        false_alarm_rules=[
            RuleFalseAlarms(rule=r.key, type=t, false_alarms=r.false_alarms, total=r.total,
                            rate=r.rate)
            for r, t in s.false_alarm_rules
        ],
        false_alarm_reasons=[ReasonCount(reason=r, count=c) for r, c in s.false_alarm_reasons],
        ack_time_s=DurationStats(**vars(s.ack_time)),
        resolve_time_s=DurationStats(**vars(s.resolve_time)),
    )  # fmt: skip


StartQuery = Query(ge=0, le=1e11, description="epoch seconds, inclusive (default: end - 7 d)")
EndQuery = Query(ge=0, le=1e11, description="epoch seconds, exclusive (default: now)")


@router.get("/alerts", response_model=AlertStatsOut, responses={422: {}},
            summary="Alert figures of a period in your scope (研判)")  # fmt: skip
def get_alert_stats(
    session: SessionDep,
    services: ServicesDep,
    principal: AlertReader,
    start: Annotated[float | None, StartQuery] = None,
    end: Annotated[float | None, EndQuery] = None,
    area: Annotated[str | None, AreaQuery] = None,
) -> AlertStatsOut:
    return alert_stats_out(compute_alert_stats(session, services, principal, start, end, area))


@router.get(
    "/alerts.xlsx",
    response_class=Response,
    responses={200: {"content": {XLSX: {}}}, 422: {}},
    summary="The same figures as a workbook for the weekly meeting (Chinese sheet titles)",
)  # fmt: skip
def get_alert_stats_xlsx(
    session: SessionDep,
    services: ServicesDep,
    principal: AlertReader,
    start: Annotated[float | None, StartQuery] = None,
    end: Annotated[float | None, EndQuery] = None,
    area: Annotated[str | None, AreaQuery] = None,
) -> Response:
    figures = compute_alert_stats(session, services, principal, start, end, area)
    body = workbook(figures, area or principal.area.label())
    day = datetime.fromtimestamp(figures.end, services.alerts.tz).strftime("%Y%m%d")
    return Response(body, media_type=XLSX, headers={
        "Content-Disposition": f'attachment; filename="alert-stats-{day}.xlsx"',
    })  # fmt: skip


@router.get("/cameras", response_model=CameraStatsOut,
            summary="Camera health in your scope: online rate, faulty cameras, fps")  # fmt: skip
def get_camera_stats(
    session: SessionDep,
    services: LiveDep,
    principal: CameraReader,
    area: Annotated[str | None, AreaQuery] = None,
) -> CameraStatsOut:
    path = area_path(area)
    wanted = Area(**dict(zip(LEVELS, path, strict=False)))
    facts = [
        stats.CameraFacts(r.id, r.name or r.id, record_area(r), r.programme, r.enabled)
        for r in list_cameras(session)
        if sees_area(principal, record_area(r)) and wanted.contains(record_area(r))
    ]
    statuses = {f.camera_id: s for f in facts if (s := services.status.snapshot(f.camera_id))}
    scope = path or (() if principal.role == "admin" else principal.area.path())
    h = stats.camera_health(facts, statuses, scope)
    return CameraStatsOut(
        total=h.total, online=h.online, rate=h.rate, disabled=h.disabled,
        by_area=[AreaAvailability(area=a.key, total=a.total, online=a.online, rate=a.rate)
                 for a in h.by_area],
        by_programme=[ProgrammeAvailability(programme=a.key, total=a.total, online=a.online,
                                            rate=a.rate) for a in h.by_programme],
        faulty=[FaultyCamera(camera_id=f.camera.camera_id, name=f.camera.name,
                             area=f.camera.area, state=f.state, last_error=f.last_error,
                             since=f.since, faults=f.faults) for f in h.faulty],
        analysed_fps=[CameraFps(camera_id=c, fps=fps) for c, fps in h.analysed_fps],
    )  # fmt: skip


# -- the workbook --------------------------------------------------------------------------

WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
SEVERITY_ZH = {"info": "提示", "low": "低", "medium": "中", "high": "高", "critical": "紧急"}
STATUS_ZH = {"new": "待受理", "acknowledged": "已受理", "dispatched": "已分派",
             "in_progress": "处置中", "resolved": "已办结", "false_alarm": "误报"}  # fmt: skip


def workbook(s: stats.AlertStats, scope_label: str) -> bytes:
    """The figures as an .xlsx: one sheet per table, Chinese titles."""
    tz = s.timezone
    fmt = "%Y-%m-%d %H:%M"
    span = (f"{datetime.fromtimestamp(s.start, stats.ZoneInfo(tz)).strftime(fmt)} 至 "
            f"{datetime.fromtimestamp(s.end, stats.ZoneInfo(tz)).strftime(fmt)}")  # fmt: skip
    sheets: list[xlsx.Sheet] = [
        ("概况", ["项目", "数值"], [
            ["范围", scope_label], ["时段", span], ["时区", tz], ["告警总数", s.total],
            ["受理时长中位数（秒）", s.ack_time.p50], ["受理时长P90（秒）", s.ack_time.p90],
            ["已受理告警数", s.ack_time.count],
            ["办结时长中位数（秒）", s.resolve_time.p50], ["办结时长P90（秒）", s.resolve_time.p90],
            ["已办结告警数", s.resolve_time.count],
        ]),
        ("按区域", ["区域", "告警数"], [[a, c] for a, c in s.by_area]),
        ("按类型", ["告警类型", "告警数"], [[TYPE_ZH.get(t, t), c] for t, c in s.by_type]),
        ("按级别", ["级别", "告警数"], [[SEVERITY_ZH.get(v, v), c] for v, c in s.by_severity]),
        ("按状态", ["状态", "告警数"], [[STATUS_ZH.get(v, v), c] for v, c in s.by_status]),
        ("按小时", ["小时", "告警数"],
         [[f"{h:02d}:00-{h:02d}:59", c] for h, c in enumerate(s.buckets.by_hour)]),
        ("按星期", ["星期", "告警数"],
         [[WEEKDAYS[i], c] for i, c in enumerate(s.buckets.by_weekday)]),
        ("每日趋势", ["日期", "告警数"], [[d.isoformat(), c] for d, c in s.buckets.daily.items()]),
        ("误报摄像机", ["摄像机编号", "名称", "误报数", "告警数", "误报率"],
         [[r.key, r.name, r.false_alarms, r.total, r.rate] for r in s.false_alarm_cameras]),
        ("误报规则", ["规则", "告警类型", "误报数", "告警数", "误报率"],
         [[r.key, TYPE_ZH.get(t, t), r.false_alarms, r.total, r.rate]
          for r, t in s.false_alarm_rules]),
        ("误报原因", ["原因", "次数"], [[r, c] for r, c in s.false_alarm_reasons]),
    ]  # fmt: skip
    return xlsx.workbook(sheets)
