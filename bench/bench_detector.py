#!/usr/bin/env python
"""FP32 against INT8 detection: CPU ms per detection at the rectangular input, and how
many of FP32's boxes the INT8 model finds, in one run, interleaved.

    python bench/bench_detector.py [--int8 PATH] [--rounds 5] [--frames 40]

Without ``--int8`` the INT8 copy is made first (``analytics/detectors/quantize.py``, the
committed calibration list) into a temporary folder. Each round times every test frame
through the FP32 detector then the INT8 one (one intra-op thread each, CPU time of this
thread: preprocessing, inference, post-processing), alternating which goes first; the
medians over rounds are printed with the decode cost of the same clip and the cameras
per core each implies for 25 fps streams analysed at 5 fps (decode every frame + detect
every sampled frame, the floor of ../shared/PERFORMANCE.md). Test frames: index % 10 == 5,
which the calibration list never uses.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import av  # noqa: E402
import numpy as np  # noqa: E402

from analytics.detectors.onnx import OnnxDetector  # noqa: E402
from analytics.detectors.quantize import match_detections, quantize_detector  # noqa: E402
from bench.machine import machine_line  # noqa: E402
from core.assets import assets_dir  # noqa: E402


def test_frames(videos: Path, per_clip: int) -> list[tuple[str, np.ndarray]]:
    out = []
    for clip in sorted(videos.glob("*.mp4")):
        n = 0
        with av.open(str(clip)) as container:
            try:
                for i, frame in enumerate(container.decode(video=0)):
                    if i % 10 == 5 and i % 30 == 5:
                        out.append((clip.name, frame.to_ndarray(format="bgr24")))
                        n += 1
                        if n >= per_clip:
                            break
            except av.error.InvalidDataError:
                pass
    return out


def decode_ms(clip: Path) -> float:
    n = 0
    t0 = time.thread_time()
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        for _ in container.decode(stream):
            n += 1
    return (time.thread_time() - t0) * 1000 / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=assets_dir() / "models" / "yolox_nano.onnx")
    ap.add_argument("--int8", type=Path, help="an INT8 model (default: quantise now)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-clip", type=int, default=8, help="test frames per shared clip")
    args = ap.parse_args()
    print(machine_line())
    videos = assets_dir() / "videos"
    with tempfile.TemporaryDirectory() as tmp:
        int8_path = args.int8
        if int8_path is None:
            int8_path = Path(tmp) / "int8.onnx"
            t0 = time.monotonic()
            res = quantize_detector(args.model, int8_path, videos)
            print(f"quantised in {time.monotonic() - t0:.0f} s: {res.frames} calibration frames, "
                  f"{res.method}, {len(res.excluded_nodes)} nodes kept FP32")  # fmt: skip
        fp32 = OnnxDetector(args.model)
        int8 = OnnxDetector(int8_path)
        frames = test_frames(videos, args.per_clip)
        print(f"{len(frames)} test frames; FP32 rect {fp32.rect}, INT8 rect {int8.rect}")
        # accuracy (once: deterministic)
        per_clip: dict[str, list[int]] = {}
        for clip, img in frames:
            (a,), (b,) = fp32.detect([img]), int8.detect([img])
            m = per_clip.setdefault(clip, [0, 0, 0])
            m[0] += match_detections(a, b)
            m[1] += len(a)
            m[2] += len(b)
        print("\nINT8 against FP32 (same class, IoU ≥ 0.5):")
        tot = [0, 0, 0]
        for clip, m in per_clip.items():
            tot = [x + y for x, y in zip(tot, m, strict=True)]
            recall, precision = m[0] / max(m[1], 1), m[0] / max(m[2], 1)
            print(f"  {clip:28s} FP32 boxes found {m[0]:4d}/{m[1]:4d} ({recall:.2f})"
                  f"  INT8 boxes right {m[0]:4d}/{m[2]:4d} ({precision:.2f})")  # fmt: skip
        print(f"  {'all':28s} recall {tot[0] / max(tot[1], 1):.3f}, "
              f"precision {tot[0] / max(tot[2], 1):.3f}")  # fmt: skip
        # speed, interleaved
        for det in (fp32, int8):  # warm-up
            det.detect([frames[0][1]])
        times: dict[str, list[float]] = {"fp32": [], "int8": []}
        dec: list[float] = []
        for r in range(args.rounds):
            order = [("fp32", fp32), ("int8", int8)]
            if r % 2:
                order.reverse()
            for name, det in order:
                t0 = time.thread_time()
                for _, img in frames:
                    det.detect([img])
                times[name].append((time.thread_time() - t0) * 1000 / len(frames))
            dec.append(decode_ms(videos / "crosswalk_people.mp4"))
    d = statistics.median(dec)
    print(f"\nCPU ms per detection (one thread, rect input; median of {args.rounds} rounds, "
          f"interleaved); decode 640x360 {d:.3f} ms/frame in the same run:")  # fmt: skip
    for name, values in times.items():
        ms = statistics.median(values)
        per_cam = 25 * d + 5 * ms
        print(
            f"  {name}: {ms:6.2f} ms (rounds {', '.join(f'{v:.2f}' for v in values)})"
            f" → {per_cam:.1f} ms per camera-second → {1000 / per_cam:.1f} cameras per core"
        )
    ratio = statistics.median(times["fp32"]) / statistics.median(times["int8"])
    print(f"  INT8 speed-up: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
