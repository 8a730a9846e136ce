"""Deliveries: the dispatch outbox — dead letters and pending messages, retry, discard."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from accounts.domain import Principal, sees_alert
from alerts import queries
from alerts.adapters.sql import AlertRecord, OutboxRecord
from api.access import alert_scope
from api.auth import audit_request
from api.deps import DispatchManager, SessionDep

router = APIRouter(prefix="/api/deliveries", tags=["deliveries"])


#: An outbox row id: a 32-bit integer column (a larger number is a 422, not a 500).
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]

ListedState = Literal["dead", "pending", "delivered", "discarded", "cancelled"]


class DeliveryOut(BaseModel):
    """One message for one target (an outbox row)."""

    id: int
    alert_id: str
    target: str
    event: str
    sequence: int
    idempotency_key: str | None
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: float
    next_attempt_at: float
    delivered_at: float | None
    dead_at: float | None
    dead_reason: str | None
    lease_owner: str | None = Field(description="the dispatcher sending it now, if any")


class DeliveryPage(BaseModel):
    total: int
    items: list[DeliveryOut]


def delivery_out(r: OutboxRecord) -> DeliveryOut:
    return DeliveryOut(
        id=r.id, alert_id=r.alert_id, target=r.target, event=r.event, sequence=r.seq,
        idempotency_key=r.idempotency_key, state=r.state, attempts=r.attempts,
        last_status=r.last_status, last_error=r.last_error, created_at=r.created_at,
        next_attempt_at=r.next_attempt_at, delivered_at=r.delivered_at, dead_at=r.dead_at,
        dead_reason=r.dead_reason, lease_owner=r.lease_owner,
    )  # fmt: skip


@router.get("", response_model=DeliveryPage, summary="List deliveries (dead letters first)")
def list_deliveries(
    session: SessionDep,
    principal: DispatchManager,
    state: ListedState = "dead",
    target: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> DeliveryPage:
    # In scope: the deliveries of the alerts the caller sees (the alerts' own rule).
    visible = queries.scoped(select(AlertRecord.id), alert_scope(principal))  # type: ignore[arg-type]
    where = [OutboxRecord.state == state, OutboxRecord.alert_id.in_(visible)]
    if target is not None:
        where.append(OutboxRecord.target == target)
    total = session.execute(select(func.count()).select_from(OutboxRecord).where(*where))
    rows = session.execute(
        select(OutboxRecord).where(*where).order_by(OutboxRecord.id.desc()).limit(limit)
        .offset(offset)
    ).scalars()  # fmt: skip
    return DeliveryPage(total=total.scalar_one(), items=[delivery_out(r) for r in rows])


def dead_row(session: Session, delivery_id: int, principal: Principal) -> OutboxRecord:
    """The row, which must be dead (409 otherwise: only dead letters are acted on) and
    of an alert the caller sees (404 otherwise, as if it did not exist)."""
    row = session.get(OutboxRecord, delivery_id)
    alert = None if row is None else queries.get_alert(session, row.alert_id)
    if row is None or alert is None or not sees_alert(
        principal, alert.area, alert.departments, alert.assignee
    ):
        raise HTTPException(404, f"no delivery {delivery_id}")
    if row.state != "dead":
        raise HTTPException(409, f"delivery {delivery_id} is {row.state}, not dead")
    return row


@router.post("/{delivery_id}/retry", response_model=DeliveryOut, summary="Send a dead letter again")
def retry_delivery(
    delivery_id: RowId, request: Request, session: SessionDep, principal: DispatchManager
) -> DeliveryOut:
    row = dead_row(session, delivery_id, principal)
    # A fresh start: the target's max_attempts counts again from zero.
    row.state, row.attempts, row.next_attempt_at = "pending", 0, time.time()
    row.dead_at = row.dead_reason = row.lease_owner = row.lease_until = None
    audit_request(request, session, principal, "delivery_retry", f"delivery:{delivery_id}")
    session.commit()
    return delivery_out(row)


@router.post("/{delivery_id}/discard", response_model=DeliveryOut, summary="Give up a dead letter")
def discard_delivery(
    delivery_id: RowId, request: Request, session: SessionDep, principal: DispatchManager
) -> DeliveryOut:
    row = dead_row(session, delivery_id, principal)
    row.state = "discarded"
    audit_request(request, session, principal, "delivery_discard", f"delivery:{delivery_id}")
    session.commit()
    return delivery_out(row)
