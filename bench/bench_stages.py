#!/usr/bin/env python
"""Where one camera's CPU goes on the hub's per-frame path, stage by stage.

One camera reads a clip through the hub's own code, in this process:

1. **Staged pass** (one thread, CPU time of that thread per stage): demux, decode, the
   packet sinks (evidence ring + live feed, ``TeeSink``), the reader's per-frame status
   writes, sampling, conversion to BGR at the analysis size, then for each sampled frame
   ``AnalysisPool._analyse`` exactly as a worker runs it — motion gate, video quality
   measures (VQD), detection, tracking, track history and rules, status writes.
   Each stage is timed by wrapping the hub's own function (nothing is reimplemented,
   except the loop of ``iter_sampled_frames``'s caller).
2. **Threaded pass**: the hub's real ``StreamReader`` thread (file paced at its own
   frame rate) handing frames to a started ``AnalysisPool`` (2 workers), the process's
   CPU time over the run. What it costs beyond the staged pass's per-frame figures is
   the price of the threads (hand-offs, GIL switching, wake-ups).

Both passes run ``--rounds`` times, interleaved, on the same clip; medians are printed.
Figures are CPU ms per camera-second for a stream at the clip's fps analysed at
``--detect-fps`` (per frame figures × frames per second), against the floor measured
in the same run (decode every frame + detect at the rectangular input). The hub leaves
non-reference frames that will not be sampled undecoded (ingest.reader.SkipPlanner): on a
clip with B-frames it legitimately decodes less than the floor (``--decode-every-frame``:
the staged pass without it); ``--skip-table`` prints, for every shared clip, the reader's
CPU with and without skipping.

    python bench/bench_stages.py --clip crosswalk_people.mp4 --rounds 3 [--motion on]
    python bench/bench_stages.py --skip-table --rounds 3

Machine and load are printed first: on a shared machine, compare figures of one run only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import av  # noqa: E402
from av.video.reformatter import VideoReformatter  # noqa: E402

import analytics.motion as motion_mod  # noqa: E402
from analytics.config import (  # noqa: E402
    CameraFaultRule,
    DetectConfig,
    LoiteringRule,
    MotionConfig,
    ZoneConfig,
)
from analytics.detectors.onnx import OnnxDetector  # noqa: E402
from analytics.pipeline import CameraAnalytics, CameraRulesConfig  # noqa: E402
from analytics.scheduler import AnalysisPool  # noqa: E402
from analytics.types import COCO_CLASSES  # noqa: E402
from bench.machine import machine_line  # noqa: E402
from camera_registry.config import IngestConfig, SourceConfig  # noqa: E402
from camera_registry.status import StatusBoard  # noqa: E402
from core.assets import assets_dir  # noqa: E402
from ingest.live import LiveFeed, TeeSink  # noqa: E402
from ingest.reader import (  # noqa: E402
    DecodeStats,
    StreamReader,
    analysis_size,
    iter_sampled_frames,
)
from ingest.ring import PacketRing  # noqa: E402
from tracks.indexer import TrackIndexer  # noqa: E402
from tracks.service import _Frame, make_crop  # noqa: E402

WHOLE_FRAME = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]


def camera(motion: bool) -> CameraAnalytics:
    """The bench_cameras.py camera: a whole-frame zone, a loitering rule that never
    fires, and the implicit video-quality rule the hub adds."""
    rules: list[Any] = [
        LoiteringRule(
            name="frame-loitering", type="loitering", zone="frame", min_duration_s=3600
        ),  # fmt: skip
        CameraFaultRule(name="video-quality", type="camera_fault"),
    ]
    zones = [ZoneConfig(name="frame", points=WHOLE_FRAME)]
    cfg = CameraRulesConfig("cam", 5.0, zones, rules, MotionConfig(enabled=motion), DetectConfig())
    return CameraAnalytics(cfg, COCO_CLASSES)


class Clock:
    """Thread CPU seconds per stage (nested stages are subtracted from their parent)."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self._stack: list[list[float]] = []

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append([0.0])
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.thread_time() - start
                inner = self._stack.pop()[0]
                self.total[name] += spent - inner
                if self._stack:
                    self._stack[-1][0] += spent

        return timed


