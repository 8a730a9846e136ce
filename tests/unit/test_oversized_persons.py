"""oversized_persons in closed form (issue 26, item 4) answers as the per-person fit it
replaced did, on many random scenes (its cost: bench/bench_stage_fixes.py)."""

from __future__ import annotations

import numpy as np

from analytics.sanity import oversized_persons
from analytics.types import COCO_CLASSES, Detections


def _oversized_reference(det: Detections, ratio: float = 3.0) -> np.ndarray:
    """The implementation before: a median and a np.polyfit per person."""
    out = np.zeros(len(det), dtype=bool)
    idx = np.flatnonzero(det.class_id == 0)
    if len(idx) < 4:
        return out
    heights = det.xyxy[idx, 3] - det.xyxy[idx, 1]
    rows = det.xyxy[idx, 3]
    for j, k in enumerate(idx):
        others = np.delete(np.arange(len(idx)), j)
        h, y = heights[others], rows[others]
        expected = float(np.median(h))
        if np.ptp(y) > 1e-3:
            slope, icpt = np.polyfit(y, h, 1)
            expected = max(expected, float(slope * rows[j] + icpt))
        out[k] = heights[j] >= ratio * max(expected, 1.0)
    return out


def test_oversized_persons_matches_the_per_person_fit() -> None:
    rng = np.random.default_rng(7)
    positives = 0
    for trial in range(1500):
        n = int(rng.integers(0, 25))
        feet = rng.uniform(50, 400, n)
        if trial % 7 == 0:
            feet[:] = 200.0  # everyone on one row: no fit, the median only
        if trial % 11 == 0:
            feet = np.round(feet / 100) * 100  # a few rows, ties
        h = np.maximum(1.0, feet * rng.uniform(0.1, 0.3) + rng.normal(0, 5, n))
        if n and trial % 3 == 0:
            h[rng.integers(0, n)] *= rng.uniform(2, 6)  # a bus-sized "person"
        x1 = rng.uniform(0, 300, n)
        xyxy = np.stack([x1, feet - h, x1 + h / 2, feet], axis=1).astype(np.float32)
        classes = np.where(rng.uniform(size=n) < 0.8, 0, 2)
        det = Detections(xyxy, np.ones(n, np.float32), classes)
        expected = _oversized_reference(det)
        positives += int(expected.sum())
        assert (oversized_persons(det, COCO_CLASSES) == expected).all(), trial
    assert positives > 100  # the comparison saw real drops, not only "keep everyone"
