"""The signed feedback callback: the centre's dispatch platform or a department moves
an alert (受理 / 处置中 / 办结 / 误报). No login: the HMAC signature authenticates."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from pydantic import ValidationError

from alerts.domain.model import TransitionError
from alerts.service import AlertNotFound, DuplicateFeedback
from alerts.signing import SIGNATURE_HEADER, verify
from api.auth import audit_request
from api.deps import ServicesDep, SessionDep
from api.schemas import FeedbackIn, FeedbackOut

router = APIRouter(prefix="/api/feedback", tags=["feedback"])

SOURCE_HEADER = "X-Shaobing-Source"


@router.post(
    "",
    response_model=FeedbackOut,
    responses={
        401: {"description": "unknown source or bad signature"},
        404: {"description": "no such alert (or outside the areas/departments of the source)"},
        409: {"description": "the status is not valid for the alert's state"},
        422: {"description": "malformed body"},
    },
    summary="Signed status feedback (idempotent by message_id)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": FeedbackIn.model_json_schema()}},
        }
    },
)
async def feedback(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    source: Annotated[str | None, Header(alias=SOURCE_HEADER)] = None,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
) -> FeedbackOut:
    """Headers: ``X-Shaobing-Source: <feedback source name>`` and
    ``X-Shaobing-Signature: sha256=<hex HMAC-SHA256 of the raw body with its secret>``."""
    raw = await request.body()
    secret = services.feedback_secrets.get(source or "")
    if secret is None:
        raise HTTPException(401, f"unknown feedback source {source!r} ({SOURCE_HEADER} header)")
    if not verify(raw, secret, signature):
        raise HTTPException(401, f"bad or missing {SIGNATURE_HEADER} for source {source!r}")
    try:
        body = FeedbackIn.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise HTTPException(422, f"malformed feedback body: {exc}") from None
    assert source is not None
    alert = services.alerts.get(body.alert_id)
    scope = services.feedback_sources.get(source)
    if alert is None or (scope is not None and not scope.serves(alert.area, alert.departments)):
        # Outside the areas and departments this source serves: as if it did not exist.
        raise HTTPException(404, f"no alert {body.alert_id!r}")
    try:
        result = services.alerts.feedback(
            source, body.message_id, body.alert_id, body.status, actor=body.actor,
            note=body.note, reason=body.reason,
        )  # fmt: skip
    except DuplicateFeedback as dup:
        return FeedbackOut(**dup.result, duplicate=True)
    except AlertNotFound:
        raise HTTPException(404, f"no alert {body.alert_id!r}") from None
    except TransitionError as exc:
        raise HTTPException(409, str(exc)) from None
    audit_request(request, session, f"feedback:{source}", "alert_feedback",
                  f"alert:{body.alert_id}", f"{body.status} ({body.message_id})")  # fmt: skip
    session.commit()
    return FeedbackOut(**result)