def staged_pass(
    clip: Path, detector: OnnxDetector, motion: bool, detect_fps: float, skip: bool = True
) -> dict[str, Any]:
    """One pass over the clip in this thread; CPU seconds per stage and frame counts."""
    clock = Clock()
    status = StatusBoard()
    pool = AnalysisPool(detector, status, lambda *a: None, workers=1)
    analytics = camera(motion)
    pool.add_camera(analytics)
    slot = pool.slots["cam"]
    # the hub's functions, each wrapped in a timer
    real_detect = detector.detect
    detector.detect = clock.wrap("detect", real_detect)  # type: ignore[method-assign]
    # mypy: method-assign on each (the instance's own methods, wrapped)
    analytics.tracker.update = clock.wrap("tracking", analytics.tracker.update)  # type: ignore
    analytics.history.update = clock.wrap("history", analytics.history.update)  # type: ignore
    analytics.gate.check = clock.wrap("motion gate", analytics.gate.check)  # type: ignore
    analytics.process = clock.wrap("rules + filters", analytics.process)  # type: ignore
    real_measure = motion_mod.measure
    motion_mod.measure = clock.wrap("VQD measures", real_measure)
    reader = StreamReader("cam", lambda: str(clip), SourceConfig(url=str(clip)), IngestConfig(),
                          detect_fps=detect_fps, box=detector.input_size,
                          on_frame=pool.submit, status=status)  # fmt: skip
    ring = PacketRing(30.0, 64 << 20)
    feed = LiveFeed()
    tee = TeeSink(ring, feed)
    on_packet = clock.wrap("packet ring + live feed", tee.packet)
    on_decoded = clock.wrap("status (per decoded frame)", reader._on_decoded)
    on_skipped = clock.wrap("status (per decoded frame)", reader._on_skipped)
    decode_stats = DecodeStats()
    analyse = clock.wrap("analysis other (pool, status)", pool._analyse)
    decoded = analysed = 0
    reformatter = VideoReformatter()  # as iter_sampled_frames converts
    track_reformatter = VideoReformatter()
    indexer = TrackIndexer()
    old_convert = 0.0
    start = time.thread_time()
    try:
        with av.open(str(clip)) as container:
            tee.stream_opened(container.streams.video[0])
            frames = iter_sampled_frames(
                container, camera_id="cam", detect_fps=detect_fps, box=detector.input_size,
                mode="replay", max_decode_errors=1000, on_decoded=on_decoded,
                on_packet=on_packet, on_skipped=on_skipped, stats=decode_stats,
                skip_unsampled=skip,
            )  # fmt: skip
            while True:
                t0 = time.thread_time()
                try:
                    frame = next(frames)
                except (StopIteration, av.error.InvalidDataError):
                    break
                clock.total["demux + decode + sampling + conversion"] += time.thread_time() - t0
                # conversion once more, alone, to split it from decoding
                w, h = analysis_size(frame.source.width, frame.source.height, detector.input_size)
                t1 = time.thread_time()
                reformatter.reformat(frame.source, width=w, height=h, format="bgr24").to_ndarray()
                clock.total["conversion (BGR at analysis size)"] += time.thread_time() - t1
                # the same conversion as before this change, for the same-run comparison
                t1 = time.thread_time()
                frame.source.to_ndarray(width=w, height=h, format="bgr24")
                old_convert += time.thread_time() - t1
                analyse([(slot, frame)])
                analysed += 1
                # the investigator track index (tracks thread in the hub): open tracks,
                # thumbnails of new ones (native frame converted once per frame asked)
                if slot.last_tracked is not None:
                    t1 = time.thread_time()
                    observed = indexer.observe("cam", frame.wall_ts, slot.last_tracked)
                    held = _Frame(frame, track_reformatter)
                    for req in observed.crops:
                        crop = make_crop(held, req)
                        if crop is not None:
                            indexer.set_crop("cam", req.track_id, crop)
                    clock.total["track index (observe + thumbnails)"] += time.thread_time() - t1
    finally:
        detector.detect = real_detect  # type: ignore[method-assign]
        motion_mod.measure = real_measure
    total = time.thread_time() - start
    decoded = status.get("cam").frames_decoded
    stages = dict(clock.total)
    stages["demux + decode + sampling + conversion"] -= (
        stages["packet ring + live feed"] + stages["status (per decoded frame)"]
    )
    stages["demux + decode + sampling"] = (
        stages.pop("demux + decode + sampling + conversion")
        - stages["conversion (BGR at analysis size)"]
    )
    stages["(before: conversion, frame.to_ndarray)"] = old_convert
    return {"stages": stages, "total": total, "decoded": decoded, "analysed": analysed,
            "detected": analysed - status.get("cam").frames_gated,
            "skipped": decode_stats.skipped}  # fmt: skip


