"""Detector backends behind one interface (:class:`analytics.detectors.base.Detector`)."""

from __future__ import annotations

from pathlib import Path

from analytics.config import DetectorConfig
from analytics.detectors.base import Detector, DetectorError

__all__ = ["Detector", "DetectorError", "create_detector"]


def create_detector(cfg: DetectorConfig, models_dir: Path, mirror_dir: Path | None) -> Detector:
    """Build the configured detector; raises :class:`DetectorError` with a remedy."""
    if cfg.backend == "onnx":
        from analytics.detectors.onnx import OnnxDetector
        from analytics.models import resolve_model

        if cfg.precision == "int8":
            from analytics.detectors.quantize import resolve_int8

            path = resolve_int8(cfg.model, models_dir, mirror_dir=mirror_dir, sha256=cfg.sha256)
        else:
            path = resolve_model(cfg.model, models_dir, mirror_dir=mirror_dir, sha256=cfg.sha256)
        return OnnxDetector(
            path,
            confidence=cfg.confidence,
            weak_confidence=cfg.weak_confidence,
            nms_iou=cfg.nms_iou,
            input_size=cfg.input_size,
            device=cfg.device,
            threads=cfg.threads,
            rect=cfg.rect,
        )
    if cfg.precision != "fp32":
        raise DetectorError("detector.precision: int8 needs backend onnx")
    from analytics.detectors.ultralytics import UltralyticsDetector

    model = cfg.model
    candidate = Path(model)
    if not candidate.is_absolute() and (models_dir / model).is_file():
        model = str(models_dir / model)
    return UltralyticsDetector(
        model,
        confidence=cfg.confidence,
        weak_confidence=cfg.weak_confidence,
        nms_iou=cfg.nms_iou,
        input_size=cfg.input_size,
        device=cfg.device,
    )
