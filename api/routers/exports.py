"""Case export: a signed zip of chosen alerts' evidence for an investigation.

The evidence is read from the evidence storage (``services.evidence``); the zip is
written to a temporary file and deleted once sent. ``keep: true`` (保全) also holds
the alerts' recordings from retention for the case.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from alerts.domain.model import Alert
from alerts.export import ExportError, write_export
from api.access import visible_alert
from api.auth import audit_request
from api.deps import AlertsDep, EvidenceExporter, SessionDep
from api.evidence import case_zip_response
from core.storage import StorageError
from recording.retention import ALERT_PAD_S, situation_start
from recording.store import RecordingHold, new_id

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/exports", tags=["evidence"])


class ExportIn(BaseModel):
    alert_ids: list[str] = Field(min_length=1, max_length=200)
    case_number: str = Field(min_length=1, max_length=64, description="案件编号")
    reason: str = Field(min_length=1, max_length=500, description="why the evidence is exported")
    keep: bool = Field(False, description="保全: the recordings of each alert's camera around "
                       "it (from its start to its latest occurrence, ±5 min) are held for the "
                       "case: recording retention never deletes them")  # fmt: skip


def hold_alert_recordings(
    session: Session, alerts: list[Alert], case_number: str, user: str
) -> None:
    """保全 for a case: each alert's recording (its camera, from its start to its latest
    occurrence, padded) held from retention (``recording_holds``)."""
    now = time.time()
    for a in alerts:
        first = situation_start(a.created_at, a.started_at)
        last = max(a.created_at, a.last_at or 0.0)
        session.add(RecordingHold(id=new_id(), camera_id=a.camera_id, start=first - ALERT_PAD_S,
                                  end=last + ALERT_PAD_S, case_number=case_number,
                                  created_by=user, created_at=now))  # fmt: skip


@router.post(
    "",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}}, 404: {}, 409: {}},
    summary="Export the evidence of alerts as a signed zip (manifest.json + manifest.sig)",
)
def export(
    body: ExportIn,
    request: Request,
    session: SessionDep,
    services: AlertsDep,
    principal: EvidenceExporter,
) -> FileResponse:
    alerts = [visible_alert(session, i, principal) for i in dict.fromkeys(body.alert_ids)]
    fd, name = tempfile.mkstemp(prefix="shaobing-export-", suffix=".zip")
    os.close(fd)
    path = Path(name)
    try:
        write_export(path, alerts, services.links.key, storage=services.evidence,
                     user=principal.username, case_number=body.case_number,
                     reason=body.reason)  # fmt: skip
    except ExportError as exc:
        path.unlink(missing_ok=True)
        raise HTTPException(409, str(exc)) from None
    except StorageError as exc:
        path.unlink(missing_ok=True)
        log.error("case export failed: %s", exc)
        raise HTTPException(503, "evidence storage unavailable") from None
    if body.keep:
        hold_alert_recordings(session, alerts, body.case_number, principal.username)
    audit_request(request, session, principal, "evidence_export", f"case:{body.case_number}",
                  f"{len(alerts)} alert(s): {', '.join(a.id for a in alerts)[:150]}; "
                  f"{'kept; ' if body.keep else ''}reason: {body.reason}")  # fmt: skip
    session.commit()
    return case_zip_response(path, body.case_number, int(time.time()))
