"""The GB/T 28181 recording and playback errors an operator meets (录像回放's device band)
are answered in Chinese; the English stays for logs and integrators."""

from __future__ import annotations

from api.errors_zh import translate


def test_device_recording_errors_in_chinese() -> None:
    assert translate("no_media: no_media: playback of 3415: no keyframe came") == (
        "设备没有发送视频（超时未收到关键帧），请稍后重试"
    )
    assert translate("device_offline: device 3402 is not registered") == (
        "国标设备不在线（未注册或心跳超时）"
    )
    assert translate("invite_failed: channel 3415: the device answered 486") == (
        "设备拒绝或未应答点播请求（channel 3415: the device answered 486）"
    )
    assert translate("playback of 3415 failed: broken pipe") == (
        "通道 3415 的设备录像回放失败：broken pipe"
    )
    assert translate("RecordInfo query to 3402 failed: timed out") == (
        "向设备 3402 查询录像失败：timed out"
    )
    assert translate("no GB/T 28181 channel '3415'") == (
        "未找到国标通道 3415（不存在或不在您的管辖范围内）"
    )
    assert translate("end must be after start, at most 600 s") == (
        "结束时间必须晚于开始时间，且最多 600 秒"
    )
    assert translate("end must be after start, at most 31 days") == (
        "结束时间必须晚于开始时间，且最多 31 天"
    )
    assert translate("end must be after start") == "结束时间必须晚于开始时间"
