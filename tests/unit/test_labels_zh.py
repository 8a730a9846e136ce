"""What an operator reads is Chinese: class names, explanations built from the measured
value and threshold, and the label drawn on an annotated snapshot (a CJK font)."""

from __future__ import annotations

import numpy as np
import pytest

from alerts.evidence import annotate, label_zh
from alerts.fonts import cjk_font_path
from alerts.labels import CLASS_ZH, explain_zh
from analytics.types import COCO_CLASSES, Event


def event(**over: object) -> Event:
    fields: dict[str, object] = dict(
        camera_id="c", rule="r", type="loitering", ts=0.0, pts=0.0, track_ids=[3, 5],
        object_class="person", zone="广场", severity="low", measured=12.34, threshold=10.0,
        unit="s", explanation="person (track 3, 5) in zone '广场' for 12.3 s ≥ 10 s",
        confidence=0.9, box=(600.0, 2.0, 639.0, 100.0),
    )  # fmt: skip
    fields.update(over)
    return Event(**fields)  # type: ignore[arg-type]


def test_every_coco_class_has_a_chinese_name() -> None:
    assert set(COCO_CLASSES) <= set(CLASS_ZH)
    assert CLASS_ZH["person"] == "行人" and CLASS_ZH["car"] == "轿车"


@pytest.mark.parametrize(
    ("kind", "over", "expected"),
    [
        ("loitering", {}, "行人（目标 3, 5）在区域「广场」逗留 12.3 秒 ≥ 10 秒"),
        ("wrong_way", {"measured": 151.6, "threshold": 120.0, "unit": "°", "object_class": "car"},
         "轿车（目标 3, 5）在区域「广场」逆行：与通行方向夹角 152° ≥ 120°"),
        ("crowd", {"measured": 12, "threshold": 10, "unit": "objects"},
         "区域「广场」内 12 个行人 ≥ 10 个，人群聚集"),
        ("camera_fault", {"measured": 9.0, "threshold": 8.0, "zone": "frame", "object_class": "",
                          "track_ids": [], "details": {"fault": "scene_change"}},
         "摄像机画面偏离原视角，持续 9 秒 ≥ 8 秒"),
    ],
)  # fmt: skip
def test_explanations_state_the_measured_value_against_the_threshold(
    kind: str, over: dict[str, object], expected: str
) -> None:
    e = {**{"object_class": "person", "track_ids": [3, 5], "zone": "广场", "measured": 12.34,
            "threshold": 10.0, "unit": "s", "details": {}}, **over}  # fmt: skip
    assert explain_zh(kind, **e) == expected  # type: ignore[arg-type]


def test_the_annotated_label_is_chinese_and_inside_the_picture() -> None:
    assert label_zh(event()) == "人员逗留 行人 12.3秒"
    assert cjk_font_path() is not None, "install fonts-wqy-microhei (scripts/test.sh does)"
    image = np.zeros((360, 640, 3), np.uint8)
    out = annotate(image, event(), None, (640, 360))
    # the box touches the right edge: the label is moved left to stay whole in the picture
    red = np.argwhere((out[:, :, 2] > 200) & (out[:, :, 1] < 50))
    assert red[:, 1].max() <= 639 and red[:, 1].min() < 560  # a label wider than the box
    white = np.argwhere(out.min(axis=2) > 200)  # the glyphs
    assert len(white) > 50 and white[:, 1].max() < 640 and white[:, 0].min() >= 0
