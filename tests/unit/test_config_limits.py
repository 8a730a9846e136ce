"""Config and import limits (issue 21): values that were accepted and failed later, or
exhausted the hub while read, are refused at load with ``file: field: reason``."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from analytics.config import CameraConfig
from camera_registry.importer import ImportError_, load_camera_file
from core.limits import MAX_DEPTH, MAX_POINTS, limit_problems
from shaobing.config import ConfigError, load_config

SQUARE = "[[0, 0], [1, 0], [1, 1], [0, 1]]"


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "hub.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return [str(p) for p in err.value.problems]


def camera(zone_points: str = SQUARE, name: str = "北门") -> str:
    return f"""
cameras:
  - id: cam-1
    name: "{name}"
    source: {{url: "rtsp://127.0.0.1:9/x"}}
    zones: [{{name: all, points: {zone_points}}}]
"""


def test_nan_and_infinite_zone_points_are_refused(tmp_path: Path) -> None:
    for value in (".nan", ".inf", "-.inf"):
        found = problems_of(tmp_path, camera(f"[[0, 0], [1, {value}], [1, 1]]"))
        assert any("cameras[0].zones[0].points[1][1]: not a finite number" in p
                   for p in found), found  # fmt: skip
        assert all(p.startswith(str(tmp_path / "hub.yaml") + ": ") for p in found)


def test_a_zone_of_too_many_points_is_refused(tmp_path: Path) -> None:
    points = "[" + ", ".join(f"[{i / 20000}, 0.5]" for i in range(MAX_POINTS + 1)) + "]"
    found = problems_of(tmp_path, camera(points))
    assert any(f"points: {MAX_POINTS + 1} points, at most {MAX_POINTS}" in p for p in found)


def test_control_characters_and_header_line_breaks_are_refused(tmp_path: Path) -> None:
    found = problems_of(tmp_path, camera(name="北\\0门"))
    assert any("cameras[0].name: control character U+0000" in p for p in found), found
    found = problems_of(tmp_path, """
dispatch:
  - name: centre
    url: http://127.0.0.1:9/in
    unsigned: true
    headers: {X-Team: "a\\r\\nX-Injected: 1"}
""")
    assert any("dispatch[0].headers.X-Team: line breaks (CR/LF) not allowed" in p
               for p in found), found  # fmt: skip


def test_yaml_alias_bombs_and_deep_nesting_are_refused_not_expanded(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")
    found = problems_of(tmp_path, "x-bomb:\n" + "\n".join("  " + line for line in lines))
    assert any("more than 1000000 values once YAML aliases are expanded" in p for p in found)

    found = problems_of(tmp_path, "cameras: " + "[" * 40 + "]" * 40)
    assert any(f"nested deeper than {MAX_DEPTH} levels" in p for p in found), found
    found = problems_of(tmp_path, "x: " + "[" * 5000 + "]" * 5000)  # the YAML parser's own limit
    assert any("nested" in p for p in found), found


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    found = problems_of(tmp_path, "x: &a [1, *a]")
    assert any("refers to itself" in p for p in found), found


def test_data_dir_pointing_at_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("x", encoding="utf-8")
    found = problems_of(tmp_path, "data_dir: not-a-folder\n")
    assert found == [f"{tmp_path / 'hub.yaml'}: data_dir: {tmp_path / 'not-a-folder'} is a file, "
                     "not a folder"]  # fmt: skip


def test_a_sane_config_has_no_limit_problem() -> None:
    data = {"cameras": [{"id": "c", "zones": [{"name": "z", "points": [[0.0, 0.0]] * 5000}],
                         "notes": "line one\nline two\twith a tab"}]}  # fmt: skip
    assert limit_problems(data) == []


def test_camera_imports_refuse_huge_csv_fields_and_bombs(tmp_path: Path) -> None:
    big = tmp_path / "cams.csv"
    big.write_text("id,name,url\ncam-1,\"" + "x" * (csv.field_size_limit() + 10) + "\",rtsp://h/x\n",
                   encoding="utf-8")  # fmt: skip
    with pytest.raises(ImportError_) as err:
        load_camera_file(big, CameraConfig)
    assert "invalid CSV" in str(err.value) and "field larger than field limit" in str(err.value)
    nested = tmp_path / "cams.yaml"
    nested.write_text("- " + "[" * 5000 + "]" * 5000, encoding="utf-8")
    with pytest.raises(ImportError_) as err:
        load_camera_file(nested, CameraConfig)
    assert "nested" in str(err.value)
    nan = tmp_path / "nan.yaml"
    nan.write_text("- {id: cam-1, source: {url: 'rtsp://h/x'}, zones: [{name: z, points: "
                   "[[0, .nan], [1, 1], [0, 1]]}]}", encoding="utf-8")  # fmt: skip
    with pytest.raises(ImportError_) as err:
        load_camera_file(nan, CameraConfig)
    assert "[0].zones[0].points[0][1]: not a finite number" in str(err.value)
