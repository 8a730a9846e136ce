#!/usr/bin/env python
"""Cameras per core: the hub (embedded, and ``run --workers N`` on Redis) against the
naive baseline measured in the same run, as ratios to the floor of PERFORMANCE.md;
memory per added camera; and (``soak``) RSS of a hub over a long run.

``scale`` (the default): for each camera count, each mode runs on live RTSP cameras
(the GStreamer test peer, one mount and encoder per camera, 640x360 H.264 25 fps) at
5 fps, motion gate off (every sampled frame detected: the floor's assumption):

* ``naive``: one process, a thread per camera with ``cv2.VideoCapture`` and its own
  onnxruntime session (1 intra-op thread): read every frame, detect every 5th — the
  script most teams write first;
* ``embedded``: ``shaobing run`` (one process; bench/bench_cameras.py does the run);
* ``workers``: ``shaobing run --workers N`` (N worker processes, alerts/dispatcher/API
  in the parent, Redis bus and leases; CPU and RSS summed over the process tree).

A mode *keeps up* at a count when every camera is analysed at ≥ 95 % of 5 fps and
decoded at ≥ 95 % of the source rate (no backlog). Reported per mode: the most cameras
kept up, that count as a ratio to the floor's cameras for this machine
(cores × 1000 / floor ms per camera-second), and the cost-based ratio (floor ms /
measured CPU ms per analysed camera-second: the efficiency, less noisy than counts).

``soak``: one hub with N cameras for ``--duration`` seconds (30 min for the real soak;
run shorter while developing), sampling RSS; prints the RSS at the start of the steady
state, the end, the max, and the least-squares slope in MB per hour.

Run from the repository root::

    .venv/bin/python bench/bench_scale.py --cameras 16 24 32 --duration 20
    .venv/bin/python bench/bench_scale.py soak --cameras 8 --duration 1800

The machine is shared with other engineers: the figures are noisy (the "other CPU"
column says how much others used during each window).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for path in (str(REPO), str(BENCH)):
    if path not in sys.path:
        sys.path.insert(0, path)

import bench_cameras as bc  # noqa: E402

from tests.hubproc import HubProcess  # noqa: E402
from tests.peers.procs import RtspServer  # noqa: E402

REDIS_URL = os.environ.get("SHAOBING_BENCH_REDIS", "redis://127.0.0.1:6379/0")


@dataclass
class ModeRun:
    mode: str
    cameras: int
    analysed_fps_min: float
    analysed_fps_mean: float
    input_fps_min: float
    cpu_pct_core: float
    other_cpu_pct_core: float
    ms_per_cam_s: float | None
    efficiency: float | None  # floor ms / measured ms
    rss_mib: float
    keeps_up: bool
    warnings: list[str]


# -- the process tree (workers mode) ----------------------------------------------------


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def tree_cpu_s(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        try:
            total += bc.proc_cpu_s(p)
        except OSError:
            pass
    return total


def tree_status_kib(pid: int, key: str) -> int:
    total = 0
    for p in tree(pid):
        try:
            total += bc.proc_status_kib(p, key)
        except OSError:
            pass
    return total


# -- the hub modes -----------------------------------------------------------------------


def measure_floor(clip: Path, model: Path, source_fps: float) -> tuple[float, float, float]:
    """The floor's steps timed on this machine now (CPU time, one thread): H.264 decode
    of every frame, reformat to the analysis size + letterbox, yolox inference at batch 1.
    Shared machines vary by up to 2x from day to day: the ratio to this same-run floor
    is the comparable figure. Returns (decode ms, detect ms, ms per camera-second)."""
    import av
    import cv2
    import numpy as np
    import onnxruntime as ort

    with av.open(str(clip)) as c:
        stream = c.streams.video[0]
        stream.codec_context.thread_count = 1
        t0, frames, sample = time.process_time(), 0, None
        for frame in c.decode(stream):
            frames += 1
            sample = sample or frame
        decode_ms = (time.process_time() - t0) / max(frames, 1) * 1000
    assert sample is not None
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    name, shape = session.get_inputs()[0].name, session.get_inputs()[0].shape
    size = int(shape[-1]) if isinstance(shape[-1], int) else 416
    w, h = size, round(size * sample.height / sample.width)
    for _ in range(5):
        session.run(None, {name: np.zeros((1, 3, size, size), np.float32)})
    t0, n = time.process_time(), 40
    for _ in range(n):
        image = sample.to_ndarray(width=w, height=h, format="bgr24")
        padded = cv2.copyMakeBorder(image, 0, size - h, 0, size - w, cv2.BORDER_CONSTANT)
        blob = padded.transpose(2, 0, 1)[None].astype(np.float32)
        session.run(None, {name: blob})
    detect_ms = (time.process_time() - t0) / n * 1000
    return decode_ms, detect_ms, source_fps * decode_ms + 5 * detect_ms


def hub_args(args: argparse.Namespace, motion: str) -> argparse.Namespace:
    """bench_cameras' own options (its defaults: what the hub ships) with this run's."""
    ns = bc.parse_args([])
    ns.detect_fps, ns.workers, ns.batch, ns.motion = 5.0, 2, args.batch, motion
    ns.mounts, ns.clip, ns.model = args.mounts, args.clip, args.model
    ns.duration, ns.warmup, ns.online_timeout, ns.keep = args.duration, args.warmup, 120.0, False
    return ns


def hub_run(mode: str, n: int, args: argparse.Namespace, source_fps: float, ncores: int) -> ModeRun:
    ns = hub_args(args, "off")
    launch = bc.HubLaunch()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    if mode == "workers":
        ns.workers = 1  # one analysis thread per worker process: a process per core

        def config(urls: list[str], a: argparse.Namespace) -> dict[str, Any]:
            cfg = bc.hub_config(urls, a)
            cfg["bus"] = {"kind": "redis", "url": REDIS_URL, "prefix": prefix, "lease_s": 10}
            return cfg

        launch = bc.HubLaunch(config=config, hub_args=["--workers", str(args.hub_workers)],
                              cpu_s=tree_cpu_s, status_kib=tree_status_kib)  # fmt: skip
    try:
        r = bc.run_one(n, ns, source_fps, ncores, launch)
    finally:
        if mode == "workers":
            _drop_prefix(prefix)
    keeps = r.analysed_fps_min >= 0.95 * 5 and r.input_fps_min >= 0.95 * source_fps
    return ModeRun(mode, n, r.analysed_fps_min, r.analysed_fps_mean, r.input_fps_min,
                   r.hub_cpu_pct_core, r.other_cpu_pct_core, r.measured_ms_per_cam_s,
                   r.efficiency, r.hub_peak_rss_mib, keeps, r.warnings)  # fmt: skip


def _drop_prefix(prefix: str) -> None:
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        r.delete(*keys)


# -- the naive baseline ------------------------------------------------------------------


def naive_child(urls: list[str], model: str, detect_fps: float, source_fps: float,
                warmup: float, duration: float) -> dict[str, Any]:  # fmt: skip
    """A thread per camera: cv2.VideoCapture reads every frame, every k-th is
    letterboxed and detected by the thread's own onnxruntime session."""
    import cv2
    import numpy as np
    import onnxruntime as ort

    every = max(1, round(source_fps / detect_fps))
    counts = [[0, 0] for _ in urls]  # decoded, analysed
    stop = threading.Event()

    def camera(i: int, url: str) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        size = int(inp.shape[2]) if isinstance(inp.shape[2], int) else 416
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
        n = 0
        while not stop.is_set():
            ok, frame = cap.read()
            if not ok:
                time.sleep(0.1)
                cap.release()
                cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
                continue
            n += 1
            counts[i][0] += 1
            if n % every:
                continue
            h, w = frame.shape[:2]
            scale = size / max(h, w)
            resized = cv2.resize(frame, (int(w * scale), int(h * scale)))
            canvas = np.full((size, size, 3), 114, np.uint8)
            canvas[: resized.shape[0], : resized.shape[1]] = resized
            blob = canvas.transpose(2, 0, 1)[None].astype(np.float32)
            out = sess.run(None, {inp.name: blob})[0]
            _ = out[0][out[0][:, 4] > 0.3]  # objectness filter, as a real script would
            counts[i][1] += 1
        cap.release()

    threads = [threading.Thread(target=camera, args=(i, u), daemon=True)
               for i, u in enumerate(urls)]  # fmt: skip
    for t in threads:
        t.start()
    time.sleep(warmup)
    before = [list(c) for c in counts]
    cpu0 = _rusage_s()
    t0 = time.monotonic()
    time.sleep(duration)
    elapsed = time.monotonic() - t0
    cpu = _rusage_s() - cpu0
    after = [list(c) for c in counts]
    stop.set()
    return {
        "elapsed": elapsed, "cpu_s": cpu,
        "input_fps": [(a[0] - b[0]) / elapsed for a, b in zip(after, before, strict=True)],
        "analysed_fps": [(a[1] - b[1]) / elapsed for a, b in zip(after, before, strict=True)],
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip


def _rusage_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def naive_run(n: int, args: argparse.Namespace, source_fps: float, ncores: int) -> ModeRun:
    mounts = [f"cam{i + 1}" for i in range(n)] if args.mounts == "per-camera" else ["cam"]
    server = RtspServer({m: args.clip for m in mounts})
    bc.start_server(server)
    try:
        urls = [server.url(mounts[i % len(mounts)]) for i in range(n)]
        busy0, total0 = bc.machine_jiffies()
        srv0 = bc.proc_cpu_s(server.pid) if server.pid else 0.0
        child = subprocess.run(
            [sys.executable, __file__, "_naive", "--model", str(args.model),
             "--source-fps", str(source_fps), "--warmup", str(args.warmup + 10),
             "--duration", str(args.duration), *urls],
            capture_output=True, text=True, timeout=args.duration + args.warmup + 120,
            # RTSP over TCP, as the hub reads it (FFmpeg's default, UDP, loses packets here)
            env={**os.environ, "OPENCV_FFMPEG_CAPTURE_OPTIONS": "rtsp_transport;tcp"},
        )  # fmt: skip
        busy1, total1 = bc.machine_jiffies()
        srv1 = bc.proc_cpu_s(server.pid) if server.pid else 0.0
        if child.returncode != 0:
            raise bc.BenchError(f"naive baseline failed:\n{child.stderr[-3000:]}")
        res = json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        server.stop()
    elapsed, cpu = res["elapsed"], res["cpu_s"]
    fps, ins = res["analysed_fps"], res["input_fps"]
    cam_seconds = sum(fps) * elapsed / 5
    measured = 1000 * cpu / cam_seconds if cam_seconds else None
    floor = source_fps * bc.FLOOR_DECODE_MS + 5 * bc.FLOOR_DETECT_MS
    machine_busy = 100.0 * (busy1 - busy0) / max(1, total1 - total0)
    whole = args.duration + args.warmup + 12  # the child's life, roughly
    other = max(0.0, machine_busy * ncores - 100 * (cpu + srv1 - srv0) / whole)
    keeps = min(fps) >= 0.95 * 5 and min(ins) >= 0.95 * source_fps
    return ModeRun("naive", n, min(fps), sum(fps) / n, min(ins), 100 * cpu / elapsed, other,
                   measured, floor / measured if measured else None, res["rss_mib"], keeps,
                   [])  # fmt: skip


# -- soak --------------------------------------------------------------------------------


def soak(args: argparse.Namespace) -> int:
    import tempfile

    n = args.cameras[0]
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    server = RtspServer({f"cam{i + 1}": args.clip for i in range(n)})
    bc.start_server(server)
    ns = hub_args(args, "on")
    hub = HubProcess(work, bc.hub_config([server.url(f"cam{i + 1}") for i in range(n)], ns))
    samples: list[tuple[float, float]] = []
    try:
        hub.start(timeout=120)
        assert hub.proc is not None
        bc.wait_online(hub, [f"bench-{i + 1:02d}" for i in range(n)], 120)
        print(f"soak: {n} cameras, {args.duration:g} s, RSS every {args.interval:g} s "
              f"(warm-up {args.warmup + 30:g} s excluded: the clip rings fill in 30 s)",
              flush=True)  # fmt: skip
        time.sleep(args.warmup + 30)
        t0 = time.monotonic()
        while (t := time.monotonic() - t0) < args.duration:
            samples.append((t, bc.proc_status_kib(hub.proc.pid, "VmRSS") / 1024))
            time.sleep(args.interval)
        samples.append((time.monotonic() - t0, bc.proc_status_kib(hub.proc.pid, "VmRSS") / 1024))
    finally:
        hub.stop()
        server.stop()
    ts, rss = [s[0] for s in samples], [s[1] for s in samples]
    slope_h = _slope(samples) * 3600
    late = _slope(samples[len(samples) // 2 :]) * 3600
    print(
        f"RSS start {rss[0]:.1f} MiB, end {rss[-1]:.1f} MiB, max {max(rss):.1f} MiB, "
        f"min {min(rss):.1f} MiB; slope {slope_h:+.1f} MiB/hour over {ts[-1]:.0f} s, "
        f"{late:+.1f} MiB/hour over the second half"
    )
    if args.json:
        figures = {"cameras": n, "samples": samples, "slope_mib_per_h": slope_h,
                   "late_slope_mib_per_h": late}  # fmt: skip
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope (MiB per second) of (t, rss) samples."""
    if len(samples) < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / len(samples)
    mean_r = sum(r for _, r in samples) / len(samples)
    var = sum((t - mean_t) ** 2 for t, _ in samples) or 1.0
    return sum((t - mean_t) * (r - mean_r) for t, r in samples) / var


# -- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_naive":
        p = argparse.ArgumentParser()
        p.add_argument("--model", required=True)
        p.add_argument("--source-fps", type=float, required=True)
        p.add_argument("--warmup", type=float, required=True)
        p.add_argument("--duration", type=float, required=True)
        p.add_argument("urls", nargs="+")
        a = p.parse_args(argv[1:])
        print(json.dumps(naive_child(a.urls, a.model, 5.0, a.source_fps, a.warmup, a.duration)),
              flush=True)  # fmt: skip
        os._exit(0)  # capture threads still in FFmpeg: no interpreter teardown under them
    command = "scale"
    if argv and argv[0] in ("scale", "soak"):
        command, argv = argv[0], argv[1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cameras", type=int, nargs="+", default=[16, 24, 32])
    p.add_argument("--modes", nargs="+", default=["naive", "embedded", "workers"],
                   choices=["naive", "embedded", "workers"])  # fmt: skip
    p.add_argument("--hub-workers", type=int, default=2, help="N of run --workers N")
    p.add_argument("--duration", type=float, default=20.0, help="window (soak: total) seconds")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--interval", type=float, default=10.0, help="soak: RSS sampling period")
    p.add_argument("--batch", type=int, default=1, help="detector.batch_size (CPU: 1)")
    p.add_argument("--mounts", choices=("shared", "per-camera"), default="shared",
                   help="shared (default): every camera reads one RTSP mount, so the test "
                   "server's encoder does not eat the cores being measured; per-camera: one "
                   "encoder each")  # fmt: skip
    p.add_argument("--clip", type=Path, default=bc.DEFAULT_CLIP)
    p.add_argument("--model", type=Path, default=bc.DEFAULT_MODEL)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    machine = bc.machine_info()
    bc.print_machine(machine)
    if command == "soak":
        return soak(args)
    ncores = machine["cores"]
    source_fps = bc.clip_fps(args.clip)
    floor_ms = source_fps * bc.FLOOR_DECODE_MS + 5 * bc.FLOOR_DETECT_MS
    floor_cams = ncores * 1000 / floor_ms
    print(
        f"floor: {floor_ms:.1f} ms per camera-second → {floor_cams:.1f} cameras on "
        f"{ncores} cores; source {source_fps:.2f} fps, detect 5 fps, motion gate off"
    )
    decode_ms, detect_ms, today_ms = measure_floor(args.clip, args.model, source_fps)
    today_cams = ncores * 1000 / today_ms
    print(
        f"floor measured now: decode {decode_ms:.2f} ms + detect {detect_ms:.2f} ms per frame "
        f"→ {today_ms:.1f} ms per camera-second, {today_cams:.1f} cameras on {ncores} cores "
        f"({today_ms / floor_ms:.2f}x the documented floor's cost)"
    )
    runs: list[ModeRun] = []
    for n in args.cameras:
        for mode in args.modes:
            print(f"\n== {mode}: {n} cameras", flush=True)
            try:
                run = (naive_run(n, args, source_fps, ncores) if mode == "naive"
                       else hub_run(mode, n, args, source_fps, ncores))  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - report, go on with the others
                print(f"   failed: {exc}"[:2000], flush=True)
                continue
            runs.append(run)
            print(f"   analysed fps min {run.analysed_fps_min:.2f} mean "
                  f"{run.analysed_fps_mean:.2f}; input min {run.input_fps_min:.1f}; CPU "
                  f"{run.cpu_pct_core:.0f} % of a core (others {run.other_cpu_pct_core:.0f} %); "
                  f"{bc.fmt(run.ms_per_cam_s, '.1f')} ms/camera-s, efficiency "
                  f"{bc.fmt(run.efficiency, '.2f')}; RSS {run.rss_mib:.0f} MiB; "
                  f"{'keeps up' if run.keeps_up else 'BEHIND'}", flush=True)  # fmt: skip
    print("\nmode       most cameras kept up   ratio to floor (count)   to today's floor   "
          "ratio (cost)   to today's floor")  # fmt: skip
    summary: dict[str, Any] = {}
    for mode in args.modes:
        mine = [r for r in runs if r.mode == mode]
        if not mine:
            continue
        kept = max((r.cameras for r in mine if r.keeps_up), default=0)
        effs = [r.efficiency for r in mine if r.efficiency]
        eff = max(effs) if effs else None
        eff_today = eff * today_ms / floor_ms if eff else None
        summary[mode] = {"kept_up": kept, "count_ratio": kept / floor_cams,
                         "count_ratio_today": kept / today_cams, "cost_ratio": eff,
                         "cost_ratio_today": eff_today}  # fmt: skip
        print(f"{mode:10s} {kept:>20d}   {kept / floor_cams:>22.2f}   "
              f"{kept / today_cams:>16.2f}   {bc.fmt(eff, '.2f'):>12s}   "
              f"{bc.fmt(eff_today, '.2f'):>16s}")  # fmt: skip
    emb = sorted((r for r in runs if r.mode == "embedded"), key=lambda r: r.cameras)
    if len(emb) >= 2 and emb[-1].cameras > emb[0].cameras:
        per = (emb[-1].rss_mib - emb[0].rss_mib) / (emb[-1].cameras - emb[0].cameras)
        summary["rss_mib_per_added_camera"] = per
        print(
            f"\nmemory per added camera (embedded, peak RSS {emb[0].cameras} → "
            f"{emb[-1].cameras}): {per:.1f} MiB"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine,
                    "floor_cameras": floor_cams,
                    "floor_today": {
                        "decode_ms": decode_ms,
                        "detect_ms": detect_ms,
                        "ms_per_camera_s": today_ms,
                        "cameras": today_cams,
                    },
                    "runs": [asdict(r) for r in runs],
                    "summary": summary,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
