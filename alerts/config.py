"""Configuration models for alerts and dispatch targets."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

TARGET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DispatchTarget(Strict):
    """An HTTP endpoint that receives alerts (the governance centre's dispatch API)."""

    name: str = Field(pattern=TARGET_NAME_RE.pattern)
    url: HttpUrl
    secret: str | None = Field(
        None, repr=False, description="HMAC-SHA256 key for the X-Shaobing-Signature header"
    )
    enabled: bool = True
    timeout_s: float = Field(5.0, gt=0, le=120)
    backoff_initial_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(300.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    types: list[str] | None = Field(None, description="only these alert types; default: all")


class AlertsConfig(Strict):
    cooldown_s: float = Field(
        60.0, ge=0, description="per (camera, rule, track): no second alert within this time"
    )
    snapshot_dir: str | None = Field(None, description="default: <data_dir>/snapshots")
    jpeg_quality: int = Field(85, ge=10, le=100)
    camera_offline_s: float | None = Field(
        120.0, gt=0, description="alert camera_fault when a camera stays offline this long"
    )
