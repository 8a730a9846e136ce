"""Alerts: search with filters and paging, detail, evidence snapshots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from alerts.store import (
    ALERT_STATUSES,
    AlertQuery,
    AlertRecord,
    alert_payload,
    deliveries,
    query_alerts,
)
from api.deps import get_session
from api.schemas import AlertOut, AlertPage, Delivery

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

SessionDep = Annotated[Session, Depends(get_session)]


def alert_out(record: AlertRecord, session: Session | None = None) -> AlertOut:
    out = AlertOut.model_validate(alert_payload(record))
    if session is not None:
        out.deliveries = [
            Delivery(
                target=d.target,
                state=d.state,
                attempts=d.attempts,
                last_status=d.last_status,
                last_error=d.last_error,
                delivered_at=d.delivered_at,
                next_attempt_at=d.next_attempt_at if d.state == "pending" else None,
            )
            for d in deliveries(session, record.id)
        ]
    return out


@router.get("", response_model=AlertPage, summary="Search alerts, newest first")
def list_alerts(
    session: SessionDep,
    camera_id: str | None = None,
    type: str | None = None,  # noqa: A002 - the users' word for it
    status: Annotated[str | None, Query(description=f"one of {', '.join(ALERT_STATUSES)}")] = None,
    since: Annotated[float | None, Query(description="epoch seconds, inclusive")] = None,
    until: Annotated[float | None, Query(description="epoch seconds, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AlertPage:
    if status is not None and status not in ALERT_STATUSES:
        raise HTTPException(422, f"status must be one of {', '.join(ALERT_STATUSES)}")
    rows, total = query_alerts(
        session, AlertQuery(camera_id, type, status, since, until, limit, offset)
    )
    return AlertPage(items=[alert_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{alert_id}", response_model=AlertOut, summary="One alert with its deliveries")
def get_alert(alert_id: str, session: SessionDep) -> AlertOut:
    record = session.get(AlertRecord, alert_id)
    if record is None:
        raise HTTPException(404, f"no alert {alert_id!r}")
    return alert_out(record, session)


@router.get(
    "/{alert_id}/snapshot.jpg",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {}},
    summary="The alert's snapshot (annotated=true: with box and zone drawn)",
)
def get_alert_snapshot(alert_id: str, session: SessionDep, annotated: bool = False) -> FileResponse:
    record = session.get(AlertRecord, alert_id)
    if record is None:
        raise HTTPException(404, f"no alert {alert_id!r}")
    path = record.annotated_path if annotated else record.snapshot_path
    sha = record.annotated_sha256 if annotated else record.snapshot_sha256
    if not path or not Path(path).is_file():
        raise HTTPException(404, f"alert {alert_id!r} has no snapshot on disk")
    return FileResponse(path, media_type="image/jpeg", headers={"X-Content-SHA256": sha or ""})