def threaded_pass(clip: Path, detector: OnnxDetector, motion: bool, detect_fps: float,
                  workers: int) -> dict[str, Any]:  # fmt: skip
    """The hub's reader thread and analysis pool, for real; process CPU over the run."""
    status = StatusBoard()
    pool = AnalysisPool(detector, status, lambda *a: None, workers=workers)
    pool.add_camera(camera(motion))
    tee = TeeSink(PacketRing(30.0, 64 << 20), LiveFeed())
    reader = StreamReader("cam", lambda: str(clip),
                          SourceConfig(url=str(clip), loop=False, realtime=True), IngestConfig(),
                          detect_fps=detect_fps, box=detector.input_size,
                          on_frame=pool.submit, status=status, packet_sink=tee)  # fmt: skip
    pool.start()
    cpu0 = time.process_time()
    reader.start()
    reader.join()
    # let the pool finish what is queued
    deadline = time.monotonic() + 30
    busy = lambda: any(s.pending or s.scheduled for s in pool.slots.values())  # noqa: E731
    while time.monotonic() < deadline and busy():
        time.sleep(0.02)
    cpu = time.process_time() - cpu0
    pool.stop()
    st = status.get("cam")
    return {
        "cpu": cpu,
        "decoded": st.frames_decoded,
        "analysed": st.frames_analysed,
        "dropped": st.frames_dropped,
        "detected": st.frames_analysed - st.frames_gated,
    }


