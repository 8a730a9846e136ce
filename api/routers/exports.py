"""Case export: a signed zip of chosen alerts' evidence for an investigation."""

from __future__ import annotations

import re
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from accounts.domain import Principal
from alerts.export import ExportError, write_export
from api.auth import audit_request, require
from api.deps import get_services, get_session
from api.ports import HubServices
from api.routers.alerts import visible_alert

router = APIRouter(prefix="/api/exports", tags=["evidence"])


class ExportIn(BaseModel):
    alert_ids: list[str] = Field(min_length=1, max_length=200)
    case_number: str = Field(min_length=1, max_length=64, description="案件编号")
    reason: str = Field(min_length=1, max_length=500, description="why the evidence is exported")


@router.post(
    "",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}}, 404: {}, 409: {}},
    summary="Export the evidence of alerts as a signed zip (manifest.json + manifest.sig)",
)
def export(
    body: ExportIn,
    request: Request,
    session: Annotated[Session, Depends(get_session)],
    services: Annotated[HubServices, Depends(get_services)],
    principal: Annotated[Principal, Depends(require("evidence:export"))],
) -> FileResponse:
    alerts = [visible_alert(session, alert_id, principal) for alert_id in body.alert_ids]
    folder = services.snapshot_dir.parent / "exports"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", body.case_number)
    path = folder / f"{safe}-{int(time.time())}.zip"
    try:
        write_export(path, alerts, services.links.key, user=principal.username,
                     case_number=body.case_number, reason=body.reason)  # fmt: skip
    except ExportError as exc:
        raise HTTPException(409, str(exc)) from None
    audit_request(request, session, principal, "evidence_export", f"case:{body.case_number}",
                  f"{len(alerts)} alert(s): {', '.join(body.alert_ids)[:150]}")  # fmt: skip
    session.commit()
    return FileResponse(path, media_type="application/zip", filename=path.name)
