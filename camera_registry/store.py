"""SQL-backed camera records."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Boolean, Float, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from camera_registry.config import CameraBase
from camera_registry.urls import mask_url
from core.db import Base


class CameraRecord(Base):
    __tablename__ = "cameras"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    programme: Mapped[str] = mapped_column(String(32), default="other")
    county: Mapped[str | None] = mapped_column(String(64), index=True)
    township: Mapped[str | None] = mapped_column(String(64), index=True)
    village: Mapped[str | None] = mapped_column(String(64))
    grid: Mapped[str | None] = mapped_column(String(64))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    gb28181_id: Mapped[str | None] = mapped_column(String(20), index=True)
    source_kind: Mapped[str] = mapped_column(String(16))  # url | onvif
    source_display: Mapped[str] = mapped_column(String(500))  # never holds credentials
    resolved_url: Mapped[str | None] = mapped_column(String(500))  # from ONVIF, no credentials
    detect_fps: Mapped[float] = mapped_column(Float, default=5.0)
    origin: Mapped[str] = mapped_column(String(16), default="config")  # config | import | api
    # The validated camera config, credentials included: never returned by the API.
    config_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    updated_at: Mapped[float] = mapped_column(Float, default=time.time)

    def config_data(self) -> dict[str, Any]:
        """The stored camera config (credentials included): validate it with the model
        of the layer that needs it (``analytics.config.CameraConfig`` for the hub)."""
        data: dict[str, Any] = json.loads(self.config_json)
        return data


def source_display(cam: CameraBase) -> tuple[str, str]:
    """(kind, credential-free description) of a camera's source."""
    if cam.source.onvif is not None:
        return "onvif", f"onvif://{cam.source.onvif.host}:{cam.source.onvif.port}"
    assert cam.source.url is not None
    return "url", mask_url(cam.source.url)


def upsert_camera(session: Session, cam: CameraBase, *, origin: str) -> CameraRecord:
    """Insert or update one camera from its validated config."""
    record = session.get(CameraRecord, cam.id)
    now = time.time()
    if record is None:
        record = CameraRecord(id=cam.id, created_at=now)
        session.add(record)
    kind, display = source_display(cam)
    values: dict[str, Any] = dict(
        name=cam.name or cam.id,
        enabled=cam.enabled,
        programme=cam.programme,
        county=cam.area.county,
        township=cam.area.township,
        village=cam.area.village,
        grid=cam.area.grid,
        lat=cam.lat,
        lon=cam.lon,
        gb28181_id=cam.gb28181_id,
        source_kind=kind,
        source_display=display,
        detect_fps=cam.detect_fps,
        origin=origin,
        config_json=cam.model_dump_json(),
        updated_at=now,
    )
    for key, value in values.items():
        setattr(record, key, value)
    return record


def list_cameras(session: Session, *, enabled_only: bool = False) -> list[CameraRecord]:
    stmt = select(CameraRecord).order_by(CameraRecord.id)
    if enabled_only:
        stmt = stmt.where(CameraRecord.enabled.is_(True))
    return list(session.execute(stmt).scalars())


def set_resolved_url(session: Session, camera_id: str, url: str | None) -> None:
    record = session.get(CameraRecord, camera_id)
    if record is not None:
        record.resolved_url = mask_url(url) if url else None
        record.updated_at = time.time()


def remove_stale_config_cameras(session: Session, keep: set[str]) -> list[str]:
    """Delete cameras that came from the config file but are no longer in it.

    Imported cameras (origin ``import``/``api``) are left alone.
    """
    stale = [
        r for r in session.execute(select(CameraRecord).where(CameraRecord.origin == "config"))
        .scalars() if r.id not in keep
    ]  # fmt: skip
    for record in stale:
        session.delete(record)
    return [r.id for r in stale]
