"""A camera's zones, rules, motion gate and detection settings: read, and change without a
restart (the console's editor). Validated by the same models as the YAML config; audited."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from analytics.config import CameraConfig, DetectConfig, MotionConfig, RuleConfig, ZoneConfig
from api.access import readable_config, visible_camera
from api.deps import AnalyticsDep, CameraConfigurer, CameraReader, SessionDep
from camera_registry.store import analytics_override

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/cameras", tags=["cameras"])



class CameraAnalyticsIn(BaseModel):
    """What the editor saves: the same fields as a camera's ``zones``, ``rules``,
    ``motion`` and ``detect`` in the YAML config."""

    zones: list[ZoneConfig] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    detect: DetectConfig | None = Field(
        None,
        description="where the detector looks and which tracks the rules see (region "
        "detection, tiles, false-positive filters); left out: the camera keeps its own",
    )


class CameraAnalyticsOut(CameraAnalyticsIn):
    detect: DetectConfig  # type: ignore[assignment]  # always answered
    source: Literal["config", "console"] = Field(
        description="config: as in the config file or import; console: saved in the console"
    )
    updated_by: str | None = None
    updated_at: float | None = None


@router.get(
    "/{camera_id}/analytics",
    response_model=CameraAnalyticsOut,
    summary="A camera's zones, rules, motion gate and detection settings",
)
def get_analytics(
    camera_id: str, session: SessionDep, principal: CameraReader
) -> CameraAnalyticsOut:
    record = visible_camera(session, camera_id, principal)
    cam, error = readable_config(record)
    if cam is None:
        raise HTTPException(409, error)
    override = analytics_override(session, camera_id)
    if override is not None:
        try:
            cam = CameraConfig.model_validate({**record.public_config_data(), **override.data()})
        except ValueError:
            override = None  # the hub runs the config's (it logged why)
    return CameraAnalyticsOut(
        zones=cam.zones,
        rules=cam.rules,
        motion=cam.motion,
        detect=cam.detect,
        source="console" if override is not None else "config",
        updated_by=override.updated_by if override is not None else None,
        updated_at=override.updated_at if override is not None else None,
    )


@router.put(
    "/{camera_id}/analytics",
    response_model=CameraAnalyticsOut,
    responses={422: {"description": "invalid zones or rules (field paths in `detail`)"}},
    summary="Change a camera's zones, rules, motion gate and detection settings; applied "
    "at once, audited",
)
def put_analytics(
    camera_id: str,
    body: CameraAnalyticsIn,
    hub: AnalyticsDep,
    session: SessionDep,
    principal: CameraConfigurer,
) -> CameraAnalyticsOut:
    visible_camera(session, camera_id, principal)
    data = body.model_dump(mode="json", exclude_unset=False)
    if body.detect is None:  # left out (the zone editor): detection stays as it is
        del data["detect"]
        previous = analytics_override(session, camera_id)
        if previous is not None and "detect" in previous.data():
            data["detect"] = previous.data()["detect"]
    session.close()  # the hub writes in its own transaction
    try:
        cam = hub.update_camera_analytics(camera_id, data, principal.username)
    except KeyError:
        raise HTTPException(404, f"no camera {camera_id!r}") from None
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {**e, "loc": ("body", *e["loc"])}
                for e in exc.errors(include_url=False, include_context=False, include_input=False)
            ]
        ) from None
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    log.info("camera %s: %d zone(s), %d rule(s) saved", camera_id, len(cam.zones), len(cam.rules))
    return get_analytics(camera_id, session, principal)
