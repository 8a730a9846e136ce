"""The per-frame path made cheaper (issue 26, item 4) gives the same answers as before:
each cheaper function against the straightforward one it replaced, on real frames or
many random scenes. (Their costs are measured in bench/bench_stages.py, not here.)"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from analytics.vqd import _NOISE_KERNEL, measure, noise_sigma
from ingest.reader import iter_sampled_frames


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
