"""Configuration models for analytics: detector, zones, rules."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from analytics.types import COCO_CLASSES


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DetectorConfig(Strict):
    backend: Literal["onnx", "ultralytics"] = "onnx"
    model: str = Field(
        "yolox_nano.onnx",
        description="path, or a known model name looked up in models_dir / mirror_dir",
    )
    models_dir: str | None = Field(None, description="default: <data_dir>/models")
    mirror_dir: str | None = Field(None, description="local directory holding model files")
    sha256: str | None = Field(None, description="expected SHA-256 of the model file")
    input_size: tuple[int, int] | None = Field(
        None, description="(width, height); default: model's"
    )
    device: str = "cpu"
    confidence: float = Field(0.3, ge=0.01, le=1.0)
    nms_iou: float = Field(0.45, gt=0.0, le=1.0)
    threads: int = Field(1, ge=1, le=64, description="intra-op threads per inference session")
    workers: int = Field(2, ge=1, le=64, description="analysis threads (one session each)")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v != "cpu" and not v.startswith("cuda"):
            raise ValueError("must be 'cpu', 'cuda' or 'cuda:N'")
        return v


Point = tuple[float, float]


class ZoneConfig(Strict):
    name: str = Field(min_length=1)
    points: list[Point] = Field(min_length=3)
    coordinates: Literal["auto", "normalized", "pixels"] = Field(
        "auto",
        description="normalized: 0..1 of width/height (survives a resolution change); "
        "pixels: of the camera's native resolution; auto: normalized if all values <= 1",
    )

    @model_validator(mode="after")
    def _check(self) -> ZoneConfig:
        if self.resolved_coordinates() == "normalized":
            for x, y in self.points:
                if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                    raise ValueError(f"normalized point ({x}, {y}) is outside 0..1")
        return self

    def resolved_coordinates(self) -> str:
        if self.coordinates != "auto":
            return self.coordinates
        return "normalized" if all(x <= 1.0 and y <= 1.0 for x, y in self.points) else "pixels"


Severity = Literal["info", "low", "medium", "high", "critical"]


class RuleBase(Strict):
    name: str = Field(min_length=1)
    zone: str | None = Field(None, description="zone name; default: the whole frame")
    min_confidence: float = Field(0.0, ge=0.0, le=1.0)
    cooldown_s: float | None = Field(None, ge=0, description="default: alerts.cooldown_s")
    severity: Severity = "medium"
    enabled: bool = True


def _check_classes(classes: list[str]) -> list[str]:
    unknown = [c for c in classes if c not in COCO_CLASSES]
    if unknown:
        raise ValueError(f"unknown class(es) {unknown}; use COCO names such as person, car")
    return classes


class IntrusionRule(RuleBase):
    type: Literal["intrusion"]
    classes: list[str] = Field(default_factory=lambda: ["person"])
    min_duration_s: float = Field(0.0, ge=0, description="seconds inside before it fires")
    grace_s: float = Field(2.0, ge=0, description="absence tolerated before the clock resets")

    _classes = field_validator("classes")(_check_classes)


class LoiteringRule(RuleBase):
    type: Literal["loitering"]
    classes: list[str] = Field(default_factory=lambda: ["person"])
    min_duration_s: float = Field(300.0, gt=0, description="dwell time that makes loitering")
    grace_s: float = Field(
        5.0,
        ge=0,
        description="a short occlusion or a new track id near the old one within this "
        "time keeps the dwell clock running",
    )
    severity: Severity = "low"

    _classes = field_validator("classes")(_check_classes)


RuleConfig = Annotated[IntrusionRule | LoiteringRule, Field(discriminator="type")]
