"""API error messages in Chinese for clients that ask for it (``Accept-Language: zh``,
as the console sends in zh-CN); English stays the default and is kept in ``detail_en``.

The routes raise English messages (logs, integrators, tests read them); this layer
translates the ones an operator meets — login, scope (未找到), permissions, lifecycle
conflicts, live video, validation — by pattern, and leaves any other message English.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

ACTIONS_ZH = {
    "acknowledge": "受理", "dispatch": "分派", "start": "开始处置", "resolve": "办结",
    "false_alarm": "标记误报", "reopen": "重新打开",
}  # fmt: skip
STATUSES_ZH = {
    "new": "待受理", "acknowledged": "已受理", "dispatched": "已分派", "in_progress": "处置中",
    "resolved": "已办结", "false_alarm": "误报",
}  # fmt: skip


def _actions(text: str) -> str:
    return "、".join(ACTIONS_ZH.get(a.strip(), a.strip()) for a in text.split(",") if a.strip())


def _conflict(m: re.Match[str]) -> str:
    action = ACTIONS_ZH.get(m["action"], m["action"])
    status = STATUSES_ZH.get(m["status"], m["status"])
    allowed = _actions(m["allowed"]) if m["allowed"] != "none" else "无"
    return f"告警当前为「{status}」，不能{action}（可执行：{allowed}）"


Translation = str | Callable[[re.Match[str]], str]

#: (English message pattern, Chinese); the first that matches the whole message wins
PATTERNS: list[tuple[re.Pattern[str], Translation]] = [
    (re.compile(p), zh)
    for p, zh in (
        (r"invalid username or password", "用户名或密码错误"),
        (r"invalid or expired token.*", "登录已过期，请重新登录"),
        (r"invalid or revoked API key.*", "API 密钥无效或已吊销"),
        (r"Authorization header must be .*", "认证信息格式错误（应为 Bearer 令牌）"),
        (r"not authenticated.*|Not authenticated", "未登录，请先登录"),
        (r"no alert '(?P<a>[^']*)' in incident '(?P<i>[^']*)'",
         r"未找到：事件 \g<i> 中没有告警 \g<a>"),
        (r"no alert '(?P<id>[^']*)'", r"未找到告警 \g<id>（不存在或不在您的管辖范围内）"),
        (r"no camera '(?P<id>[^']*)'", r"未找到摄像机 \g<id>（不存在或不在您的管辖范围内）"),
        (r"no track '(?P<id>[^']*)'", r"未找到轨迹 \g<id>"),
        (r"no routing rule '(?P<id>[^']*)'", r"未找到分流规则 \g<id>"),
        (r"no delivery (?P<id>\d+)", r"未找到推送记录 \g<id>"),
        (r"no user '(?P<id>[^']*)'", r"未找到用户 \g<id>"),
        (r"alert '[^']*' has no (snapshot|clip|\w+) on disk",
         "证据文件不存在（可能已按保留期清理）"),
        (r"evidence link invalid or expired", "证据链接无效或已过期"),
        (r"permission '(?P<p>[^']*)' required.*", r"无权限：需要「\g<p>」权限"),
        (r"cannot (?P<action>\w+) an alert that is (?P<status>\w+) \(allowed: (?P<allowed>.*)\)",
         _conflict),
        (r"a false alarm needs a reason.*", "标记误报需要填写原因（用于优化规则）"),
        (r"dispatch needs a department", "分派需要选择部门"),
        (r"unknown department '(?P<id>[^']*)'", r"未知部门 \g<id>"),
        (r"end must be after start", "结束时间必须晚于开始时间"),
        (r"at most (?P<n>\d+) days at once", r"一次最多查询 \g<n> 天"),
        (r"camera '(?P<id>[^']*)' is not streaming.*",
         r"摄像机 \g<id> 暂无视频流（尚未收到关键帧）"),
        (r"camera '(?P<id>[^']*)' sends (?P<codec>\w+): live view needs H\.264.*",
         r"摄像机 \g<id> 的视频编码为 \g<codec>，实时视频需要 H.264：请查看抓拍图"),
        (r"camera '(?P<id>[^']*)': its worker does not answer",
         r"摄像机 \g<id> 所在的分析节点无响应"),
        (r"camera '(?P<id>[^']*)' is moving to another worker",
         r"摄像机 \g<id> 正在迁移到其他分析节点，请稍候"),
        # issue 23: users, the camera registry and the area tree from the console
        (r"a user without an area sees the whole county: confirm.*",
         "未指定辖区的用户可查看全县所有摄像机和告警：请确认（county_wide: true），或指定辖区"),
        (r"role '(?P<r>[^']*)' cannot see the whole county.*",
         "部门账号不能查看全县：请指定辖区（或留空，按其部门服务的区域）"),
        (r"county_wide: true contradicts the area given.*", "已指定辖区，不能同时设为全县"),
        (r"camera '(?P<id>[^']*)' exists", r"摄像机编号 \g<id> 已存在"),
        (r"camera '(?P<id>[^']*)' comes from the config file (?P<f>.*): change it there",
         r"摄像机 \g<id> 来自配置文件 \g<f>，请在配置文件中修改"),
        (r"area (?P<a>.*) comes from the config file (?P<f>.*): change it there",
         r"区域 \g<a> 来自配置文件 \g<f>，请在配置文件中修改"),
        (r"area (?P<a>.*) is outside your area (?P<b>.*)",
         r"区域 \g<a> 不在您的辖区（\g<b>）内"),
        (r"camera '(?P<id>[^']*)': source\.url: local files cannot be registered.*",
         r"摄像机 \g<id>：不能通过接口登记本机文件（仅限配置文件）"),
        (r"ONVIF probe of (?P<h>\S+) failed: (?P<why>.*)", r"ONVIF 探测 \g<h> 失败：\g<why>"),
        (r"no area '(?P<a>[^']*)'", r"未找到区域 \g<a>"),
        (r"area (?P<a>\S+) exists", r"区域 \g<a> 已存在"),
        (r"area: its parent (?P<p>\S+) is not in the tree: add it first",
         r"上级区域 \g<p> 不在区域树中：请先添加"),
        (r"area (?P<a>\S+) has (?P<n>\d+) area\(s\) below it.*",
         r"区域 \g<a> 下还有 \g<n> 个下级区域：请先删除"),
        (r"area (?P<a>\S+) has (?P<n>\d+) camera\(s\).*",
         r"区域 \g<a> 内还有 \g<n> 台摄像机：请先移走或删除"),
        (r"area (?P<a>\S+) has (?P<n>\d+) user\(s\).*",
         r"区域 \g<a> 内还有 \g<n> 个用户：请先修改其辖区"),
        (r"code (?P<c>\d+) is taken by (?P<a>\S+)", r"区划代码 \g<c> 已被 \g<a> 使用"),
        (r"code: a (?P<lv>\w+) code has (?P<d>[\d-]+) digits.*",
         r"区划代码位数不对：应为 \g<d> 位（GB/T 2260）"),
        (r"code: '(?P<c>\d+)' does not start with its parent's code '(?P<p>\d+)'",
         r"区划代码 \g<c> 应以上级代码 \g<p> 开头"),
        # GB/T 28181: a device's recordings (RecordInfo, playback INVITE)
        (r"GB/T 28181 is not enabled in this process.*", "本节点未启用国标接入（sip.enabled）"),
        (r"no GB/T 28181 channel '(?P<c>[^']*)'",
         r"未找到国标通道 \g<c>（不存在或不在您的管辖范围内）"),
        (r"device_offline: .*", "国标设备不在线（未注册或心跳超时）"),
        (r"no_media: .*", "设备没有发送视频（超时未收到关键帧），请稍后重试"),
        (r"bad_media: .*", "设备发送的视频无法解析"),
        (r"invite_failed: (?P<m>.*)", r"设备拒绝或未应答点播请求（\g<m>）"),
        (r"playback of (?P<c>\S+) failed: (?P<m>.*)", r"通道 \g<c> 的设备录像回放失败：\g<m>"),
        (r"RecordInfo query to (?P<d>\S+) failed: (?P<m>.*)",
         r"向设备 \g<d> 查询录像失败：\g<m>"),
        (r"end must be after start, at most (?P<n>\d+) (?P<u>s|days)",
         lambda m: f"结束时间必须晚于开始时间，且最多 {m['n']} {'秒' if m['u'] == 's' else '天'}"),
        (r"too many requests.*|Too Many Requests", "请求过于频繁，请稍后再试"),
        (r"no such file", "文件不存在"),
    )
]

#: pydantic's validation messages (the common ones)
VALIDATION_ZH: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), zh)
    for p, zh in (
        (r"Field required", "必填"),
        (r"Input should be a valid (integer|number).*", "应为数字"),
        (r"Input should be a valid string", "应为文本"),
        (r"Input should be (?P<opts>'.*)", r"应为以下之一：\g<opts>"),
        (r"String should have at most (?P<n>\d+) characters?", r"最多 \g<n> 个字符"),
        (r"String should have at least (?P<n>\d+) characters?", r"至少 \g<n> 个字符"),
        (r"Input should be greater than or equal to (?P<n>\S+)", r"应 ≥ \g<n>"),
        (r"Input should be less than or equal to (?P<n>\S+)", r"应 ≤ \g<n>"),
        (r"Input should be greater than (?P<n>\S+)", r"应 > \g<n>"),
        (r"Input should be less than (?P<n>\S+)", r"应 < \g<n>"),
        (r"String should match pattern .*", "格式不正确"),
    )
]


def prefers_chinese(request: Request) -> bool:
    """Whether the client's first choice of language is Chinese (Accept-Language)."""
    header = request.headers.get("accept-language", "")
    ranked = []
    for i, part in enumerate(header.split(",")):
        lang, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if lang:
            ranked.append((-q, i, lang.lower()))
    return bool(ranked) and min(ranked)[2].startswith("zh")


def translate(message: str) -> str | None:
    """The Chinese of an English API message (None: not one an operator meets)."""
    for pattern, zh in PATTERNS:
        m = pattern.fullmatch(message)
        if m is not None:
            return zh(m) if callable(zh) else m.expand(zh)
    return None


def _translate_validation(message: str) -> str:
    for pattern, zh in VALIDATION_ZH:
        m = pattern.fullmatch(message)
        if m is not None:
            return m.expand(zh)
    return message


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.detail, str) and prefers_chinese(request):
        zh = translate(exc.detail)
        if zh is not None:
            return JSONResponse({"detail": zh, "detail_en": exc.detail},
                                status_code=exc.status_code, headers=exc.headers)  # fmt: skip
    return await http_exception_handler(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not prefers_chinese(request):
        return await request_validation_exception_handler(request, exc)
    errors: list[dict[str, Any]] = []
    for e in jsonable_encoder(exc.errors()):
        errors.append({**e, "msg": _translate_validation(str(e.get("msg", ""))),
                       "msg_en": e.get("msg")})  # fmt: skip
    return JSONResponse({"detail": errors}, status_code=422)


def install_error_language(app: FastAPI) -> None:
    """Answer errors in Chinese to clients that prefer it (English otherwise)."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
