"""API errors in Chinese for a client that asks for it (the console in zh-CN), English by
default and in ``detail_en``: login, an alert outside the caller's scope (未找到), a
lifecycle conflict, a validation error."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.errors_zh import translate
from shaobing.bootstrap import Hub
from tests.integration.test_incidents_api import client, hub, publish  # noqa: F401 - fixtures

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}


def test_login_failure_in_chinese_or_english(client: TestClient) -> None:  # noqa: F811
    bad = {"username": "admin", "password": "wrong-password"}
    zh = client.post("/api/auth/login", json=bad, headers=ZH)
    assert zh.status_code == 401
    assert zh.json() == {"detail": "用户名或密码错误", "detail_en": "invalid username or password"}
    en = client.post("/api/auth/login", json=bad)
    assert en.json() == {"detail": "invalid username or password"}
    prefers_en = client.post("/api/auth/login", json=bad,
                             headers={"Accept-Language": "en-GB, zh;q=0.5"})  # fmt: skip
    assert prefers_en.json()["detail"] == "invalid username or password"


def test_not_found_conflict_and_validation_in_chinese(
    hub: Hub, client: TestClient  # noqa: F811
) -> None:
    missing = client.get("/api/alerts/someone-elses", headers=ZH)
    assert missing.status_code == 404 and missing.json()["detail"].startswith("未找到告警")
    publish(hub, 1, 1000.0, 1)
    client.post("/api/alerts/alert-1/actions", json={"action": "resolve"})
    again = client.post("/api/alerts/alert-1/actions", json={"action": "acknowledge"}, headers=ZH)
    assert again.status_code == 409
    assert again.json()["detail"] == "告警当前为「已办结」，不能受理（可执行：重新打开）"
    assert again.json()["detail_en"].startswith("cannot acknowledge an alert that is resolved")
    invalid = client.post("/api/alerts/alert-1/actions", json={}, headers=ZH)
    assert invalid.status_code == 422
    [error] = invalid.json()["detail"]
    assert error["msg"] == "必填" and error["msg_en"] == "Field required"
    assert error["loc"] == ["body", "action"]
    assert client.post("/api/alerts/alert-1/actions", json={}).json()["detail"][0]["msg"] == (
        "Field required"
    )


def test_messages_an_operator_meets_are_translated_others_stay() -> None:
    assert translate("permission 'alerts:handle' required for resolve") == (
        "无权限：需要「alerts:handle」权限"
    )
    assert translate("camera 'c1' sends hevc: live view needs H.264; use the JPEG snapshots") == (
        "摄像机 c1 的视频编码为 hevc，实时视频需要 H.264：请查看抓拍图"
    )
    assert translate("something only an integrator sees") is None
