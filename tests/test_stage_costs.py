"""The per-frame path made cheaper (issue 26, item 4) gives the same answers as before:
each cheaper function against the straightforward one it replaced, on real frames or
many random scenes. (Their costs are measured in bench/bench_stages.py, not here.)"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from analytics.sanity import oversized_persons
from analytics.types import COCO_CLASSES, Detections
from analytics.vqd import _NOISE_KERNEL, measure, noise_sigma
from ingest.reader import iter_sampled_frames


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


def _frames(clip: Path, n: int) -> list[np.ndarray]:
    with av.open(str(clip)) as c:
        return [f.to_ndarray(width=416, height=234, format="bgr24")
                for _, f in zip(range(n), c.decode(video=0), strict=False)]  # fmt: skip


def test_noise_and_colour_measures_unchanged(videos_dir: Path) -> None:
    for img in _frames(videos_dir / "street_parked_cars.mp4", 30)[::3]:
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
        before = float(
            np.abs(cv2.filter2D(grey, -1, _NOISE_KERNEL))[1:-1, 1:-1].mean()
            * np.sqrt(np.pi / 2)
            / 6
        )
        assert abs(noise_sigma(img) - before) <= 1e-5 * before
        small = cv2.resize(img, (160, 90), interpolation=cv2.INTER_AREA)
        lab = cv2.cvtColor(small, cv2.COLOR_BGR2LAB).reshape(-1, 3).mean(axis=0)
        cast = float(np.hypot(lab[1] - 128.0, lab[2] - 128.0))
        blur = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        assert abs(measure(small, blur, 0.0, img).cast - cast) < 1e-9


def test_sampled_frames_convert_as_to_ndarray_did(videos_dir: Path) -> None:
    clip = videos_dir / "crosswalk_people.mp4"
    with av.open(str(clip)) as c:
        sampled = list(
            iter_sampled_frames(
                c,
                camera_id="c",
                detect_fps=5.0,
                box=(416, 416),
                mode="replay",
                max_decode_errors=10,
            )  # fmt: skip
        )
    assert len(sampled) > 100
    for s in sampled[::10]:
        assert s.image.shape == (234, 416, 3)
        # the frame's own scaler, as before (a new swscale context per call)
        assert np.array_equal(s.image, s.source.to_ndarray(width=416, height=234, format="bgr24"))
        assert np.array_equal(s.source_bgr(), s.source.to_ndarray(format="bgr24"))
