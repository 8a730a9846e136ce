"""Case export: a signed zip of chosen alerts' evidence for an investigation.

The evidence is read from the evidence storage (``services.evidence``); the zip is
written to a temporary file and deleted once sent. (``api.routers.alerts`` registers the
same path before this router in ``api.app``, so that copy is the one that answers; both
read the evidence the same way.)
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from alerts.export import ExportError, write_export
from api.access import visible_alert
from api.auth import audit_request
from api.deps import AlertsDep, EvidenceExporter, SessionDep
from core.storage import StorageError

log = logging.getLogger(__name__)

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
    session: SessionDep,
    services: AlertsDep,
    principal: EvidenceExporter,
) -> FileResponse:
    alerts = [visible_alert(session, i, principal) for i in dict.fromkeys(body.alert_ids)]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", body.case_number)
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
    audit_request(request, session, principal, "evidence_export", f"case:{body.case_number}",
                  f"{len(alerts)} alert(s): {', '.join(a.id for a in alerts)[:150]}; "
                  f"reason: {body.reason}")  # fmt: skip
    session.commit()
    return FileResponse(path, media_type="application/zip",
                        filename=f"{safe}-{int(time.time())}.zip",
                        background=BackgroundTask(path.unlink, missing_ok=True))  # fmt: skip
