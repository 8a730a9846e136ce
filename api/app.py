"""The FastAPI application: REST API over the hub (OpenAPI at /docs and /openapi.json)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from sqlalchemy import func, select

from alerts.store import OutboxRecord
from api.routers import alerts, cameras
from api.schemas import Health

if TYPE_CHECKING:
    from shaobing.hub import Hub

VERSION = "0.1.0"


def create_app(hub: Hub) -> FastAPI:
    app = FastAPI(
        title="Shaobing 哨兵",
        version=VERSION,
        description="Video-surveillance integration and analytics hub: cameras, live status, "
        "alerts with evidence.",
    )
    app.state.hub = hub
    app.include_router(cameras.router)
    app.include_router(alerts.router)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz(request: Request) -> Health:
        h: Hub = request.app.state.hub
        counts: dict[str, int] = {}
        for st in h.status.all():
            counts[st.state] = counts.get(st.state, 0) + 1
        with h.sessions() as session:
            pending = session.execute(
                select(func.count()).where(OutboxRecord.state == "pending")
            ).scalar_one()
        return Health(status="ok", cameras=counts, dispatch_pending=int(pending), version=VERSION)

    return app
