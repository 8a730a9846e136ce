"""What the web console needs to know about this deployment (title, map base layer), and
the hub's offline base map: tiles from map.tiles, outlines from map.areas."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response
from pydantic import BaseModel, Field

from api.deps import CurrentPrincipal, SiteDep

router = APIRouter(prefix="/api/console", tags=["console"])


class ConsoleSettings(BaseModel):
    title: str
    tile_url: str | None
    tile_attribution: str
    # A list of two, not a tuple: the tuple's schema (prefixItems) is not valid OpenAPI 3.0
    # for clients and fuzzers (issue 21).
    map_center: list[float] | None = Field(description="[lat, lon]", min_length=2, max_length=2)
    map_zoom: int
    tile_min_zoom: int | None = Field(None, description="the hub's base map (map.tiles)")
    tile_max_zoom: int | None = None
    tile_bounds: list[float] | None = Field(
        None, description="[west, south, east, north] of the tiles", min_length=4, max_length=4
    )
    areas_url: str | None = Field(None, description="the areas' outlines (GeoJSON; map.areas)")
    timezone: str = Field(
        "Asia/Shanghai",
        description="the hub's time zone (IANA name): the console shows every time in it, "
        "as the exports and statistics do, whatever the browser's own zone",
    )


@router.get("/config", response_model=ConsoleSettings, summary="The console's deployment settings")
def console_config(
    services: SiteDep,
    _: CurrentPrincipal,
) -> ConsoleSettings:
    settings = {**services.console_settings, "timezone": services.timezone}
    return ConsoleSettings.model_validate(settings)


map_router = APIRouter(prefix="/api/map", tags=["console"])


@map_router.get(
    "/tiles/{z}/{x}/{y}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}}, 404: {}},
    summary="A tile of the offline base map (map.tiles: MBTiles or a tile folder; XYZ rows)",
)
def map_tile(
    services: SiteDep,
    _: CurrentPrincipal,
    z: Annotated[int, Path(ge=0, le=22)],
    x: Annotated[int, Path(ge=0, lt=2**22)],
    y: Annotated[int, Path(ge=0, lt=2**22)],
) -> Response:
    if x >= 1 << z or y >= 1 << z:
        raise HTTPException(404, f"no map tile {z}/{x}/{y}")
    tile = services.map_tile(z, x, y)
    if tile is None:
        raise HTTPException(404, f"no map tile {z}/{x}/{y}")
    data, media_type = tile
    return Response(data, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})


@map_router.get(
    "/areas",
    summary="The areas' outlines (map.areas): a GeoJSON FeatureCollection",
    responses={200: {"content": {"application/geo+json": {}}}, 404: {}},
)
def map_areas(
    services: SiteDep,
    _: CurrentPrincipal,
) -> dict[str, Any]:
    outlines = services.map_outlines
    if outlines is None:
        raise HTTPException(404, "no area outlines configured (map.areas)")
    return outlines
