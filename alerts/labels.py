"""What an operator reads, in Chinese: object classes (COCO names never shown raw),
alert types, picture faults, units, and an alert's explanation built from its measured
value and threshold (the rule's own English text stays in ``trace.explanation``).

The Chinese explanation states exactly the numbers the rule fired on (``measured``
against ``threshold``), so it is as true as the trace itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: COCO class names (the detector's) in Chinese.
CLASS_ZH: dict[str, str] = {
    "person": "行人", "bicycle": "自行车", "car": "轿车", "motorcycle": "摩托车",
    "airplane": "飞机", "bus": "客车", "train": "火车", "truck": "货车", "boat": "船",
    "traffic light": "红绿灯", "fire hydrant": "消防栓", "stop sign": "停车标志",
    "parking meter": "停车计时器", "bench": "长椅", "bird": "鸟", "cat": "猫", "dog": "狗",
    "horse": "马", "sheep": "羊", "cow": "牛", "elephant": "大象", "bear": "熊", "zebra": "斑马",
    "giraffe": "长颈鹿", "backpack": "背包", "umbrella": "雨伞", "handbag": "手提包",
    "tie": "领带", "suitcase": "行李箱", "frisbee": "飞盘", "skis": "滑雪板",
    "snowboard": "单板滑雪板", "sports ball": "球", "kite": "风筝", "baseball bat": "球棒",
    "baseball glove": "棒球手套", "skateboard": "滑板", "surfboard": "冲浪板",
    "tennis racket": "网球拍", "bottle": "瓶子", "wine glass": "酒杯", "cup": "杯子",
    "fork": "叉子", "knife": "刀", "spoon": "勺子", "bowl": "碗", "banana": "香蕉",
    "apple": "苹果", "sandwich": "三明治", "orange": "橙子", "broccoli": "西兰花",
    "carrot": "胡萝卜", "hot dog": "热狗", "pizza": "披萨", "donut": "甜甜圈", "cake": "蛋糕",
    "chair": "椅子", "couch": "沙发", "potted plant": "盆栽", "bed": "床",
    "dining table": "餐桌", "toilet": "马桶", "tv": "电视", "laptop": "笔记本电脑",
    "mouse": "鼠标", "remote": "遥控器", "keyboard": "键盘", "cell phone": "手机",
    "microwave": "微波炉", "oven": "烤箱", "toaster": "烤面包机", "sink": "水槽",
    "refrigerator": "冰箱", "book": "书", "clock": "钟表", "vase": "花瓶", "scissors": "剪刀",
    "teddy bear": "玩具熊", "hair drier": "吹风机", "toothbrush": "牙刷",
}  # fmt: skip

TYPE_ZH: dict[str, str] = {
    "intrusion": "区域入侵", "loitering": "人员逗留", "wandering": "人员徘徊",
    "line_crossing": "越线", "wrong_way": "车辆逆行", "stopped_vehicle": "车辆违停",
    "pedestrian_on_road": "行人闯入道路", "person_down": "人员倒地", "congestion": "交通拥堵",
    "crowd": "人群聚集", "camera_fault": "视频质量故障",
}  # fmt: skip

FAULT_ZH: dict[str, str] = {
    "black": "黑屏", "overexposed": "过曝", "frozen": "画面冻结", "blur": "模糊",
    "occlusion": "遮挡", "colour_cast": "偏色", "scene_change": "偏离原视角", "noise": "噪声过大",
    "offline": "离线", "auth_failed": "认证失败", "disk_low": "磁盘空间不足",
}  # fmt: skip

UNIT_ZH: dict[str, str] = {
    "s": "秒", "objects": "个", "crossings": "次", "°": "°", "box lengths/s": "车身长/秒",
    "path/displacement": "",
}  # fmt: skip

#: what a presence rule's object does in its zone, per type
_PRESENCE = {
    "intrusion": "进入并停留", "loitering": "逗留", "pedestrian_on_road": "在道路上",
    "person_down": "倒地", "stopped_vehicle": "停留",
}  # fmt: skip


def class_zh(name: str) -> str:
    """A class in Chinese (an unknown class of a custom model: its own name)."""
    return CLASS_ZH.get(name, name)


def _num(v: float, digits: int = 1) -> str:
    text = f"{v:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def explain_zh(
    type: str,  # noqa: A002 - the users' word
    object_class: str,
    track_ids: Sequence[int],
    zone: str,
    measured: float,
    threshold: float,
    unit: str,
    details: Mapping[str, Any] | None = None,
) -> str:
    """The alert's explanation in Chinese, from its measured value and threshold."""
    d = details or {}
    who = class_zh(object_class) if object_class else "目标"
    ids = f"（目标 {', '.join(str(t) for t in track_ids)}）" if track_ids else ""
    where = f"区域「{zone}」" if zone and zone != "frame" else "画面"
    m, t = _num(measured), _num(threshold)
    if type == "stopped_vehicle" and d.get("patrol"):  # two patrol visits (analytics/revisit)
        return (f"{who}在{where}停留至少 {m} 秒 ≥ {t} 秒"
                "（轮巡比对：上次巡检时已停在同一位置）")  # fmt: skip
    if type in _PRESENCE and unit == "s":
        return f"{who}{ids}在{where}{_PRESENCE[type]} {m} 秒 ≥ {t} 秒"
    if type == "wandering":
        return f"{who}{ids}在{where}来回徘徊：路径长度是位移的 {m} 倍 ≥ {t} 倍"
    if type == "line_crossing":
        arrow = {"a_to_b": "A→B", "b_to_a": "B→A"}.get(str(d.get("direction", "")), "")
        return f"{who}{ids}越过检测线「{zone}」{(' ' + arrow) if arrow else ''}，该方向累计 {m} 次"
    if type == "wrong_way":
        return f"{who}{ids}在{where}逆行：与通行方向夹角 {_num(measured, 0)}° ≥ {t}°"
    if type == "crowd":
        return f"{where}内 {_num(measured, 0)} 个{who} ≥ {t} 个，人群聚集"
    if type == "congestion":
        return f"{where}车辆中位速度 {_num(measured, 2)} ≤ {t} 车身长/秒，交通拥堵"
    if type == "camera_fault" and d.get("fault") == "disk_low":  # shaobing/disk_alerts.py
        folder = "数据目录" if zone == "data_dir" else "证据目录"
        return (f"主机 {d.get('host', '')} {folder}磁盘空间不足：剩余 {m} MiB，低于下限 {t} MiB；"
                "告警暂存内存，证据和轨迹先被丢弃")  # fmt: skip
    if type == "camera_fault":
        fault = FAULT_ZH.get(str(d.get("fault", "")), "异常")
        return f"摄像机画面{fault}，持续 {_num(measured, 0)} 秒 ≥ {t} 秒"
    name = TYPE_ZH.get(type, type)
    u = UNIT_ZH.get(unit, unit)
    return f"{name}：测量值 {m}{u}，阈值 {t}{u}"
