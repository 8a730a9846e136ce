"""Patrol (轮巡) results: 在线率 and 完好率 by area or programme, and the list of cameras
found offline or faulty that a maintenance company gets (JSON or .xlsx). Area-scoped like
every camera route."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from accounts.domain import Principal, sees_area
from api.access import record_area
from api.deps import CameraReader, LiveDep, ServicesDep, SessionDep
from api.ports import CameraLivePort, HubServices
from camera_registry.patrol import PatrolGroup
from camera_registry.status import CameraStatus
from camera_registry.store import CameraRecord, list_cameras
from core import xlsx
from core.area import LEVELS, AreaLevel

router = APIRouter(prefix="/api/patrol", tags=["patrol"])


STATE_ZH = {"online": "在线", "offline": "离线", "auth_failed": "认证失败",
            "invalid_config": "配置无效", "starting": "待巡检"}  # fmt: skip
FAULT_ZH = {"black": "黑屏", "overexposed": "过曝", "frozen": "画面冻结", "blur": "模糊",
            "occlusion": "遮挡", "colour_cast": "偏色", "scene_change": "场景变更",
            "noise": "噪声", "offline": "离线", "auth_failed": "认证失败"}  # fmt: skip


class PatrolGroupOut(BaseModel):
    key: str = Field(description="the area path or the programme")
    cameras: int
    patrolled: int = Field(description="cameras in analysis: patrol")
    visited: int = Field(description="patrolled cameras visited at least once")
    online: int
    intact: int = Field(description="online without a picture fault at the last visit")
    online_rate: float | None = Field(description="在线率: online / visited")
    intact_rate: float | None = Field(description="完好率: intact / visited")
    faults: dict[str, int] = Field(description="cameras by fault at the last visit")
    last_visit_at: float | None


class PatrolSummary(BaseModel):
    total: PatrolGroupOut
    groups: list[PatrolGroupOut]


class AbnormalCamera(BaseModel):
    id: str
    name: str
    area: str
    programme: str
    state: str
    faults: list[str]
    last_error: str | None
    last_visit_at: float | None
    next_visit_at: float | None


def _visible(session: Session, principal: Principal) -> list[CameraRecord]:
    return [r for r in list_cameras(session) if sees_area(principal, record_area(r))]


def _statuses(services: CameraLivePort) -> dict[str, CameraStatus]:
    return {s.camera_id: s for s in services.status.all()}


def _out(group: PatrolGroup) -> PatrolGroupOut:
    return PatrolGroupOut(
        key=group.key, cameras=group.cameras, patrolled=group.patrolled, visited=group.visited,
        online=group.online, intact=group.intact, online_rate=group.online_rate,
        intact_rate=group.intact_rate, faults=dict(sorted(group.faults.items())),
        last_visit_at=group.last_visit_at,
    )  # fmt: skip


def _add(group: PatrolGroup, st: CameraStatus | None) -> None:
    if st is None:
        group.add(None, [], False, None)
    else:
        group.add(st.state, list(st.faults), st.patrol, st.last_visit_at)


@router.get("/summary", response_model=PatrolSummary,
            summary="在线率 and 完好率 of the patrolled cameras by area or programme")  # fmt: skip
def patrol_summary(
    session: SessionDep,
    services: LiveDep,
    principal: CameraReader,
    by: Literal["area", "programme"] = "area",
    level: Annotated[AreaLevel, Query(description="the area level to group by")] = "township",
) -> PatrolSummary:
    statuses = _statuses(services)
    depth = LEVELS.index(level) + 1
    groups: dict[str, PatrolGroup] = {}
    total = PatrolGroup("total")
    for record in _visible(session, principal):
        if by == "area":
            key = "/".join(record_area(record).path()[:depth]) or "(未划分)"
        else:
            key = record.programme
        group = groups.setdefault(key, PatrolGroup(key))
        st = statuses.get(record.id)
        _add(group, st)
        _add(total, st)
    return PatrolSummary(total=_out(total), groups=[_out(g) for _, g in sorted(groups.items())])


def abnormal(session: Session, services: HubServices, principal: Principal
             ) -> list[AbnormalCamera]:  # fmt: skip
    statuses = _statuses(services)
    out = []
    for record in _visible(session, principal):
        st = statuses.get(record.id)
        if st is None or not st.patrol or st.last_visit_at is None:
            continue
        if st.state == "online" and not st.faults:
            continue
        out.append(AbnormalCamera(
            id=record.id, name=record.name, area="/".join(record_area(record).path()),
            programme=record.programme, state=st.state, faults=list(st.faults),
            last_error=st.last_error, last_visit_at=st.last_visit_at,
            next_visit_at=st.next_visit_at,
        ))  # fmt: skip
    return sorted(out, key=lambda c: (c.area, c.id))


@router.get("/abnormal", response_model=list[AbnormalCamera],
            summary="Patrolled cameras found offline or faulty at their last visit")  # fmt: skip
def list_abnormal(
    session: SessionDep, services: ServicesDep, principal: CameraReader
) -> list[AbnormalCamera]:
    return abnormal(session, services, principal)


@router.get("/abnormal.xlsx", response_class=Response,
            responses={200: {"content": {"application/vnd.openxmlformats-officedocument."
                                         "spreadsheetml.sheet": {}}}},
            summary="The maintenance list (维护清单) as an .xlsx")  # fmt: skip
def abnormal_xlsx(
    session: SessionDep, services: ServicesDep, principal: CameraReader
) -> Response:
    tz = ZoneInfo(services.timezone)

    def when(t: float | None) -> str:
        return dt.datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M") if t else ""

    rows = [[c.id, c.name, c.area, c.programme, STATE_ZH.get(c.state, c.state),
             "、".join(FAULT_ZH.get(f, f) for f in c.faults), c.last_error or "",
             when(c.last_visit_at), when(c.next_visit_at)]
            for c in abnormal(session, services, principal)]  # fmt: skip
    header = ["摄像机编号", "名称", "区域", "建设项目", "状态", "画面故障", "最近错误",
              "最近巡检", "下次巡检"]  # fmt: skip
    body = xlsx.workbook([("维护清单", header, rows)])
    day = time.strftime("%Y%m%d")
    return Response(body, media_type="application/vnd.openxmlformats-officedocument."
                    "spreadsheetml.sheet", headers={
                        "Content-Disposition": f'attachment; filename="patrol-{day}.xlsx"'})
