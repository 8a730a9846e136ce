"""Who may see what: the area and department scope every route applies.

One place for the checks the routers share, so that a camera, an alert or a track
outside the caller's scope is a 404 (no leak that it exists) everywhere, and list
queries filter in SQL by the same rule as ``accounts.domain.sees_area`` /
``sees_alert``.
"""

from __future__ import annotations

import logging

from fastapi import HTTPException
from sqlalchemy.orm import Session

from accounts.domain import Principal, sees_alert, sees_area
from alerts import queries
from alerts.domain.model import Alert
from analytics.config import CameraConfig
from camera_registry.store import CameraRecord, invalid_config_error
from core.area import Area

log = logging.getLogger(__name__)


def record_area(record: CameraRecord) -> Area:
    return Area(
        county=record.county, township=record.township, village=record.village, grid=record.grid
    )


def visible_camera(session: Session, camera_id: str, principal: Principal) -> CameraRecord:
    """The camera, or 404 — also when it is outside the caller's area (no leak)."""
    record = session.get(CameraRecord, camera_id)
    if record is None or not sees_area(principal, record_area(record)):
        raise HTTPException(404, f"no camera {camera_id!r}")
    return record


def readable_config(record: CameraRecord) -> tuple[CameraConfig | None, str | None]:
    """(the record's config without secrets, None), or (None, why this version cannot
    read it). The API never decrypts secrets: it needs only zones and rules."""
    try:
        return CameraConfig.model_validate(record.public_config_data()), None
    except ValueError as exc:
        error = invalid_config_error(exc)
        log.warning("camera %s: %s", record.id, error)
        return None, error


def alert_scope(p: Principal) -> queries.Scope:
    """The alerts a principal sees (the SQL side of ``accounts.domain.sees_alert``)."""
    if p.role == "admin":
        return queries.Scope(everything=True)
    if p.department_id is not None:
        return queries.Scope(department_id=p.department_id, username=p.username)
    return queries.Scope(area=p.area)


def visible_alert(session: Session, alert_id: str, principal: Principal) -> Alert:
    """The alert, or 404 — also when it is outside the caller's scope (no leak)."""
    alert = queries.get_alert(session, alert_id)
    if alert is None or not sees_alert(principal, alert.area, alert.departments, alert.assignee):
        raise HTTPException(404, f"no alert {alert_id!r}")
    return alert
