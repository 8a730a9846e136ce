"""Catalog changes → the camera registry (SQLite) and the status board."""

from __future__ import annotations

from pathlib import Path

from camera_registry.config import CameraBase
from camera_registry.status import StatusBoard
from camera_registry.store import CameraRecord, upsert_camera
from core.secrets import SecretCipher
from gb28181.config import SipConfig
from gb28181.manscdp import CatalogItem
from gb28181.registry import Changes
from gb28181.sync import CameraSync
from shaobing.db import open_database

DEV = "34020000001180000001"
CH1, CH2, CH3 = "34150201001310000001", "34150200001320000002", "34150201001310000003"


def test_catalog_changes_in_the_registry(tmp_path: Path) -> None:
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    cipher = SecretCipher("k" * 40)
    status = StatusBoard()
    with sessions.begin() as s:  # an operator declared CH3 by hand: never overwritten
        upsert_camera(s, CameraBase.model_validate({
            "id": f"gb-{CH3}", "name": "手工", "source": {"url": f"gb28181://{DEV}/{CH3}"}}),
            origin="config", cipher=cipher)  # fmt: skip
    sync = CameraSync(SipConfig.model_validate({"password": "p", "area_names": {
        "341502": "金安区", "34150201": "东市街道"}}), sessions, cipher, status)  # fmt: skip
    group = CatalogItem("34150200002150000001", "雪亮工程")
    sync.apply(Changes(upsert=[(DEV, CatalogItem(CH1, "东门路口", civil_code="34150201")),
                               (DEV, CatalogItem(CH2, "广场", status="OFF")),
                               (DEV, CatalogItem(CH3, "改名")), (DEV, group)],
                       online={CH1: True, CH2: False}))  # fmt: skip
    with sessions() as s:
        rows = {r.id: r for r in s.query(CameraRecord)}
        assert set(rows) == {f"gb-{CH1}", f"gb-{CH2}", f"gb-{CH3}"}  # no camera for a group
        one = rows[f"gb-{CH1}"]
        assert (one.county, one.township, one.gb28181_id, one.origin, one.enabled) == (
            "金安区", "东市街道", CH1, "gb28181", False)
        assert rows[f"gb-{CH3}"].name == "手工"
        one.enabled = True  # the operator enables it for analysis
        s.commit()
    assert status.get(f"gb-{CH2}").state == "offline"
    assert "reports it offline" in (status.get(f"gb-{CH2}").last_error or "")
    # The device goes offline, then the catalog changes: enabled stays, CH2 leaves.
    sync.apply(Changes(went_offline=[DEV], online={CH1: False}))
    assert status.get(f"gb-{CH1}").last_error == "GB/T 28181: its device is offline"
    sync.apply(Changes(upsert=[(DEV, CatalogItem(CH1, "东门路口2", civil_code="34150201"))],
                       removed=[CH2, CH3], came_online=[DEV], online={CH1: True}))  # fmt: skip
    assert status.get(f"gb-{CH1}").state == "online"
    with sessions() as s:
        rows = {r.id: r for r in s.query(CameraRecord)}
        assert set(rows) == {f"gb-{CH1}", f"gb-{CH3}"}  # CH3 was the operator's: kept
        assert rows[f"gb-{CH1}"].enabled is True and rows[f"gb-{CH1}"].name == "东门路口2"
        assert "password" not in rows[f"gb-{CH1}"].config_json or \
            '"password": null' in rows[f"gb-{CH1}"].config_json
    engine.dispose()
