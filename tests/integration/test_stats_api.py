"""The statistics API over a real hub on SQLite and PostgreSQL: seeded alerts with a
known handling history → the figures in the hub's time zone, scoped to the caller; the
same figures as a workbook; camera health from the live status."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from accounts import passwords
from accounts.service import create_user
from alerts.adapters.sql import SqlUnitOfWork
from alerts.domain.model import Action
from api.app import create_app
from core.area import Area
from shaobing.bootstrap import Hub
from shaobing.config import parse_config
from tests.databases import pg_schema
from tests.factories import make_alert, store

PW = "stats-pass-0123"
COUNTY = {"county": "示例县"}
CG = {**COUNTY, "township": "城关镇"}
HX = {**COUNTY, "township": "河西镇"}
T0 = datetime(2026, 11, 16, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()  # a Monday, 00:00
H, D = 3600.0, 86400.0

#: camera, village, rule, type, severity, created (after T0), handling [(action, after s)]
ALERTS: list[tuple[str, dict[str, str], str, str, str, float, list[tuple[Action, float]]]] = [
    ("cg-1", {**CG, "village": "人民村"}, "cg-loiter", "loitering", "high", 2.5 * H,
     [("acknowledge", 60), ("resolve", 600)]),  # Monday 02:30 local (Sunday by UTC)
    ("cg-1", {**CG, "village": "人民村"}, "cg-loiter", "loitering", "medium", D + 2 * H + 600,
     [("false_alarm", 120)]),  # Tuesday 02:10
    ("cg-2", {**CG, "village": "东街村"}, "cg-intrude", "intrusion", "low", 2 * D - 600,
     [("acknowledge", 30)]),  # Tuesday 23:50
    ("hx-1", {**HX, "village": "河西村"}, "hx-intrude", "intrusion", "high", 2 * D + 9 * H,
     [("dispatch", 300), ("resolve", 3900)]),  # Wednesday 09:00
    ("hx-1", {**HX, "village": "河西村"}, "hx-loiter", "loitering", "low", 2 * D + 9 * H + 300,
     [("false_alarm", 10)]),  # Wednesday 09:05
    ("cg-1", {**CG, "village": "人民村"}, "cg-loiter", "loitering", "high", 8 * D, []),  # after
]  # fmt: skip
RANGE = f"start={T0:.0f}&end={T0 + 7 * D:.0f}"


def hub_config(tmp: Path, models_dir: Path, url: str | None) -> dict[str, Any]:
    def camera(cam_id: str, area: dict[str, str], programme: str, enabled: bool = True
               ) -> dict[str, Any]:  # fmt: skip
        return {"id": cam_id, "name": f"{cam_id} 名称", "area": area, "programme": programme,
                "enabled": enabled, "source": {"url": f"rtsp://127.0.0.1:9/{cam_id}"}}  # fmt: skip

    return {
        "data_dir": str(tmp / "data"),
        "storage": {"database_url": url},
        "timezone": "Asia/Shanghai",
        "detector": {"model": str(models_dir / "yolox_nano.onnx")},
        "departments": [{"id": "hx-pcs", "name": "河西派出所", "kind": "police",
                         "level": "township", "areas": [HX]}],
        "cameras": [
            camera("cg-1", {**CG, "village": "人民村"}, "xueliang"),
            camera("cg-2", {**CG, "village": "东街村"}, "tianwang"),
            camera("cg-3", {**CG, "village": "东街村"}, "tianwang", enabled=False),
            camera("hx-1", {**HX, "village": "河西村"}, "xueliang"),
            camera("hx-2", {**HX, "village": "河西村"}, "xueliang"),
        ],
    }  # fmt: skip


class World:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        app = create_app(hub.services, hub.sessions, allowed_hosts=["testserver"])
        self.client = TestClient(app)
        self.tokens: dict[str, str] = {}

    def get(self, name: str, url: str) -> Any:
        if name not in self.tokens:
            r = self.client.post("/api/auth/login", json={"username": name, "password": PW})
            assert r.status_code == 200, r.text
            self.client.cookies.clear()
            self.tokens[name] = r.json()["token"]
        return self.client.get(url, headers={"Authorization": f"Bearer {self.tokens[name]}"})

    def json(self, name: str, url: str) -> Any:
        r = self.get(name, url)
        assert r.status_code == 200, r.text
        return r.json()


def seed(hub: Hub) -> None:
    for i, (cam, area, rule, kind, severity, after, handling) in enumerate(ALERTS, 1):
        created = T0 + after
        alert = make_alert(i, camera_id=cam, camera_name=f"{cam} 名称", area=Area(**area),
                           rule=rule, type=kind, severity=severity, created_at=created,
                           started_at=created - 5)  # fmt: skip
        store(hub.sessions, alert)
        for action, delay in handling:
            with SqlUnitOfWork(hub.sessions) as uow:
                stored = uow.alerts.get(alert.id)
                assert stored is not None
                stored.apply(
                    action,
                    actor="admin",
                    at=created + delay,
                    reason="树影" if i == 2 else "误检",
                    department_id="hx-pcs",
                )
                uow.commit()


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          models_dir: Path) -> Iterator[World]:  # fmt: skip
    tmp = tmp_path_factory.mktemp(f"stats-{request.param}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=8,
                                                       parallelism=1))  # fmt: skip
        if request.param == "sqlite":
            hub = Hub(parse_config(hub_config(tmp, models_dir, None), "stats.yaml", tmp))
            yield from with_hub(hub)
            return
        with pg_schema() as url:
            hub = Hub(parse_config(hub_config(tmp, models_dir, url), "stats.yaml", tmp))
            yield from with_hub(hub)


def with_hub(hub: Hub) -> Iterator[World]:
    with hub.sessions.begin() as session:
        for name, role, area in (("admin", "admin", {}), ("op-cg", "operator", CG),
                                 ("op-hx", "operator", HX), ("viewer", "viewer", COUNTY),
                                 ("dept-hx", "department", HX)):  # fmt: skip
            create_user(session, name, role, password=PW, area=Area(**area),
                        department_id="hx-pcs" if role == "department" else None)  # fmt: skip
    seed(hub)
    status = hub.status
    status.update("cg-1", state="online", analysed_fps=4.8)
    status.update("cg-2", state="offline", last_error="read timeout")
    status.update("cg-3", state="disabled")
    status.update("hx-1", state="online", analysed_fps=5.0, faults=["blur"])
    # hx-2 has no status: never seen by this process
    try:
        yield World(hub)
    finally:
        hub.engine.dispose()


def counts(items: list[dict[str, Any]], key: str) -> dict[str, int]:
    return {i[key]: i["count"] for i in items}


def test_the_county_figures_of_a_week(world: World) -> None:
    s = world.json("viewer", f"/api/stats/alerts?{RANGE}")
    assert s["total"] == 5 and s["timezone"] == "Asia/Shanghai"
    assert counts(s["by_area"], "area") == {"示例县/城关镇": 3, "示例县/河西镇": 2}
    assert s["by_type"] == [{"type": "loitering", "count": 3}, {"type": "intrusion", "count": 2}]
    assert counts(s["by_severity"], "severity") == {"info": 0, "low": 2, "medium": 1, "high": 2,
                                                    "critical": 0}  # fmt: skip
    assert counts(s["by_status"], "status") == {"resolved": 2, "false_alarm": 2,
                                                "acknowledged": 1}  # fmt: skip
    hours = [0] * 24
    hours[2], hours[23], hours[9] = 2, 1, 2  # local hours, not UTC
    assert s["by_hour"] == hours
    assert s["by_weekday"] == [1, 2, 2, 0, 0, 0, 0]
    assert [(d["date"], d["count"]) for d in s["daily"]] == [
        ("2026-11-16", 1), ("2026-11-17", 2), ("2026-11-18", 2), ("2026-11-19", 0),
        ("2026-11-20", 0), ("2026-11-21", 0), ("2026-11-22", 0)]  # fmt: skip
    assert s["false_alarm_cameras"] == [
        {"camera_id": "cg-1", "name": "cg-1 名称", "false_alarms": 1, "total": 2, "rate": 0.5},
        {"camera_id": "hx-1", "name": "hx-1 名称", "false_alarms": 1, "total": 2, "rate": 0.5},
    ]
    assert [
        (r["rule"], r["type"], r["false_alarms"], r["total"], r["rate"])
        for r in s["false_alarm_rules"]
    ] == [("hx-loiter", "loitering", 1, 1, 1.0), ("cg-loiter", "loitering", 1, 2, 0.5)]
    assert counts(s["false_alarm_reasons"], "reason") == {"树影": 1, "误检": 1}
    # Acknowledged (any handling) after 60, 120, 30, 300 and 10 s; resolved after 600, 3900.
    assert s["ack_time_s"] == {"p50": 60.0, "p90": 228.0, "count": 5}
    assert s["resolve_time_s"] == {"p50": 2250.0, "p90": 3570.0, "count": 2}


def test_figures_are_scoped_to_the_caller(world: World) -> None:
    cg = world.json("op-cg", f"/api/stats/alerts?{RANGE}")
    assert cg["total"] == 3  # a township's figures, by village
    assert counts(cg["by_area"], "area") == {"示例县/城关镇/人民村": 2, "示例县/城关镇/东街村": 1}
    assert [c["camera_id"] for c in cg["false_alarm_cameras"]] == ["cg-1"]
    assert cg["ack_time_s"]["count"] == 3 and cg["resolve_time_s"]["count"] == 1
    hx = world.json("op-hx", f"/api/stats/alerts?{RANGE}")
    assert hx["total"] == 2 and counts(hx["by_area"], "area") == {"示例县/河西镇/河西村": 2}
    # Another township asked for: nothing, not an error and not a leak.
    other = world.json("op-hx", f"/api/stats/alerts?{RANGE}&area=示例县/城关镇")
    assert other["total"] == 0 and other["by_hour"] == [0] * 24
    # A department's figures are its alerts': the one dispatched to it.
    dept = world.json("dept-hx", f"/api/stats/alerts?{RANGE}")
    assert dept["total"] == 1 and counts(dept["by_type"], "type") == {"intrusion": 1}
    narrowed = world.json("admin", f"/api/stats/alerts?{RANGE}&area=示例县/城关镇/东街村")
    assert narrowed["total"] == 1


def test_the_default_period_and_bad_parameters(world: World) -> None:
    recent = world.json("viewer", "/api/stats/alerts")  # the last 7 days: the seeds are older
    assert len(recent["daily"]) in (7, 8) and recent["end"] - recent["start"] == 7 * D
    for query in ("start=10&end=5", f"start=0&end={500 * D:.0f}", "start=-1", "end=abc",
                  "area=" + "x" * 301):  # fmt: skip
        r = world.get("viewer", f"/api/stats/alerts?{query}")
        assert r.status_code == 422, (query, r.text)
        assert world.get("viewer", f"/api/stats/alerts.xlsx?{query}").status_code == 422


def test_the_workbook_has_the_same_figures(world: World) -> None:
    r = world.get("op-cg", f"/api/stats/alerts.xlsx?{RANGE}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert 'filename="alert-stats-20261123.xlsx"' in r.headers["content-disposition"]
    book = load_workbook(io.BytesIO(r.content))
    assert book.sheetnames == ["概况", "按区域", "按类型", "按级别", "按状态", "按小时", "按星期",
                               "每日趋势", "误报摄像机", "误报规则", "误报原因"]  # fmt: skip
    summary = {row[0]: row[1] for row in book["概况"].iter_rows(min_row=2, values_only=True)}
    assert summary["告警总数"] == 3 and summary["受理时长中位数（秒）"] == 60.0
    assert summary["范围"] == "示例县 / 城关镇"
    hours = list(book["按小时"].iter_rows(min_row=2, values_only=True))
    assert hours[2] == ("02:00-02:59", 2) and len(hours) == 24
    assert list(book["按星期"].iter_rows(min_row=1, max_row=3, values_only=True)) == [
        ("星期", "告警数"), ("周一", 1), ("周二", 2)]  # fmt: skip
    cams = list(book["误报摄像机"].iter_rows(min_row=2, values_only=True))
    assert cams == [("cg-1", "cg-1 名称", 1, 2, 0.5)]
    types = list(book["按类型"].iter_rows(min_row=2, values_only=True))
    assert types == [("人员逗留", 2), ("区域入侵", 1)]  # values in Chinese too
    rules = list(book["误报规则"].iter_rows(min_row=2, values_only=True))
    assert rules and all(r[1] == "人员逗留" for r in rules)


def test_camera_health_from_the_live_status(world: World) -> None:
    c = world.json("viewer", "/api/stats/cameras")
    assert (c["total"], c["online"], c["rate"], c["disabled"]) == (4, 2, 0.5, 1)
    assert [(a["area"], a["total"], a["online"]) for a in c["by_area"]] == [
        ("示例县/城关镇", 2, 1), ("示例县/河西镇", 2, 1)]  # fmt: skip
    assert [(p["programme"], p["total"], p["online"]) for p in c["by_programme"]] == [
        ("tianwang", 1, 0), ("xueliang", 3, 2)]  # fmt: skip
    faulty = {f["camera_id"]: (f["state"], f["last_error"], f["faults"]) for f in c["faulty"]}
    assert faulty == {"cg-2": ("offline", "read timeout", []), "hx-1": ("online", None, ["blur"]),
                      "hx-2": ("unknown", None, [])}  # fmt: skip
    assert {f["camera_id"]: f["fps"] for f in c["analysed_fps"]}["cg-1"] == 4.8
    cg = world.json("op-cg", "/api/stats/cameras")
    assert (cg["total"], cg["online"], cg["disabled"]) == (2, 1, 1)
    assert [(a["area"], a["online"]) for a in cg["by_area"]] == [
        ("示例县/城关镇/东街村", 0), ("示例县/城关镇/人民村", 1)]  # fmt: skip
    assert world.json("op-cg", "/api/stats/cameras?area=示例县/河西镇")["total"] == 0
    hx = world.json("admin", "/api/stats/cameras?area=示例县/河西镇")
    assert (hx["total"], hx["online"]) == (2, 1)
    assert world.get("op-cg", "/api/stats/cameras?area=" + "x" * 301).status_code == 422
