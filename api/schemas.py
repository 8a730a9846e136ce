"""Response schemas of the REST API (separate from the storage models)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Area(BaseModel):
    county: str | None = None
    township: str | None = None
    village: str | None = None
    grid: str | None = None


class CameraStatusOut(BaseModel):
    state: str
    since: float
    last_frame_at: float | None = None
    input_fps: float = 0.0
    analysed_fps: float = 0.0
    reconnects: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    frames_decoded: int = 0
    frames_analysed: int = 0
    frames_gated: int = Field(0, description="analysed without detection (no motion)")
    frames_dropped: int = 0
    decode_errors: int = 0
    resolution: tuple[int, int] | None = None
    codec: str | None = None


class CameraOut(BaseModel):
    id: str
    name: str
    enabled: bool
    programme: str
    area: Area
    lat: float | None = None
    lon: float | None = None
    gb28181_id: str | None = None
    source: str = Field(description="source description with credentials masked")
    stream_url: str | None = Field(None, description="stream URL in use, credentials masked")
    detect_fps: float
    origin: str
    zones: list[str] = Field(default_factory=list)
    rules: list[dict[str, Any]] = Field(default_factory=list)
    counters: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="running counts by rule since start (line_crossing: a_to_b, b_to_a)",
    )
    status: CameraStatusOut | None = None


class Evidence(BaseModel):
    url: str | None = None
    sha256: str | None = None


class Delivery(BaseModel):
    target: str
    state: str
    attempts: int
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: float | None = None
    next_attempt_at: float | None = None


class AlertOut(BaseModel):
    id: str
    type: str
    rule: str
    severity: str
    status: str
    camera: dict[str, str]
    area: Area
    created_at: float
    started_at: float
    object_class: str
    track_ids: list[int]
    zone: str
    trace: dict[str, Any]
    confidence: float
    box: list[float] | None = None
    evidence: dict[str, Evidence]
    deliveries: list[Delivery] | None = None


class AlertPage(BaseModel):
    items: list[AlertOut]
    total: int
    limit: int
    offset: int


class Health(BaseModel):
    status: str
    cameras: dict[str, int]
    dispatch_pending: int
    version: str
