"""A workbook holds whatever a caller put in its cells: control characters are dropped."""

from __future__ import annotations

import io

import openpyxl

from core.xlsx import workbook


def test_control_characters_are_dropped_not_a_crash() -> None:
    data = workbook([("区域\x08", ["区域\x00名称", "数量"], [["示例县/城关镇\x08", 3]])])
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    assert sheet.title == "区域"
    assert [c.value for c in sheet[1]] == ["区域名称", "数量"]
    assert [c.value for c in sheet[2]] == ["示例县/城关镇", 3]
