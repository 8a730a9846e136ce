"""The offline base map (离线底图): tiles from an MBTiles file or a tile folder, and area
outlines from a GeoJSON file, both configured by the centre (``map:``) and served by the
hub (``/api/map/...``), so the console's map shows streets with no internet.

An MBTiles file (https://github.com/mapbox/mbtiles-spec) is one SQLite database: a
``tiles`` table (``zoom_level``, ``tile_column``, ``tile_row`` — counted from the south,
TMS — and ``tile_data``) and a ``metadata`` table (``format``: png, jpg or webp; ``minzoom``,
``maxzoom``, ``bounds``, ``attribution``). A tile folder holds ``{z}/{x}/{y}.png`` (or
``.jpg``/``.webp``) counted from the north, as Leaflet asks for them. Vector tiles (pbf)
are not drawn by the console and are refused.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from core.model import StrictModel

#: Raster formats a browser shows, by MBTiles ``format`` / file suffix.
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg",
               "webp": "image/webp"}  # fmt: skip
#: Largest GeoJSON file read for the outlines (the console draws it whole).
MAX_GEOJSON_BYTES = 20 * 1024 * 1024


class MapConfig(StrictModel):
    """``map:`` — the console's base map, served by the hub from local files."""

    tiles: str | None = Field(
        None,
        description="an MBTiles file (*.mbtiles) or a folder of {z}/{x}/{y}.png tiles, "
        "relative to the config file; none: api.console.tile_url, or the area outlines on a "
        "plain background",
    )
    attribution: str = Field("", max_length=200, description="shown at the map's corner")
    areas: str | None = Field(
        None,
        description="a GeoJSON FeatureCollection of the areas' outlines (Polygon or "
        "MultiPolygon; the name in properties.name, or properties.area as 示例县/城关镇); "
        "none: a box around each township's cameras",
    )


class MapError(ValueError):
    """A base map file that cannot be used; the message says what and how to fix it."""


@dataclass(frozen=True)
class TileInfo:
    media_type: str
    min_zoom: int
    max_zoom: int
    bounds: tuple[float, float, float, float] | None  # west, south, east, north


class MBTiles:
    """Read-only tiles of an MBTiles file (a connection per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self.info = self._read_info()

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            uri = f"file:{self.path}?mode=ro"
            db = self._local.db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        return db

    def _read_info(self) -> TileInfo:
        where = f"{self.path}"
        try:
            db = self._db()
            meta = dict(db.execute("SELECT name, value FROM metadata").fetchall())
            zooms = db.execute("SELECT min(zoom_level), max(zoom_level), count(*) FROM tiles")
            low, high, count = zooms.fetchone()
        except sqlite3.DatabaseError as exc:
            raise MapError(f"{where} is not an MBTiles file (SQLite with the tables metadata "
                           f"and tiles): {exc}") from None  # fmt: skip
        fmt = str(meta.get("format", "png")).lower()
        if fmt not in MEDIA_TYPES:
            raise MapError(f"{where}: tile format {fmt!r} is not a picture the console can "
                           "show (png, jpg or webp; vector tiles are not supported)")  # fmt: skip
        if not count:
            raise MapError(f"{where} holds no tiles")
        return TileInfo(MEDIA_TYPES[fmt], _int(meta.get("minzoom"), low),
                        _int(meta.get("maxzoom"), high), _bounds(meta.get("bounds")))  # fmt: skip

    def tile(self, z: int, x: int, y: int) -> bytes | None:
        query = "SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?"
        row = self._db().execute(query, (z, x, (1 << z) - 1 - y)).fetchone()  # rows: TMS, south
        return bytes(row[0]) if row else None


class TileFolder:
    """Tiles as files ``{z}/{x}/{y}.<suffix>`` (XYZ, rows from the north)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        zooms = sorted(int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit())
        if not zooms:
            raise MapError(f"{path}: no tile folders {{z}}/{{x}}/{{y}}.png in it")
        suffix = next((s for s in MEDIA_TYPES for _ in (path / str(zooms[0])).glob(f"*/*.{s}")),
                      None)  # fmt: skip
        if suffix is None:
            raise MapError(f"{path}/{zooms[0]}: no .png, .jpg or .webp tiles in {{x}}/ folders")
        self.suffix = suffix
        self.info = TileInfo(MEDIA_TYPES[suffix], zooms[0], zooms[-1], None)

    def tile(self, z: int, x: int, y: int) -> bytes | None:
        try:
            return (self.path / str(z) / str(x) / f"{y}.{self.suffix}").read_bytes()
        except OSError:
            return None


