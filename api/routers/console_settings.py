"""What the web console needs to know about this deployment (title, map base layer)."""

from __future__ import annotations

from fastapi import APIRouter
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


@router.get("/config", response_model=ConsoleSettings, summary="The console's deployment settings")
def console_config(
    services: SiteDep,
    _: CurrentPrincipal,
) -> ConsoleSettings:
    return ConsoleSettings.model_validate(services.console_settings)
