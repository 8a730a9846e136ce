"""What issue 25's per-frame checks cost: the colour signatures of the tracked boxes (for
id-switch bridges, analytics/appearance.py) and the zone rules' confirmation
(analytics/sanity.Confirmation), on a real frame of the shared crosswalk clip.

    python -m bench.bench_identity [--boxes 30] [--repeat 200]

Prints the machine line, then CPU microseconds (process time: the machine is shared) per
frame for N tracked boxes.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import av
import numpy as np

from analytics.appearance import signatures
from analytics.history import TrackHistory
from analytics.sanity import Confirmation
from analytics.types import Detections
from bench.machine import machine_line


def frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            img = f.to_ndarray(format="bgr24")
            h, w = img.shape[:2]
            s = 416 / max(w, h)
            import cv2

            return cv2.resize(img, (int(w * s), int(h * s)))
    raise SystemExit(f"{path}: no frame")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--boxes", type=int, default=30)
    p.add_argument("--repeat", type=int, default=200)
    args = p.parse_args()
    assets = Path(os.environ.get("SHAOBING_ASSETS", Path(__file__).parents[2] / "shared/assets"))
    img = frame(assets / "videos" / "crosswalk_people.mp4")
    rng = np.random.default_rng(0)
    h, w = img.shape[:2]
    x = rng.uniform(0, w - 30, args.boxes)
    y = rng.uniform(0, h - 60, args.boxes)
    xyxy = np.stack(
        [x, y, x + rng.uniform(12, 30, args.boxes), y + rng.uniform(30, 60, args.boxes)], 1
    )
    print(machine_line())
    started = time.process_time()
    for _ in range(args.repeat):
        signatures(img, xyxy)
    sig_us = (time.process_time() - started) / args.repeat * 1e6
    hist, conf = TrackHistory(), Confirmation(3, 0.5, 5.0)
    det = Detections(xyxy, np.full(args.boxes, 0.45), np.zeros(args.boxes), np.arange(args.boxes))
    started = time.process_time()
    for i in range(args.repeat):
        hist.update(det, i / 5.0)
        conf.confirmed(det, hist)  # scores below 0.5: never confirmed, checked every frame
    conf_us = (time.process_time() - started) / args.repeat * 1e6
    print(f"{args.boxes} boxes on a {w}x{h} frame: colour signatures {sig_us:.0f} us/frame, "
          f"history + confirmation (none confirmed) {conf_us:.0f} us/frame")  # fmt: skip


if __name__ == "__main__":
    main()
