"""The pure parts of the console's device and user administration (issue 23): what an
edit keeps of a stored camera (its password only for the same device), GB/T 2260 codes
of the area tree, and the explicit whole-county account."""

from __future__ import annotations

from pathlib import Path

import pytest

from accounts.domain import county_wide_problem
from analytics.config import CameraConfig
from camera_registry.areas import code_problem, parent_of
from camera_registry.edit import merge_edit
from camera_registry.importer import ImportError_, load_camera_bytes
from core.area import Area

STORED = {"id": "c1", "name": "路口", "source": {"url": "rtsp://10.0.0.5:554/main",
          "username": "admin", "password": "s3cret"},
          "zones": [{"name": "z", "points": [[0, 0], [1, 0], [1, 1]]}]}  # fmt: skip


def test_an_edit_keeps_what_it_does_not_change() -> None:
    out = merge_edit(STORED, {"name": "新名", "area": {"county": "示例县"}})
    assert out["name"] == "新名" and out["zones"] == STORED["zones"]
    assert out["source"]["password"] == "s3cret"
    with pytest.raises(ValueError, match="not editable"):
        merge_edit(STORED, {"zones": []})


def test_the_password_is_kept_for_the_same_device_only() -> None:
    same = merge_edit(STORED, {"source": {"url": "rtsp://10.0.0.5:554/sub", "username": "admin"}})
    assert same["source"]["password"] == "s3cret"
    other = merge_edit(STORED, {"source": {"url": "rtsp://203.0.113.9:554/main",
                                           "username": "admin"}})  # fmt: skip
    assert other["source"].get("password") is None
    port = merge_edit(STORED, {"source": {"url": "rtsp://10.0.0.5:8554/main"}})
    assert port["source"].get("password") is None
    given = merge_edit(STORED, {"source": {"url": "rtsp://10.0.0.5/x", "password": "new"}})
    assert given["source"]["password"] == "new"
    cleared = merge_edit(STORED, {"name": "x"}, clear_password=True)
    assert cleared["source"]["password"] is None
    assert STORED["source"]["password"] == "s3cret"  # the stored copy is untouched


def test_an_onvif_password_follows_its_host_and_port() -> None:
    stored = {"id": "o", "source": {"onvif": {"host": "10.0.0.7", "port": 80, "username": "a",
                                              "password": "p"}}}  # fmt: skip
    same = merge_edit(stored, {"source": {"onvif": {"host": "10.0.0.7", "port": 80,
                                                    "username": "a", "profile": "sub"}}})
    assert same["source"]["onvif"]["password"] == "p"
    moved = merge_edit(stored, {"source": {"onvif": {"host": "10.0.0.8", "port": 80}}})
    assert moved["source"]["onvif"].get("password") is None
    to_url = merge_edit(stored, {"source": {"url": "rtsp://10.0.0.7/main"}})
    assert to_url["source"].get("password") is None


@pytest.mark.parametrize(
    ("area", "code", "parent", "ok"),
    [
        (Area(county="县"), "510123", None, True),
        (Area(county="县"), "51012", None, False),
        (Area(county="县", township="镇"), "510123100", "510123", True),
        (Area(county="县", township="镇"), "510124100", "510123", False),  # another county's
        (Area(county="县", township="镇", village="村"), "510123100201", "510123100", True),
        (Area(county="县", township="镇", village="村"), "５１０１２３１００２０１", None, False),
        (Area(county="县", township="镇", village="村", grid="格"), "5101231002010001",
         "510123100201", True),
        (Area(county="县", township="镇"), None, "510123", True),
    ],
)  # fmt: skip
def test_gb2260_codes_by_level(area: Area, code: str | None, parent: str | None, ok: bool) -> None:
    assert (code_problem(area, code, parent) is None) == ok


def test_parent_of() -> None:
    assert parent_of(Area(county="县")) is None
    assert parent_of(Area(county="县", township="镇")) == Area(county="县")


def test_a_whole_county_account_is_explicit() -> None:
    whole = Area()
    assert "county_wide" in (county_wide_problem("operator", whole, False) or "")
    assert county_wide_problem("operator", whole, True) is None
    assert county_wide_problem("operator", Area(county="县"), False) is None
    assert county_wide_problem("operator", Area(county="县"), True) is not None
    # A department account without an area sees its department's areas, never the county.
    assert county_wide_problem("department", whole, False) is None
    assert county_wide_problem("department", whole, True) is not None


def test_an_upload_is_read_like_a_file_gbk_included() -> None:
    data = "id,name,url\ncg-1,城关镇路口,rtsp://10.0.0.5/main\n".encode("gbk")
    cams = load_camera_bytes(data, "点位.csv", CameraConfig)
    assert [(c.id, c.name) for c in cams] == [("cg-1", "城关镇路口")]
    with pytest.raises(ImportError_) as bad:
        load_camera_bytes(b"- id: x\n  source: {}\n", "list.yaml", CameraConfig)
    assert bad.value.problems[0].startswith(f"{Path('list.yaml')}: cameras[0] (id=x): source")