TileSource = MBTiles | TileFolder


def open_tiles(path: Path) -> TileSource:
    """The tile source at ``path`` (MapError naming the file and the problem)."""
    if path.is_dir():
        return TileFolder(path)
    if not path.is_file():
        raise MapError(f"{path} does not exist (an .mbtiles file or a tile folder)")
    return MBTiles(path)


def load_outlines(path: Path) -> dict[str, Any]:
    """The areas' outlines: a GeoJSON FeatureCollection of named polygons, checked."""
    try:
        if path.stat().st_size > MAX_GEOJSON_BYTES:
            raise MapError(f"{path}: larger than {MAX_GEOJSON_BYTES >> 20} MiB; simplify it")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MapError(f"{path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MapError(f"{path}: not GeoJSON (UTF-8 JSON): {exc}") from None
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise MapError(f"{path}: expected a GeoJSON FeatureCollection")
    features = data.get("features")
    if not isinstance(features, list) or not features:
        raise MapError(f"{path}: the FeatureCollection has no features")
    for i, feature in enumerate(features):
        where = f"{path}: features[{i}]"
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        kind = geometry.get("type") if isinstance(geometry, dict) else None
        if kind not in ("Polygon", "MultiPolygon"):
            raise MapError(f"{where}: geometry must be a Polygon or MultiPolygon, not {kind}")
        props = feature.get("properties") or {}
        name = props.get("name") or props.get("area") if isinstance(props, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise MapError(f"{where}: properties.name (or properties.area) is missing")
        _check_rings(geometry.get("coordinates") if isinstance(geometry, dict) else None,
                     kind, where)  # fmt: skip
    return data


def _check_rings(coords: Any, kind: str, where: str) -> None:
    polygons = [coords] if kind == "Polygon" else coords
    try:
        for polygon in polygons:
            for ring in polygon:
                if len(ring) < 4:
                    raise MapError(f"{where}: a ring has fewer than 4 positions")
                for lon, lat, *_ in ring:
                    if not (-180 <= float(lon) <= 180 and -90 <= float(lat) <= 90):
                        raise MapError(f"{where}: position [{lon}, {lat}] is not [lon, lat] in "
                                       "degrees (WGS 84)")  # fmt: skip
    except (TypeError, ValueError) as exc:
        if isinstance(exc, MapError):
            raise
        raise MapError(f"{where}: coordinates are not [[[lon, lat], ...]] rings") from None


def _int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except ValueError:
        return default


def _bounds(value: object) -> tuple[float, float, float, float] | None:
    try:
        west, south, east, north = (float(v) for v in str(value).split(","))
    except ValueError:
        return None
    return west, south, east, north


@dataclass
class BaseMap:
    """What ``map:`` configured, opened: tiles (or None) and outlines (or None)."""

    config: MapConfig
    tiles: TileSource | None
    outlines: dict[str, Any] | None

    def console_settings(self) -> dict[str, Any]:
        """The console's view of it (merged into /api/console/config)."""
        info = self.tiles.info if self.tiles is not None else None
        out: dict[str, Any] = {"areas_url": "/api/map/areas" if self.outlines else None}
        if info is not None:
            out |= {"tile_url": "/api/map/tiles/{z}/{x}/{y}",
                    "tile_attribution": self.config.attribution,
                    "tile_min_zoom": info.min_zoom, "tile_max_zoom": info.max_zoom,
                    "tile_bounds": list(info.bounds) if info.bounds else None}  # fmt: skip
        return out


def open_basemap(config: MapConfig, resolve: Any) -> BaseMap:
    """Open the configured files (``resolve``: a path relative to the config file);
    MapError with the file and the problem."""
    tiles = open_tiles(resolve(config.tiles)) if config.tiles else None
    outlines = load_outlines(resolve(config.areas)) if config.areas else None
    return BaseMap(config, tiles, outlines)
