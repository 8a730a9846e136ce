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
from camera_registry.store import CameraRecord, list_cameras, upsert_camera
from core.secrets import SecretCipher, SecretError
from shaobing.db import SchemaError, head_revision, open_database

LEGACY_SQLITE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy" / "v2_sqlite.sql"


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
    cipher = SecretCipher(SecretCipher.new_key())
    with sessions.begin() as session:
        for cam in cams:
            upsert_camera(session, cam, origin="import", cipher=cipher)
    with sessions() as session:
        (rec,) = list_cameras(session)
        assert rec.source_display == "rtsp://10.0.0.9/live"  # credentials never displayed
        # but kept (encrypted) to open the stream
        assert rec.config_data(cipher)["source"]["password"] == "pw-999"
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

    cipher = SecretCipher(SecretCipher.new_key())
    with sessions.begin() as session:
        upsert_camera(session, cam("a"), origin="config", cipher=cipher)
        upsert_camera(session, cam("b"), origin="config", cipher=cipher)
        upsert_camera(session, cam("c"), origin="import", cipher=cipher)
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


# -- passwords encrypted at rest ------------------------------------------------------


def test_passwords_are_encrypted_in_the_config_column(tmp_path: Path) -> None:
    """No password (source, ONVIF, or in a Dahua-style URL query) is in config_json."""
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    cipher = SecretCipher(SecretCipher.new_key())
    cams = [
        CameraConfig(id="u", source={"url": "rtsp://admin:Url-Pw-1@10.0.0.1/a"}),
        CameraConfig(id="o", source={"onvif": {"host": "10.0.0.2", "username": "admin",
                                               "password": "Onvif-Pw-2"}}),
        CameraConfig(id="q", source={"url": "rtsp://10.0.0.3/cam/realmonitor?channel=1"
                                            "&user=admin&password=Query-Pw-3"}),
    ]  # fmt: skip
    with sessions.begin() as session:
        for cam in cams:
            upsert_camera(session, cam, origin="import", cipher=cipher)
    raw = sqlite3.connect(tmp_path / "db.sqlite").execute("SELECT config_json FROM cameras")
    column = " ".join(row[0] for row in raw)
    for secret in ("Url-Pw-1", "Onvif-Pw-2", "Query-Pw-3"):
        assert secret not in column
    with sessions() as session:
        back = {r.id: CameraConfig.model_validate(r.config_data(cipher)) for r in
                list_cameras(session)}  # fmt: skip
        assert back == {c.id: c for c in cams}
        assert "Query-Pw-3" not in session.get(CameraRecord, "q").source_display  # type: ignore[union-attr]
        # Another key cannot read them: a clear error, not a crash.
        other = SecretCipher(SecretCipher.new_key())
        with pytest.raises(SecretError, match="cannot be decrypted"):
            session.get(CameraRecord, "u").config_data(other)  # type: ignore[union-attr]
    engine.dispose()


def test_sqlite_database_file_is_private(tmp_path: Path) -> None:
    import os

    path = tmp_path / "private.sqlite"
    old = os.umask(0o022)
    try:
        engine, sessions = open_database(f"sqlite:///{path}")
        with sessions.begin() as session:
            upsert_camera(session, CameraConfig(id="a", source={"url": "rtsp://h/a"}),
                          origin="config", cipher=SecretCipher(SecretCipher.new_key()))  # fmt: skip
            assert (path.stat().st_mode & 0o777) == 0o600
            wal = path.with_name(path.name + "-wal")
            assert wal.exists() and (wal.stat().st_mode & 0o777) == 0o600
        engine.dispose()
    finally:
        os.umask(old)


# -- import files: encodings, the enabled column ---------------------------------------

GBK_CSV = "id,name,url,county,township,enabled\nxl-1,城关镇人民路口,rtsp://10.1.1.10/ch1,示例县,城关镇,是\n"


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8", "utf-8-sig"])
def test_csv_import_detects_the_encoding(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "cams.csv"
    path.write_bytes(GBK_CSV.encode(encoding))
    (cam,) = load_camera_file(path, CameraConfig)
    assert cam.id == "xl-1" and cam.name == "城关镇人民路口"
    assert cam.area.township == "城关镇" and cam.enabled is True


def test_yaml_import_in_gbk(tmp_path: Path) -> None:
    path = tmp_path / "cams.yaml"
    path.write_bytes("- id: v-1\n  name: 村口东\n  area: {county: 示例县}\n"
                     "  source: {url: 'rtsp://10.0.0.9/live'}\n".encode("gbk"))  # fmt: skip
    (cam,) = load_camera_file(path, CameraConfig)
    assert cam.name == "村口东" and cam.area.county == "示例县"


def test_import_in_an_unknown_encoding_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "cams.csv"
    path.write_bytes(GBK_CSV.encode("utf-16"))  # neither UTF-8 nor GB18030
    with pytest.raises(ImportError_) as err:
        load_camera_file(path, CameraConfig)
    assert "neither UTF-8 nor GBK/GB18030" in "\n".join(err.value.problems)


def test_csv_enabled_column_accepts_only_booleans(tmp_path: Path) -> None:
    path = tmp_path / "cams.csv"
    rows = ["id,url,enabled"] + [f"c{i},rtsp://h/{i},{v}" for i, v in
            enumerate(["true", "FALSE", "1", "0", "yes", "No", "是", "否", ""])]  # fmt: skip
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    cams = load_camera_file(path, CameraConfig)
    assert [c.enabled for c in cams] == [True, False, True, False, True, False, True, False, True]
    path.write_text("id,url,enabled\nok,rtsp://h/1,yes\nbad,rtsp://h/2,maybe\n", encoding="utf-8")
    with pytest.raises(ImportError_) as err:
        load_camera_file(path, CameraConfig)
    (problem,) = err.value.problems
    assert "row 3 (id=bad): enabled:" in problem and "是" in problem
