#!/usr/bin/env python
"""Same-run A/B of the per-frame path's fixes (issue 26, item 4): each replaced function
(kept here as it was) against the hub's current one, on the same frames, interleaved
over ``--rounds`` rounds; CPU ms of this thread, medians.

    python bench/bench_stage_fixes.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from av.video.reformatter import VideoReformatter  # noqa: E402

import analytics.pipeline as pipeline_mod  # noqa: E402
import analytics.vqd as vqd_mod  # noqa: E402
from analytics.detectors.onnx import OnnxDetector  # noqa: E402
from analytics.types import class_ids  # noqa: E402
from bench.bench_stages import camera  # noqa: E402
from bench.machine import machine_line  # noqa: E402
from core.assets import assets_dir  # noqa: E402


def old_noise_sigma(image_bgr: np.ndarray) -> float:
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    response = np.abs(cv2.filter2D(grey, -1, vqd_mod._NOISE_KERNEL))[1:-1, 1:-1]
    return float(response.mean() * np.sqrt(np.pi / 2) / 6)


def old_measure(small_bgr, grey, change, image_bgr=None):  # type: ignore[no-untyped-def]
    raw = cv2.cvtColor(small_bgr, cv2.COLOR_BGR2GRAY)
    h, w = raw.shape
    blocks = raw[: h - h % 8, : w - w % 8].reshape(h // 8, 8, w // 8, 8).std(axis=(1, 3))
    lab = cv2.cvtColor(small_bgr, cv2.COLOR_BGR2LAB).reshape(-1, 3).mean(axis=0)
    thumb = cv2.resize(grey, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)
    return vqd_mod.QualityMeasures(
        luma=float(grey.mean()), contrast=float(raw.std()),
        saturated=float((raw >= 250).mean()), change=change,
        sharpness=float(cv2.Laplacian(raw, cv2.CV_32F).var()),
        noise=old_noise_sigma(image_bgr if image_bgr is not None else small_bgr),
        uniform=float((blocks < 2.5).mean()) if blocks.size else 0.0,
        cast=float(np.hypot(lab[1] - 128.0, lab[2] - 128.0)), thumb=thumb - thumb.mean(),
    )  # fmt: skip


def old_oversized(det, names, ratio=3.0):  # type: ignore[no-untyped-def]
    person = np.isin(det.class_id, class_ids(names, ("person",)))
    out = np.zeros(len(det), dtype=bool)
    idx = np.flatnonzero(person)
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", default="crosswalk_people.mp4")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(machine_line())
    clip = assets_dir() / "videos" / args.clip
    detector = OnnxDetector(assets_dir() / "models" / "yolox_nano.onnx")
    sources, images = [], []
    with av.open(str(clip)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % 5 == 0:
                sources.append(f)
                images.append(f.to_ndarray(width=416, height=234, format="bgr24"))
    dets = [detector.detect([im])[0] for im in images]
    new_measure, new_oversized = vqd_mod.measure, pipeline_mod.oversized_persons

    def analysis() -> None:  # motion gate, VQD every 0.5 s, tracking, filters, rules
        a = camera(False)
        for i, (im, d) in enumerate(zip(images, dets, strict=True)):
            t = i / 5
            g = a.check_motion(im, t, (640, 360))
            a.process(d, t=t, pts=t, wall_ts=1.7e9 + t, source_size=(640, 360),
                      frame_size=(416, 234), gate=g)  # fmt: skip

    def fresh() -> list[av.VideoFrame]:  # never converted: no scaler of their own yet
        with av.open(str(clip)) as c:
            return [f for i, f in enumerate(c.decode(video=0)) if i % 5 == 0]

    def convert_old() -> float:
        frames = fresh()
        t0 = time.thread_time()
        for f in frames:
            f.to_ndarray(width=416, height=234, format="bgr24")
        return time.thread_time() - t0

    def convert_new() -> float:
        frames = fresh()
        t0 = time.thread_time()
        r = VideoReformatter()
        for f in frames:
            r.reformat(f, width=416, height=234, format="bgr24").to_ndarray()
        return time.thread_time() - t0

    def timed(fn: Callable[[], None]) -> Callable[[], float]:
        def run() -> float:
            t0 = time.thread_time()
            fn()
            return time.thread_time() - t0

        return run

    def with_old(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            import analytics.motion as motion_mod

            motion_mod.measure, pipeline_mod.oversized_persons = old_measure, old_oversized
            try:
                fn()
            finally:
                motion_mod.measure, pipeline_mod.oversized_persons = new_measure, new_oversized

        return run

    cases = {
        "conversion 640x360 → 416x234": (convert_old, convert_new),
        "analysis per frame (gate, VQD, tracking, rules)": (
            timed(with_old(analysis)),
            timed(analysis),
        ),
    }
    print(f"{clip.name}: {len(images)} sampled frames, {args.rounds} rounds, A/B interleaved")
    for name, (old, new) in cases.items():
        res: dict[str, list[float]] = {"before": [], "now": []}
        for r in range(args.rounds):
            pair = [("before", old), ("now", new)]
            for label, fn in pair if r % 2 == 0 else pair[::-1]:
                res[label].append(fn() * 1000 / len(images))
        b, n = statistics.median(res["before"]), statistics.median(res["now"])
        print(f"  {name:48s} before {b:6.3f} ms  now {n:6.3f} ms per sampled frame "
              f"(-{b - n:.3f} ms, -{(b - n) * 5:.1f} ms per camera-second at 5 fps)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
