"""A tiny offline base map for tests, made here (nothing from the internet): an MBTiles
file (the SQLite schema of the MBTiles 1.3 spec) or a tile folder of real PNG tiles drawn
with OpenCV — a light background, streets, blocks and the tile's z/x/y — around a point,
and a GeoJSON file of area outlines."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def tile_xy(lat: float, lon: float, z: int) -> tuple[int, int]:
    """The XYZ tile (rows from the north) holding a point."""
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def tile_png(z: int, x: int, y: int) -> bytes:
    """A 256x256 street-map-like PNG: background, blocks, streets, its address."""
    img = np.full((256, 256, 3), (236, 240, 242), np.uint8)  # BGR: light grey
    rng = np.random.default_rng(z * 1_000_003 + x * 7919 + y)
    for _ in range(6):  # blocks (buildings, green)
        x0, y0 = (int(v) for v in rng.integers(0, 220, 2))
        colour = (200, 225, 205) if rng.random() < 0.3 else (222, 222, 228)
        cv2.rectangle(img, (x0, y0), (x0 + 30, y0 + 24), colour, -1)
    for pos in (64, 192):  # streets: white with a grey edge
        cv2.line(img, (0, pos), (255, pos), (190, 190, 190), 9)
        cv2.line(img, (0, pos), (255, pos), (255, 255, 255), 6)
        cv2.line(img, (pos, 0), (pos, 255), (190, 190, 190), 9)
        cv2.line(img, (pos, 0), (pos, 255), (255, 255, 255), 6)
    cv2.putText(img, f"{z}/{x}/{y}", (8, 248), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (120, 120, 120), 1)
    ok, png = cv2.imencode(".png", img)
    assert ok
    return png.tobytes()


def tiles_around(lat: float, lon: float, zooms: range, radius: int = 2) -> list[tuple[int, ...]]:
    out = []
    for z in zooms:
        cx, cy = tile_xy(lat, lon, z)
        out += [(z, x, y) for x in range(cx - radius, cx + radius + 1)
                for y in range(cy - radius, cy + radius + 1)]  # fmt: skip
    return out


def make_mbtiles(path: Path, lat: float, lon: float, zooms: range = range(13, 17),
                 fmt: str = "png") -> list[tuple[int, ...]]:  # fmt: skip
    """An MBTiles file with PNG tiles around (lat, lon); the XYZ tiles it holds."""
    tiles = tiles_around(lat, lon, zooms)
    db = sqlite3.connect(path)
    try:
        db.executescript(
            "CREATE TABLE metadata (name TEXT, value TEXT);"
            "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER,"
            " tile_data BLOB);"
            "CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);"
        )
        meta = {"name": "示例县离线底图", "format": fmt, "type": "baselayer", "version": "1.3",
                "minzoom": str(zooms.start), "maxzoom": str(zooms.stop - 1),
                "bounds": f"{lon - 0.05},{lat - 0.05},{lon + 0.05},{lat + 0.05}",
                "attribution": "测试底图"}  # fmt: skip
        db.executemany("INSERT INTO metadata VALUES (?, ?)", meta.items())
        db.executemany(
            "INSERT INTO tiles VALUES (?, ?, ?, ?)",
            [(z, x, (1 << z) - 1 - y, tile_png(z, x, y)) for z, x, y in tiles],  # TMS rows
        )
        db.commit()
    finally:
        db.close()
    return tiles


def make_tile_folder(path: Path, lat: float, lon: float, zooms: range = range(14, 16)) -> None:
    for z, x, y in tiles_around(lat, lon, zooms, radius=1):
        (path / str(z) / str(x)).mkdir(parents=True, exist_ok=True)
        (path / str(z) / str(x) / f"{y}.png").write_bytes(tile_png(z, x, y))


def square(name: str, lat: float, lon: float, half: float) -> dict[str, Any]:
    ring = [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half],
            [lon - half, lat + half], [lon - half, lat - half]]  # fmt: skip
    return {"type": "Feature", "properties": {"name": name},
            "geometry": {"type": "Polygon", "coordinates": [ring]}}  # fmt: skip


def make_outlines(path: Path, features: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features},
                               ensure_ascii=False), encoding="utf-8")  # fmt: skip