def floor_pass(clip: Path, detector: OnnxDetector) -> tuple[float, float]:
    """The floor's steps in this thread: CPU ms to decode a frame, to convert + detect one."""
    n = 0
    t0 = time.thread_time()
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        try:
            for _ in container.decode(stream):
                n += 1
        except av.error.InvalidDataError:
            pass
    decode_ms = (time.thread_time() - t0) * 1000 / max(n, 1)
    frames = []
    with av.open(str(clip)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 5 == 0:
                frames.append(frame)
            if len(frames) >= 40:
                break
    w, h = analysis_size(frames[0].width, frames[0].height, detector.input_size)
    reformatter = VideoReformatter()  # the cheapest conversion (one scaler kept)
    t0 = time.thread_time()
    for frame in frames:
        detector.detect(
            [reformatter.reformat(frame, width=w, height=h, format="bgr24").to_ndarray()]
        )
    detect_ms = (time.thread_time() - t0) * 1000 / len(frames)
    return decode_ms, detect_ms


CLIPS = ("crosswalk_people.mp4", "street_parked_cars.mp4", "highway_divided.mp4",
         "plaza_topdown.mp4", "highway_receding_720p.mp4")  # fmt: skip


def decode_side(clip: Path, detect_fps: float, box: tuple[int, int], skip: bool) -> tuple:
    """CPU seconds of the reader's loop alone (demux, decode, sampling, conversion) over the
    clip, with or without non-reference frames skipped; frames decoded and skipped."""
    stats = DecodeStats()
    with av.open(str(clip)) as container:
        start = time.thread_time()
        for _ in iter_sampled_frames(container, camera_id="c", detect_fps=detect_fps, box=box,
                                     mode="replay", max_decode_errors=1000, stats=stats,
                                     skip_unsampled=skip):  # fmt: skip
            pass
        cpu = time.thread_time() - start
    return cpu, stats.frames, stats.skipped


def skip_table(detect_fps: float, box: tuple[int, int], rounds: int) -> None:
    """Per shared clip: what leaving unsampled non-reference frames undecoded saves."""
    print(f"\ndecode side per clip (reader loop incl. conversion), detect_fps {detect_fps}, "
          f"{rounds} rounds interleaved, CPU ms per camera-second (median)")  # fmt: skip
    print(f"{'clip':28s} {'fps':>6s} {'frames':>7s} {'skipped':>8s} {'every frame':>12s} "
          f"{'skipping':>9s} {'saved':>6s}")  # fmt: skip
    for name in CLIPS:
        clip = assets_dir() / "videos" / name
        with av.open(str(clip)) as c:
            fps = float(c.streams.video[0].average_rate or 25)
        full, fewer = [], []
        for _ in range(rounds):
            cpu, frames, _ = decode_side(clip, detect_fps, box, skip=False)
            full.append(cpu * 1000 * fps / frames)
            cpu, decoded, skipped = decode_side(clip, detect_fps, box, skip=True)
            fewer.append(cpu * 1000 * fps / (decoded + skipped))
        a, b = statistics.median(full), statistics.median(fewer)
        print(f"{name:28s} {fps:6.2f} {decoded + skipped:7d} {skipped:8d} {a:12.2f} {b:9.2f} "
              f"{1 - b / a:6.0%}")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", default="crosswalk_people.mp4", help="in <assets>/videos or a path")
    ap.add_argument("--model", type=Path, default=assets_dir() / "models" / "yolox_nano.onnx")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--motion",
        choices=("on", "off"),
        default="off",
        help="the motion gate (off: detect every sampled frame, as the floor)",
    )
    ap.add_argument("--detect-fps", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2, help="analysis threads of the threaded pass")
    ap.add_argument("--no-threaded", action="store_true", help="the staged pass only")
    ap.add_argument(
        "--decode-every-frame",
        action="store_true",
        help="the staged pass decodes every frame (no non-reference frame skipped)",
    )
    ap.add_argument(
        "--skip-table",
        action="store_true",
        help="only the decode side of every shared clip, with and without skipping",
    )
    args = ap.parse_args()
    if args.skip_table:
        print(machine_line())
        skip_table(args.detect_fps, (416, 416), args.rounds)
        return 0
    clip = Path(args.clip) if Path(args.clip).is_file() else assets_dir() / "videos" / args.clip
    print(machine_line())
    detector = OnnxDetector(args.model)
    with av.open(str(clip)) as c:
        fps = float(c.streams.video[0].average_rate or 25)
    motion = args.motion == "on"
    print(f"clip {clip.name} ({fps:.2f} fps), detect_fps {args.detect_fps}, motion gate "
          f"{args.motion}, detector {detector.name} input {detector.input_size} "
          f"rect {detector.rect}, "
          f"{args.rounds} rounds interleaved (floor, staged, threaded)")  # fmt: skip
    floors, staged, threaded = [], [], []
    for r in range(args.rounds):
        floors.append(floor_pass(clip, detector))
        staged.append(staged_pass(clip, detector, motion, args.detect_fps,
                                  skip=not args.decode_every_frame))  # fmt: skip
        if not args.no_threaded:
            threaded.append(threaded_pass(clip, detector, motion, args.detect_fps, args.workers))
        print(f"  round {r + 1} done", flush=True)
    decode_ms = statistics.median(f[0] for f in floors)
    detect_ms = statistics.median(f[1] for f in floors)
    floor = fps * decode_ms + args.detect_fps * detect_ms
    print(f"\nfloor (same run): decode {decode_ms:.3f} ms/frame, convert+detect {detect_ms:.2f} "
          f"ms/frame → {floor:.1f} CPU ms per camera-second")  # fmt: skip
    # per-frame costs → per camera-second at the clip's fps and detect fps
    names = list(staged[0]["stages"])
    decode_side = {"demux + decode + sampling", "packet ring + live feed",
                   "status (per decoded frame)"}  # fmt: skip
    print(f"\n{'stage':42s} {'ms/frame':>9s} {'per':>9s} {'ms/cam-s':>9s} {'share':>6s}")
    rows = []
    for name in names:
        per_decoded = name in decode_side
        values = []
        for s in staged:
            n = s["decoded"] if per_decoded else s["analysed"]
            values.append(s["stages"][name] * 1000 / max(n, 1))
        ms = statistics.median(values)
        cam_s = ms * (fps if per_decoded else args.detect_fps)
        rows.append((name, ms, "decoded" if per_decoded else "analysed", cam_s))
    total_cam_s = sum(r[3] for r in rows if not r[0].startswith("("))
    for name, ms, per, cam_s in sorted(rows, key=lambda r: -r[3]):
        share = "" if name.startswith("(") else f"{cam_s / total_cam_s:6.1%}"
        print(f"{name:42s} {ms:9.3f} {per:>9s} {cam_s:9.2f} {share:>6s}")
    print(f"{'staged total':42s} {'':9s} {'':>9s} {total_cam_s:9.2f}  "
          f"({floor / total_cam_s:.2f}x of the floor)")  # fmt: skip
    det = statistics.median(s["detected"] / max(s["analysed"], 1) for s in staged)
    print(f"detected share of analysed frames: {det:.0%}")
    print(f"frames of the stream: {staged[0]['decoded']}, of them left undecoded (non-reference, "
          f"not sampled): {staged[0]['skipped']} — the floor decodes every frame")  # fmt: skip
    if threaded:
        per_s = []
        for t in threaded:
            seconds = t["decoded"] / fps
            per_s.append(t["cpu"] * 1000 / seconds)
            print(f"threaded: {t['decoded']} decoded, {t['analysed']} analysed, {t['dropped']} "
                  f"dropped, {t['detected']} detected, {t['cpu']:.2f} CPU s")  # fmt: skip
        threaded_ms = statistics.median(per_s)
        print(
            f"threaded pass: {threaded_ms:.1f} CPU ms per camera-second "
            f"({floor / threaded_ms:.2f}x of the floor); beyond the staged stages: "
            f"{threaded_ms - total_cam_s:.1f} ms (threads, hand-offs, wake-ups, pacing)"
        )
        print(f"cameras per core at the threaded cost: {1000 / threaded_ms:.1f} "
              f"(floor: {1000 / floor:.1f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
