"""Alerts: search within the caller's scope, detail with history and deliveries,
evidence, lifecycle actions."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse
from starlette.responses import Response

from accounts.domain import Principal, can, may_handle, permission_for_action
from alerts import queries
from alerts.domain.model import Alert, Severity, Status, TransitionError
from alerts.labels import explain_zh
from alerts.service import AlertNotFound
from api.access import alert_scope, visible_alert
from api.auth import audit_request, current_principal
from api.deps import AlertReader, AlertsDep, EvidenceReader, SessionDep
from api.evidence import evidence_response, locate
from api.schemas import (
    ActionIn,
    AlertOut,
    AlertPage,
    Delivery,
    HistoryOut,
    OccurrenceOut,
    alert_out,
)
from core.vocabulary import AlertType

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/alerts", tags=["alerts"])



@router.get("", response_model=AlertPage, summary="Search alerts in your scope, newest first")
def list_alerts(
    session: SessionDep,
    principal: AlertReader,
    camera_id: str | None = None,
    type: AlertType | None = None,  # noqa: A002 - the users' word for it
    status: Status | None = None,
    severity: Severity | None = None,
    department_id: str | None = None,
    area: Annotated[
        str | None,
        Query(max_length=300, description="an area path: 示例县/城关镇 (its alerts, within "
              "your own scope)"),
    ] = None,
    since: Annotated[
        float | None, Query(ge=0, le=1e11, description="epoch seconds, inclusive")
    ] = None,
    until: Annotated[
        float | None, Query(ge=0, le=1e11, description="epoch seconds, exclusive")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> AlertPage:
    q = queries.AlertQuery(
        camera_id=camera_id, type=type, status=status, since=since, until=until, limit=limit,
        offset=offset, department_id=department_id, severity=severity,
        area=tuple(part for part in (area or "").split("/") if part),
    )  # fmt: skip
    alerts, total = queries.search(session, q, alert_scope(principal))
    return AlertPage(items=[alert_out(a) for a in alerts], total=total, limit=limit, offset=offset)


@router.get("/{alert_id}", response_model=AlertOut, summary="One alert, history, deliveries")
def get_alert(alert_id: str, session: SessionDep, principal: AlertReader) -> AlertOut:
    alert = visible_alert(session, alert_id, principal)
    out = alert_out(alert)
    out.history = [HistoryOut.model_validate(h, from_attributes=True)
                   for h in queries.history(session, alert_id)]  # fmt: skip
    out.deliveries = [
        Delivery(
            target=d.target,
            state=d.state,
            attempts=d.attempts,
            last_status=d.last_status,
            last_error=d.last_error,
            delivered_at=d.delivered_at,
            next_attempt_at=d.next_attempt_at if d.state == "pending" else None,
            event=d.event,
            sequence=d.seq,
        )  # fmt: skip
        for d in queries.deliveries(session, alert_id)
    ]
    base = f"/api/alerts/{alert_id}/occurrences"
    out.occurrences = [
        OccurrenceOut(
            alert_id=o.alert_id, at=o.at, track_ids=list(o.track_ids), measured=o.measured,
            explanation=o.explanation, confidence=round(o.confidence, 3),
            explanation_zh=explain_zh(alert.type, alert.object_class, o.track_ids, alert.zone,
                                      o.measured, alert.threshold, alert.unit, alert.details),
            suppressed=o.suppressed,
            snapshot_url=f"{base}/{o.alert_id}/snapshot.jpg" if "snapshot" in o.evidence
            else None,
            annotated_url=f"{base}/{o.alert_id}/snapshot.jpg?annotated=true"
            if "annotated_snapshot" in o.evidence else None,
            clip_url=f"{base}/{o.alert_id}/clip.mp4" if "clip" in o.evidence else None,
        )  # fmt: skip
        for o in queries.occurrences(session, alert_id)
    ]
    return out


@router.get(
    "/{alert_id}/occurrences/{occurrence_id}/{filename}",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}, "video/mp4": {}}}, 403: {}, 404: {}},
    summary="Evidence of one alert inside an incident: snapshot.jpg (annotated=true) or "
    "clip.mp4",
)
def get_occurrence_evidence(
    alert_id: str,
    occurrence_id: str,
    filename: Literal["snapshot.jpg", "clip.mp4"],
    request: Request,
    session: SessionDep,
    services: AlertsDep,
    principal: EvidenceReader,
    annotated: bool = False,
) -> Response:
    visible_alert(session, alert_id, principal)
    found = queries.occurrence(session, alert_id, occurrence_id)
    if found is None:
        raise HTTPException(404, f"no alert {occurrence_id!r} in incident {alert_id!r}")
    kind = "clip" if filename == "clip.mp4" else "annotated_snapshot" if annotated else "snapshot"
    ref = found.evidence.get(kind)
    stored = locate(services.evidence, ref.path if ref else None,
                    f"alert {occurrence_id!r} has no {kind} on disk")  # fmt: skip
    assert ref is not None
    if request.headers.get("range", "bytes=0-").startswith("bytes=0-"):
        audit_request(request, session, principal, "evidence_view",
                      f"alert:{alert_id}/{occurrence_id}", kind)  # fmt: skip
        session.commit()
    media = "video/mp4" if kind == "clip" else "image/jpeg"
    return evidence_response(stored, media, {"X-Content-SHA256": ref.sha256},
                             request.headers.get("range"))  # fmt: skip


@router.get(
    "/{alert_id}/history", response_model=list[HistoryOut], summary="Every change, oldest first"
)
def get_history(alert_id: str, session: SessionDep, principal: AlertReader) -> list[HistoryOut]:
    visible_alert(session, alert_id, principal)
    return [HistoryOut.model_validate(h, from_attributes=True)
            for h in queries.history(session, alert_id)]  # fmt: skip


@router.get(
    "/{alert_id}/snapshot.jpg",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 401: {}, 403: {}, 404: {}},
    summary="The alert's snapshot (annotated=true: with box and zone drawn)",
    description="Needs `evidence:read`, or a signed link (`expires` and `sig`, as sent to "
    "dispatch targets) for this alert and this file that has not expired.",
)
def get_alert_snapshot(
    alert_id: str,
    request: Request,
    session: SessionDep,
    services: AlertsDep,
    annotated: bool = False,
    expires: int | None = None,
    sig: str | None = None,
) -> Response:
    kind = "annotated_snapshot" if annotated else "snapshot"
    actor: Principal | str
    if expires is not None and sig is not None:
        if not services.links.verify(alert_id, kind, expires, sig):
            raise HTTPException(401, "evidence link invalid or expired")
        found = queries.get_alert(session, alert_id)
        if found is None:
            raise HTTPException(404, f"no alert {alert_id!r}")
        alert, actor = found, "signed-link"
    else:
        actor = current_principal(request, session)
        if not can(actor, "evidence:read"):
            raise HTTPException(403, "permission 'evidence:read' required")
        alert = visible_alert(session, alert_id, actor)
    ref = alert.evidence.get(kind)
    stored = locate(services.evidence, ref.path if ref else None,
                    f"alert {alert_id!r} has no snapshot on disk")  # fmt: skip
    assert ref is not None
    audit_request(request, session, actor, "evidence_view", f"alert:{alert_id}",
                  "annotated" if annotated else "snapshot")  # fmt: skip
    session.commit()
    return evidence_response(stored, "image/jpeg", {"X-Content-SHA256": ref.sha256},
                             request.headers.get("range"))  # fmt: skip


@router.get(
    "/{alert_id}/clip.mp4",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}}, 206: {}, 401: {}, 403: {}, 404: {}},
    summary="The alert's evidence clip (MP4, the camera's own H.264; Range requests)",
)
def get_alert_clip(
    alert_id: str,
    request: Request,
    session: SessionDep,
    services: AlertsDep,
    principal: EvidenceReader,
) -> Response:
    alert = visible_alert(session, alert_id, principal)
    ref = alert.evidence.get("clip")
    found = locate(services.evidence, ref.path if ref else None,
                   f"alert {alert_id!r} has no clip on disk")  # fmt: skip
    assert ref is not None
    # Players ask for ranges again and again: audit the first request of a viewing only.
    if request.headers.get("range", "bytes=0-").startswith("bytes=0-"):
        audit_request(request, session, principal, "evidence_view", f"alert:{alert_id}", "clip")
        session.commit()
    return evidence_response(found, "video/mp4", {"X-Content-SHA256": ref.sha256},
                             request.headers.get("range"))  # fmt: skip


@router.post(
    "/{alert_id}/actions",
    response_model=AlertOut,
    responses={403: {}, 404: {}, 409: {"description": "not valid in the alert's state"}},
    summary="Acknowledge, dispatch, start, resolve, mark false alarm or reopen",
)
def act(
    alert_id: str,
    body: ActionIn,
    request: Request,
    session: SessionDep,
    services: AlertsDep,
    principal: AlertReader,
) -> AlertOut:
    visible_alert(session, alert_id, principal)
    needed = permission_for_action(body.action)

    def check(alert: Alert) -> None:
        if not may_handle(principal, body.action, alert.departments, alert.assignee, alert.area):
            raise HTTPException(403, f"permission {needed!r} required for {body.action}")

    try:
        alert = services.alerts.transition(
            alert_id, body.action, actor=principal.username, note=body.note,
            department_id=body.department_id, assignee=body.assignee, reason=body.reason,
            check=check,
        )  # fmt: skip
    except AlertNotFound:
        raise HTTPException(404, f"no alert {alert_id!r}") from None
    except TransitionError as exc:
        raise HTTPException(409, str(exc)) from None
    audit_request(request, session, principal, "alert_" + body.action, f"alert:{alert_id}",
                  body.note or body.reason or None)  # fmt: skip
    session.commit()
    return alert_out(alert)
