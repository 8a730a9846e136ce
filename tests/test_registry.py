"""Camera registry: import from YAML/CSV, GB/T 28181 ids, SQL records."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from analytics.config import CameraConfig
from camera_registry.config import validate_gb28181_id
from camera_registry.importer import ImportError_, load_camera_file
from camera_registry.store import list_cameras, upsert_camera
from shaobing.db import SchemaError, head_revision, open_database

LEGACY_SQLITE = Path(__file__).parent / "fixtures" / "legacy" / "v2_sqlite.sql"


def revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


CSV = """id,name,url,onvif_host,onvif_port,username,password,county,township,village,lat,lon,programme,gb28181_id
xl-1,北门,rtsp://10.1.1.10:554/ch1,,,admin,pw-123,示例县,城关镇,北村,30.1,104.2,xueliang,34020000001320000001
tw-2,东街,,10.1.1.11,8000,admin,pw-456,示例县,城关镇,,,,tianwang,
"""


def test_gb28181_id_validation() -> None:
    assert validate_gb28181_id("34020000001320000001") == "34020000001320000001"
    with pytest.raises(ValueError, match="exactly 20 digits"):
        validate_gb28181_id("3402000000132000001")
    with pytest.raises(ValueError, match="type code 200"):
        validate_gb28181_id("34020000002000000001")  # a platform id, not a channel


def test_csv_import(tmp_path: Path) -> None:
    path = tmp_path / "cams.csv"
    path.write_text(CSV, encoding="utf-8")
    cams = load_camera_file(path, CameraConfig)
    assert [c.id for c in cams] == ["xl-1", "tw-2"]
    assert cams[0].source.url == "rtsp://10.1.1.10:554/ch1"
    assert cams[0].source.password == "pw-123"
    assert cams[0].area.village == "北村" and cams[0].lat == 30.1
    assert cams[1].source.onvif is not None and cams[1].source.onvif.port == 8000


def test_csv_import_reports_every_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "id,url,gb28181_id,lat\na1,rtsp://h/x,123,10\na2,rtps://h/x,,10\na3,rtsp://h/x,,95\n",
        encoding="utf-8",
    )
    with pytest.raises(ImportError_) as err:
        load_camera_file(path, CameraConfig)
    text = "\n".join(err.value.problems)
    assert "row 2 (id=a1): gb28181_id" in text
    assert "row 3 (id=a2): source.url" in text
    assert "row 4 (id=a3): lat" in text


def test_yaml_import_and_sql_records(tmp_path: Path) -> None:
    path = tmp_path / "cams.yaml"
    path.write_text(
        "cameras:\n"
        "  - id: v-1\n    name: 村口\n    programme: village\n"
        "    source: {url: 'rtsp://user:pw-999@10.0.0.9/live'}\n",
        encoding="utf-8",
    )
    cams = load_camera_file(path, CameraConfig)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine, sessions = open_database(url)
    with sessions.begin() as session:
        for cam in cams:
            upsert_camera(session, cam, origin="import")
    with sessions() as session:
        (rec,) = list_cameras(session)
        assert rec.source_display == "rtsp://10.0.0.9/live"  # credentials never displayed
        assert rec.config_data()["source"]["password"] == "pw-999"  # but kept to open the stream
    assert revision(engine) == head_revision()
    engine.dispose()
    # Opening the same database again keeps the records and the revision.
    engine, sessions = open_database(url)
    with sessions() as session:
        assert [r.id for r in list_cameras(session)] == ["v-1"]
    assert revision(engine) == head_revision()
    engine.dispose()


def test_cameras_dropped_from_the_config_are_removed_imports_stay(tmp_path: Path) -> None:
    from camera_registry.store import remove_stale_config_cameras

    engine, sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")

    def cam(cid: str) -> CameraConfig:
        return CameraConfig(id=cid, source={"url": f"rtsp://10.0.0.1/{cid}"})

    with sessions.begin() as session:
        upsert_camera(session, cam("a"), origin="config")
        upsert_camera(session, cam("b"), origin="config")
        upsert_camera(session, cam("c"), origin="import")
    with sessions.begin() as session:
        assert remove_stale_config_cameras(session, {"a"}) == ["b"]
    with sessions() as session:
        assert [r.id for r in list_cameras(session)] == ["a", "c"]
    engine.dispose()


def test_schema_migrates_from_version_1(tmp_path: Path) -> None:
    """Cameras of a database made before the migrations (schema version 1) are kept."""
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(LEGACY_SQLITE.read_text(encoding="utf-8"))  # made by schema version 2
    conn.executescript("ALTER TABLE alerts DROP COLUMN details_json;"
                       "UPDATE schema_version SET version = 1;")  # fmt: skip
    conn.close()
    engine, sessions = open_database(f"sqlite:///{path}")
    assert "details_json" in {c["name"] for c in inspect(engine).get_columns("alerts")}
    assert revision(engine) == head_revision()
    with sessions() as session:
        records = list_cameras(session)
        assert [r.id for r in records] == ["tw-0002", "v-0003", "xl-0001"]
        configs = [CameraConfig.model_validate(r.config_data()) for r in records]
        assert configs[2].source.password == "Xl-pw-0001" and configs[0].source.onvif
        assert session.execute(text("SELECT version FROM schema_version")).scalar() == 3
    engine.dispose()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    engine, _ = open_database(url)
    with engine.begin() as conn:  # as a later Shaobing would leave it
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(SchemaError, match="newer"):
        open_database(url)
