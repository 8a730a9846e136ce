"""Zones: polygons in the analysed frame's pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.config import ZoneConfig


def map_points(
    points: object, coordinates: str, source_size: tuple[int, int], frame_size: tuple[int, int]
) -> np.ndarray:
    """Configured points (normalised, or pixels of the native resolution) → analysed frame."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    fw, fh = frame_size
    if coordinates == "auto":
        coordinates = "normalized" if (pts <= 1.0).all() else "pixels"
    if coordinates == "normalized":
        out = pts * np.array([fw, fh], dtype=np.float32)
    else:
        sw, sh = source_size
        out = pts * np.array([fw / sw, fh / sh], dtype=np.float32)
    # Boxes are clipped to the frame, so the feet of a person cut by the bottom edge sit
    # exactly on it: push points drawn on the frame's border one pixel out, so a zone
    # drawn to the edge contains them.
    out[:, 0] = np.where(out[:, 0] <= 0, -1, np.where(out[:, 0] >= fw, fw + 1, out[:, 0]))
    out[:, 1] = np.where(out[:, 1] <= 0, -1, np.where(out[:, 1] >= fh, fh + 1, out[:, 1]))
    return out


@dataclass(frozen=True)
class Zone:
    name: str
    polygon: np.ndarray  # (K, 2) float32, analysed-frame pixels

    @classmethod
    def from_config(
        cls, cfg: ZoneConfig, source_size: tuple[int, int], frame_size: tuple[int, int]
    ) -> Zone:
        """Map a configured zone into the analysed frame.

        Normalised points scale by the analysed frame size; pixel points are in the
        camera's native resolution (what an operator sees in a snapshot) and scale by
        the ratio of analysed to native size.
        """
        pts = map_points(cfg.points, cfg.resolved_coordinates(), source_size, frame_size)
        return cls(cfg.name, pts)

    @classmethod
    def whole_frame(cls, frame_size: tuple[int, int]) -> Zone:
        w, h = frame_size
        return cls(
            "frame", np.array([[-1, -1], [w + 1, -1], [w + 1, h + 1], [-1, h + 1]], np.float32)
        )

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Boolean mask of which (N, 2) points lie inside (even-odd rule, vectorised)."""
        if len(points) == 0:
            return np.zeros(0, dtype=bool)
        x = points[:, 0][:, None]
        y = points[:, 1][:, None]
        x1, y1 = self.polygon[:, 0], self.polygon[:, 1]
        x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        hits = crosses & (x < x_at)
        return (hits.sum(axis=1) % 2) == 1
