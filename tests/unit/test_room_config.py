"""The monitoring room's settings: a camera's sub stream (source.sub_url) and the offline
base map (map.tiles: MBTiles or a tile folder; map.areas: GeoJSON outlines) — read back
as configured, and every bad value a clear error naming the file and the field."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest

from camera_registry.store import encrypt_secrets
from shaobing.basemap import MBTiles, TileFolder, load_outlines, open_basemap
from shaobing.config import ConfigError, load_config
from tests.mapdata import (
    make_mbtiles,
    make_outlines,
    make_tile_folder,
    square,
    tile_png,
    tile_xy,
)

LAT, LON = 30.6571, 104.0658


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return [str(p) for p in err.value.problems]


def camera(source: str) -> str:
    return f"cameras:\n  - id: cam-1\n    source: {source}\n"


# -- sub stream ----------------------------------------------------------------------------


def test_sub_stream_takes_the_main_streams_credentials(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, camera(
        '{url: "rtsp://admin:pw1234@10.1.2.3/Streaming/Channels/101", '
        'sub_url: "rtsp://10.1.2.3/Streaming/Channels/102"}')))  # fmt: skip
    src = loaded.config.cameras[0].source
    assert src.sub_url == "rtsp://10.1.2.3/Streaming/Channels/102"
    assert (src.username, src.password) == ("admin", "pw1234")
    # credentials written into the sub URL are taken out of it as well
    loaded = load_config(write(tmp_path, camera(
        '{url: "rtsp://10.1.2.3/101", sub_url: "rtsp://admin:pw1234@10.1.2.3/102"}')))
    src = loaded.config.cameras[0].source
    assert (src.sub_url, src.username, src.password) == ("rtsp://10.1.2.3/102", "admin", "pw1234")


@pytest.mark.parametrize(
    ("sub", "reason"),
    [
        ('"ftp://10.1.2.3/102"', "unsupported scheme 'ftp'"),
        ('"clips/sub.mp4"', "a sub stream is a network stream"),
        ('"gb28181://34020000001320000001"', "a sub stream is a network stream"),
        ('"rtsp://other:pw9@10.1.2.3/102"', "credentials differ from the main stream's"),
    ],
)
def test_a_bad_sub_stream_is_an_error_naming_the_field(
    tmp_path: Path, sub: str, reason: str
) -> None:
    found = problems(write(tmp_path, camera(
        f'{{url: "rtsp://admin:pw1234@10.1.2.3/101", sub_url: {sub}}}')))  # fmt: skip
    assert len(found) == 1 and "c.yaml: cameras[0](id=cam-1).source" in found[0], found
    assert reason in found[0]
    assert "pw1234" not in found[0] and "pw9" not in found[0]


def test_a_sub_url_holding_a_password_is_stored_encrypted() -> None:
    from core.secrets import SecretCipher

    cipher = SecretCipher(SecretCipher.new_key())
    sub = "rtsp://10.1.2.3/cam?channel=1&subtype=1&password=pw1234"
    data = {"source": {"url": "rtsp://10.1.2.3/101", "sub_url": sub}}
    stored = encrypt_secrets(data, cipher)
    assert "pw1234" not in str(stored)
    assert cipher.decrypt(stored["source"]["sub_url"]) == data["source"]["sub_url"]


# -- base map ----------------------------------------------------------------------------


def test_mbtiles_serves_xyz_tiles_from_tms_rows(tmp_path: Path) -> None:
    tiles = make_mbtiles(tmp_path / "county.mbtiles", LAT, LON, range(14, 16))
    source = MBTiles(tmp_path / "county.mbtiles")
    assert (source.info.min_zoom, source.info.max_zoom) == (14, 15)
    assert source.info.media_type == "image/png"
    assert source.info.bounds == pytest.approx((LON - 0.05, LAT - 0.05, LON + 0.05, LAT + 0.05))
    z, (x, y) = 15, tile_xy(LAT, LON, 15)
    assert (z, x, y) in tiles
    png = source.tile(z, x, y)
    assert png == tile_png(z, x, y)  # the row flipped from TMS to XYZ: the same tile
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (256, 256, 3)
    assert source.tile(15, x, y + 50) is None  # outside the file: none


def test_a_tile_folder_and_the_base_map_settings(tmp_path: Path) -> None:
    make_tile_folder(tmp_path / "tiles", LAT, LON)
    folder = TileFolder(tmp_path / "tiles")
    x, y = tile_xy(LAT, LON, 15)
    assert folder.tile(15, x, y) == tile_png(15, x, y)
    assert (folder.info.min_zoom, folder.info.max_zoom) == (14, 15)
    make_outlines(tmp_path / "areas.geojson", [square("城关镇", LAT, LON, 0.01)])
    config = write(tmp_path, "map: {tiles: tiles, areas: areas.geojson, attribution: 县底图}\n")
    loaded = load_config(config)
    basemap = open_basemap(loaded.config.map, lambda p: loaded.resolve(p, loaded.base_dir))
    assert basemap.console_settings() == {
        "areas_url": "/api/map/areas", "tile_url": "/api/map/tiles/{z}/{x}/{y}",
        "tile_attribution": "县底图", "tile_min_zoom": 14, "tile_max_zoom": 15,
        "tile_bounds": None,
    }  # fmt: skip
    assert basemap.outlines is not None
    assert basemap.outlines["features"][0]["properties"]["name"] == "城关镇"


def test_no_base_map_configured_changes_nothing(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, "data_dir: ./data\n"))
    basemap = open_basemap(loaded.config.map, lambda p: loaded.resolve(p, loaded.base_dir))
    assert basemap.console_settings() == {"areas_url": None}


def test_bad_base_map_files_are_errors_naming_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "junk.mbtiles").write_bytes(b"not a database" * 100)
    vector = tmp_path / "vector.mbtiles"
    make_mbtiles(vector, LAT, LON, range(14, 15), fmt="pbf")
    empty = tmp_path / "empty.mbtiles"
    make_mbtiles(empty, LAT, LON, range(14, 15))
    with sqlite3.connect(empty) as db:
        db.execute("DELETE FROM tiles")
    cases = {
        "missing.mbtiles": "missing.mbtiles does not exist",
        "junk.mbtiles": "is not an MBTiles file",
        "vector.mbtiles": "tile format 'pbf' is not a picture",
        "empty.mbtiles": "holds no tiles",
    }
    for name, reason in cases.items():
        found = problems(write(tmp_path, f"map: {{tiles: {name}}}\n"))
        assert len(found) == 1, found
        assert found[0].startswith(f"{tmp_path / 'c.yaml'}: map.tiles: ") and reason in found[0]
    (tmp_path / "nothing").mkdir()
    assert "no tile folders" in problems(write(tmp_path, "map: {tiles: nothing}\n"))[0]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{", "not GeoJSON"),
        ('{"type": "Feature"}', "expected a GeoJSON FeatureCollection"),
        ('{"type": "FeatureCollection", "features": []}', "has no features"),
        ('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
         '{"name": "a"}, "geometry": {"type": "Point", "coordinates": [104, 30]}}]}',
         "features[0]: geometry must be a Polygon or MultiPolygon, not Point"),
        ('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
         '"geometry": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,0]]]}}]}',
         "features[0]: properties.name (or properties.area) is missing"),
        ('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
         '{"name": "a"}, "geometry": {"type": "Polygon", "coordinates": '
         '[[[30.6,104.0],[30.7,104.0],[30.7,184.1],[30.6,104.0]]]}}]}',
         "is not [lon, lat] in degrees"),
    ],
)  # fmt: skip
def test_bad_outlines_are_errors_naming_file_and_field(
    tmp_path: Path, content: str, reason: str
) -> None:
    (tmp_path / "areas.geojson").write_text(content, encoding="utf-8")
    found = problems(write(tmp_path, "map: {areas: areas.geojson}\n"))
    assert len(found) == 1 and ": map.areas: " in found[0] and reason in found[0], found
    assert "areas.geojson" in found[0]


def test_the_base_map_is_given_once(tmp_path: Path) -> None:
    make_tile_folder(tmp_path / "tiles", LAT, LON)
    other = "api: {console: {tile_url: 'http://10.1.2.3/{z}/{x}/{y}.png'}}\n"
    found = problems(write(tmp_path, "map: {tiles: tiles}\n" + other))
    assert len(found) == 1 and "map.tiles: give the base map once" in found[0]


def test_outlines_of_a_multipolygon_with_area_paths(tmp_path: Path) -> None:
    ring = [[104.0, 30.6], [104.1, 30.6], [104.1, 30.7], [104.0, 30.6]]
    geometry = {"type": "MultiPolygon", "coordinates": [[ring], [ring]]}
    feature = {"type": "Feature", "properties": {"area": "示例县/城关镇"}, "geometry": geometry}
    make_outlines(tmp_path / "a.geojson", [feature])
    assert len(load_outlines(tmp_path / "a.geojson")["features"]) == 1
