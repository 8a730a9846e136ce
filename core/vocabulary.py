"""The words every layer shares, defined once: alert types, severities, camera states
and the area path. ``Event``, the alert domain, the config models, the API's query
parameters and schemas use these; the console's typed client gets them from OpenAPI
(``console/src/api/schema.d.ts``), so no list is copied by hand."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field

AlertType = Literal[
    "intrusion",
    "pedestrian_on_road",
    "loitering",
    "wandering",
    "line_crossing",
    "wrong_way",
    "stopped_vehicle",
    "crowd",
    "person_down",
    "congestion",
    "camera_fault",
]
ALERT_TYPES: tuple[AlertType, ...] = get_args(AlertType)

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)

CameraState = Literal[
    "starting",
    "online",
    "offline",
    "auth_failed",
    "invalid_config",
    "finished",
    "stopped",
    "disabled",
]
CAMERA_STATES: tuple[CameraState, ...] = get_args(CameraState)

#: An administrative area as a path of names, county first: ``示例县/城关镇/东关村``.
AreaPath = Annotated[
    str,
    Field(max_length=300, description="an area path, county first: 示例县/城关镇/东关村",
          examples=["示例县/城关镇"]),
]
