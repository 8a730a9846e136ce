#!/usr/bin/env python
"""What person_down's pose model (analytics/pose.py) costs a camera, in CPU ms per
camera-second, next to what the detector costs the same camera.

Each clip is replayed through the hub's own per-camera path (``CameraAnalytics``: motion
gate, detector, region detection, tracker, rules) with a ``person_down`` rule at 5 detection
frames/s, once with the pose model and once without. Process CPU time is measured around
the detector and around the pose estimates (only the candidates of ``PoseCheck`` are
cropped: wide or shrunk people of at least 48 px, within a budget of estimates per
camera-second). Printed per clip: pose runs per camera-second, CPU ms per run, pose and
detector CPU ms per camera-second, the pose's share of the detector's cost, and the bound
(the budget x ms per run). A camera without person_down builds no ``PoseCheck``: it pays nothing.

    python bench/bench_pose.py [--clips crosswalk_people.mp4 plaza_topdown.mp4 ...]

Clips are names in ``<assets>/videos`` or paths (e.g. ``eval/.cache/footage/*.mp4``). The
model comes from ``$SHAOBING_POSE_MODEL`` or ``eval/.cache/models`` (``shaobing models
pose``). Machine and load are printed first: on a shared machine, compare one run only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import av  # noqa: E402

from analytics import pose  # noqa: E402
from analytics.config import CameraConfig  # noqa: E402
from analytics.detectors.onnx import OnnxDetector  # noqa: E402
from analytics.pipeline import CameraAnalytics, CameraRulesConfig  # noqa: E402
from analytics.pose import PoseCheck  # noqa: E402
from bench.machine import machine_line  # noqa: E402
from core.assets import assets_dir  # noqa: E402
from ingest.reader import iter_sampled_frames  # noqa: E402

DEFAULT_CLIPS = ["crosswalk_people.mp4", "plaza_topdown.mp4"]
FPS = 5.0


class Timed:
    """Wraps a detector or pose model; sums the process CPU time of its calls."""

    def __init__(self, inner: object, method: str) -> None:
        self.inner, self.cpu, self.calls = inner, 0.0, 0
        self._method = getattr(inner, method)
        for attr in ("name", "input_size", "class_names"):
            if hasattr(inner, attr):
                setattr(self, attr, getattr(inner, attr))
        setattr(self, method, self._call)

    def _call(self, *args: object) -> object:
        t0 = time.process_time()
        try:
            return self._method(*args)
        finally:
            self.cpu += time.process_time() - t0
            self.calls += 1


def replay(clip: Path, det: OnnxDetector, model: object | None) -> dict[str, float]:
    tdet = Timed(det, "detect")
    tpose = Timed(model, "estimate") if model is not None else None
    cam = CameraConfig(
        id="bench", source={"url": f"file://{clip}"}, detect_fps=FPS,
        rules=[{"name": "down", "type": "person_down"}],
    )  # fmt: skip
    an = CameraAnalytics(
        CameraRulesConfig(cam.id, cam.detect_fps, cam.zones, cam.rules, cam.motion, cam.detect),
        det.class_names, use_schedules=False, pose=tpose,  # type: ignore[arg-type]
    )  # fmt: skip
    seconds = 0.0
    with av.open(str(clip)) as c:
        for fr in iter_sampled_frames(
            c, camera_id="bench", detect_fps=FPS, box=det.input_size, mode="replay",
            max_decode_errors=1000,
        ):  # fmt: skip
            seconds = fr.t
            m = an.check_motion(fr.image, fr.t, fr.source_size)
            d = tdet.detect([fr.image])[0] if m.detect else None  # type: ignore[attr-defined]
            if d is not None and an.wants_regions:
                d = an.detect_regions(  # type: ignore[arg-type]
                    tdet, d, fr.source_bgr, m, fr.source_size, fr.frame_size
                )
            an.process(
                d, t=fr.t, pts=fr.pts, wall_ts=fr.wall_ts, source_size=fr.source_size,
                frame_size=fr.frame_size, gate=m, image=fr.image,
            )  # fmt: skip
    seconds = max(seconds, 1e-6)
    return {
        "seconds": seconds,
        "det_ms_s": 1000 * tdet.cpu / seconds,
        "pose_runs_s": (tpose.calls / seconds) if tpose else 0.0,
        "pose_ms_run": (1000 * tpose.cpu / tpose.calls) if tpose and tpose.calls else 0.0,
        "pose_ms_s": (1000 * tpose.cpu / seconds) if tpose else 0.0,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", nargs="+", default=DEFAULT_CLIPS)
    args = p.parse_args()
    print(machine_line())
    os.environ.setdefault(pose.POSE_MODEL_ENV, str(REPO / "eval/.cache/models" / pose.POSE_MODEL))
    model = pose.load_pose_model(None)
    if model is None:
        print("no pose model (see the module doc)", file=sys.stderr)
        return 2
    det = OnnxDetector(assets_dir() / "models" / "yolox_nano.onnx", threads=1)
    print(f"{'clip':<32} {'s':>6} {'runs/s':>7} {'ms/run':>7} {'pose ms/s':>10} "
          f"{'det ms/s':>9} {'share':>6} {'bound ms/s':>10}")  # fmt: skip
    for name in args.clips:
        clip = Path(name) if Path(name).is_file() else assets_dir() / "videos" / name
        clip = clip.resolve()
        r = replay(clip, det, model)
        bound = PoseCheck(model).per_s * r["pose_ms_run"]  # the budget x one estimate
        share = r["pose_ms_s"] / r["det_ms_s"] if r["det_ms_s"] else 0.0
        print(f"{clip.name:<32} {r['seconds']:6.1f} {r['pose_runs_s']:7.2f} "
              f"{r['pose_ms_run']:7.1f} {r['pose_ms_s']:10.1f} {r['det_ms_s']:9.1f} "
              f"{share:6.0%} {bound:10.1f}")  # fmt: skip
    print(f"load at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
