#!/usr/bin/env python
"""Throughput benchmark: how many live RTSP cameras one hub analyses at their detect fps.

For each camera count N it starts a real RTSP server (the GStreamer test peer,
``tests/peers/rtsp_server.py``) looping a clip as N live cameras, runs the hub
(``python -m shaobing.cli run``) on N cameras reading those streams with the whole
pipeline (decode, sampling, motion gate, detection, tracking, a loitering rule),
and measures over a fixed window, once every camera is online and warmed up:

* analysed fps per camera, from the difference of the API's ``frames_analysed``
  counters over the window (not the instantaneous ``analysed_fps``);
* input (decoded) fps, frames dropped by the analysis queue, frames detected vs
  motion-gated, reconnects;
* CPU time of the hub process (user+sys from ``/proc/<pid>/stat``), of the RTSP
  server, and of the whole machine (``/proc/stat``); peak RSS (``VmHWM``);
* the efficiency against the cost floor of PERFORMANCE.md.

Run from the repository root::

    .venv/bin/python bench/bench_cameras.py --cameras 1 4 8 --duration 40 --json out.json

See bench/README.md for how to read the figures. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from core.assets import assets_dir  # noqa: E402
from tests.hubproc import HubProcess  # noqa: E402
from tests.peers.procs import PeerError, RtspServer, check_gst_python  # noqa: E402

DEFAULT_CLIP = assets_dir() / "videos" / "crosswalk_people.mp4"
DEFAULT_MODEL = assets_dir() / "models" / "yolox_nano.onnx"

# PERFORMANCE.md, CPU ms per frame on one core (640x360 H.264, yolox_nano batch 1).
FLOOR_DECODE_MS = 0.725  # H.264 decode, every frame of the stream
FLOOR_DETECT_MS = 8.44  # reformat 0.40 + letterbox pad 0.17 + inference 7.9 (rounded in the doc)

WHOLE_FRAME = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A run that could not be measured (the message says why)."""


# -- the machine ---------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        m = re.search(r"^MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text(), re.M)
        mem_kib = int(m.group(1)) if m else 0
    except OSError:
        pass
    versions: dict[str, str] = {}
    for mod in ("av", "onnxruntime", "numpy", "cv2"):
        try:
            versions[mod] = str(__import__(mod).__version__)
        except Exception as exc:  # noqa: BLE001 - report, do not fail
            versions[mod] = f"unavailable ({exc.__class__.__name__})"
    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count() or 1,
        "cores_usable": len(os.sched_getaffinity(0)),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "versions": versions,
        "loadavg_at_start": list(os.getloadavg()),
    }


def clip_fps(path: Path) -> float:
    """The clip's real average frame rate (frames / duration), from its packets."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stamps = [
            float(p.pts * p.time_base)
            for p in container.demux(stream)
            if p.pts is not None and p.size
        ]
    if len(stamps) < 2:
        return float(stream.average_rate or 25)
    stamps.sort()
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


# -- /proc readings --------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    """user+sys CPU seconds of a process (all its threads)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime = field 14, stime = field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kib(pid: int, key: str) -> int:
    m = re.search(rf"^{key}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(m.group(1)) if m else 0


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs from /proc/stat (idle + iowait = not busy)."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(parts[:8])  # guest time is already inside user/nice
    idle = parts[3] + parts[4]
    return total - idle, total


# -- one run -------------------------------------------------------------------


@dataclass
class CameraFigures:
    id: str
    state_end: str
    analysed_fps: float
    input_fps: float
    analysed: int
    detected: int
    gated: int
    dropped: int
    reconnects: int
    decode_errors: int
    last_error: str | None


@dataclass
class RunFigures:
    cameras: int
    mounts: int
    window_s: float
    time_to_online_s: float
    target_fps: float
    source_fps: float
    analysed_fps_mean: float
    analysed_fps_min: float
    input_fps_mean: float
    input_fps_min: float
    frames_analysed: int
    frames_detected: int
    frames_gated: int
    frames_dropped: int
    reconnects: int
    hub_cpu_s: float
    hub_cpu_pct_core: float
    hub_cpu_pct_machine: float
    server_cpu_pct_core: float
    machine_busy_pct: float
    other_cpu_pct_core: float
    hub_peak_rss_mib: float
    server_rss_mib: float
    floor_ms_per_cam_s: float
    measured_ms_per_cam_s: float | None
    efficiency: float | None
    floor_ms_at_detect_rate: float
    efficiency_at_detect_rate: float | None
    cameras_per_machine_at_measured_cost: float | None
    per_camera: list[CameraFigures] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    recorder_cpu_pct_core: float | None = None  # --record: the recorder thread's own CPU


def hub_config(urls: list[str], args: argparse.Namespace) -> dict[str, Any]:
    cameras = []
    for i, url in enumerate(urls):
        cameras.append(
            {
                "id": f"bench-{i + 1:02d}",
                "name": f"bench camera {i + 1}",
                "source": {"url": url, "transport": "tcp"},
                "detect_fps": args.detect_fps,
                "zones": [{"name": "frame", "points": WHOLE_FRAME}],
                "rules": [
                    {
                        # a long threshold: tracking and the rule run, no alert fires
                        "name": "frame-loitering",
                        "type": "loitering",
                        "zone": "frame",
                        "min_duration_s": 3600,
                    },
                    # --rule: a rule about small objects besides (regions: auto turns on)
                    *(
                        [{"name": "frame-extra", "type": args.rule, "zone": "frame",
                          "min_duration_s": 3600}]
                        if args.rule != "loitering"
                        else []
                    ),  # fmt: skip
                ],
                "motion": {"enabled": args.motion == "on"},
                # --record: every camera also recorded (continuous, 10 s segments)
                **({"record": {"mode": "continuous"}} if args.record else {}),
                "detect": {
                    "regions": {"on": True, "off": False}.get(args.regions, "auto"),
                    **({"tiles": args.tiles} if args.tiles else {}),
                },
            }
        )
    return {
        "detector": {
            "model": str(args.model),
            "workers": args.workers,
            "batch_size": args.batch,
        },
        "alerts": {"cooldown_s": 600},
        "logging": {"level": "INFO"},
        "cameras": cameras,
    }


def recorder_cpu_s(hub: HubProcess) -> float:
    """The recorder thread's CPU seconds so far (``/healthz`` recording.cpu_s)."""
    health = httpx.get(f"{hub.base}/healthz", timeout=10).json()
    return float(health["recording"]["cpu_s"])


def cameras_by_id(hub: HubProcess) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in hub.get("/api/cameras")}


def wait_online(hub: HubProcess, ids: list[str], timeout: float) -> float:
    start = time.monotonic()
    deadline = start + timeout
    states: dict[str, str] = {}
    errors: dict[str, str | None] = {}
    while time.monotonic() < deadline:
        if hub.proc is not None and hub.proc.poll() is not None:
            raise BenchError(
                f"hub exited with status {hub.proc.returncode} before the cameras came online:\n"
                f"{hub.log()[-4000:]}"
            )
        try:
            cams = cameras_by_id(hub)
        except httpx.HTTPError:
            time.sleep(0.5)
            continue
        states = {i: (cams.get(i, {}).get("status") or {}).get("state", "missing") for i in ids}
        errors = {i: (cams.get(i, {}).get("status") or {}).get("last_error") for i in ids}
        if all(s == "online" for s in states.values()):
            return time.monotonic() - start
        time.sleep(0.5)
    not_online = {i: (s, errors.get(i)) for i, s in states.items() if s != "online"}
    lines = "\n".join(f"  {i}: state={s} last_error={e!r}" for i, (s, e) in not_online.items())
    raise BenchError(
        f"{len(not_online)} of {len(ids)} camera(s) not online after {timeout:.0f} s:\n{lines}\n"
        f"--- hub log (tail) ---\n{hub.log()[-4000:]}"
    )


def log_problems(text: str, limit: int = 20) -> list[str]:
    keep = [
        ln for ln in text.splitlines() if re.search(r"\b(ERROR|CRITICAL|Traceback|WARNING)\b", ln)
    ]
    return keep[-limit:]


def start_server(server: RtspServer, attempts: int = 3) -> None:
    """Start the RTSP test peer, retrying: with several mounts its producer threads can
    crash at start-up (PyGObject: "Expected Gst.Sample, but got gi.repository.Gst.Sample")."""
    for attempt in range(1, attempts + 1):
        try:
            server.start()
            return
        except PeerError as exc:
            if attempt == attempts:
                raise
            first = str(exc).splitlines()[0][:300]
            print(
                f"   RTSP server failed to start (attempt {attempt}): {first}; retrying", flush=True
            )
            time.sleep(1.0)


@dataclass
class HubLaunch:
    """How :func:`run_one` starts the hub and reads its costs; bench_scale.py runs
    ``run --workers N`` (extra arguments, a Redis bus, CPU and memory of the process tree)."""

    config: Callable[[list[str], argparse.Namespace], dict[str, Any]] = hub_config
    hub_args: list[str] = field(default_factory=list)
    cpu_s: Callable[[int], float] = proc_cpu_s
    status_kib: Callable[[int, str], int] = proc_status_kib


def run_one(
    n: int, args: argparse.Namespace, source_fps: float, ncores: int,
    launch: HubLaunch | None = None,
) -> RunFigures:  # fmt: skip
    launch = launch or HubLaunch()
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{n}cam-"))
    mount_names = [f"cam{i + 1}" for i in range(n)] if args.mounts == "per-camera" else ["cam"]
    server = RtspServer({m: args.clip for m in mount_names})
    hub: HubProcess | None = None
    failed = True
    try:
        print(f"\n== {n} camera(s): RTSP server with {len(mount_names)} mount(s) ...", flush=True)
        start_server(server)
        urls = [server.url(mount_names[i % len(mount_names)]) for i in range(n)]
        ids = [f"bench-{i + 1:02d}" for i in range(n)]
        hub = HubProcess(workdir, launch.config(urls, args), args=launch.hub_args)
        hub.start(timeout=args.online_timeout)
        assert hub.proc is not None
        hub_pid, server_pid = hub.proc.pid, server.pid
        assert server_pid is not None
        try:
            to_online = wait_online(hub, ids, args.online_timeout)
        except BenchError as exc:
            raise BenchError(
                f"{exc}\n--- RTSP server stderr (tail) ---\n{server.stderr()[-2000:]}"
            ) from None
        print(
            f"   all {n} online after {to_online:.1f} s; warming up {args.warmup:g} s ...",
            flush=True,
        )
        time.sleep(args.warmup)

        # -- window start
        before = cameras_by_id(hub)
        hub_cpu0, srv_cpu0 = launch.cpu_s(hub_pid), proc_cpu_s(server_pid)
        rec_cpu0 = recorder_cpu_s(hub) if args.record else 0.0
        busy0, total0 = machine_jiffies()
        t0 = time.monotonic()
        print(f"   measuring {args.duration:g} s ...", flush=True)
        states_seen: dict[str, set[str]] = {i: set() for i in ids}
        end = t0 + args.duration
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(5.0, left))
            if hub.proc.poll() is not None:
                raise BenchError(
                    f"hub exited with status {hub.proc.returncode} during the "
                    f"window:\n{hub.log()[-4000:]}"
                )
            if time.monotonic() < end - 0.5:  # sparse polling: the API costs hub CPU too
                for cid, cam in cameras_by_id(hub).items():
                    if cid in states_seen:
                        states_seen[cid].add((cam.get("status") or {}).get("state", "?"))
        # -- window end
        hub_cpu1, srv_cpu1 = launch.cpu_s(hub_pid), proc_cpu_s(server_pid)
        rec_cpu1 = recorder_cpu_s(hub) if args.record else 0.0
        busy1, total1 = machine_jiffies()
        t1 = time.monotonic()
        after = cameras_by_id(hub)
        peak_rss = launch.status_kib(hub_pid, "VmHWM") / 1024
        server_rss = proc_status_kib(server_pid, "VmRSS") / 1024
        elapsed = t1 - t0

        per_cam: list[CameraFigures] = []
        warnings: list[str] = []
        for cid in ids:
            a = before[cid]["status"]
            b = after[cid]["status"]

            def delta(key: str, a: dict[str, Any] = a, b: dict[str, Any] = b) -> int:
                return int(b.get(key, 0)) - int(a.get(key, 0))

            analysed = delta("frames_analysed")
            gated = delta("frames_gated")
            per_cam.append(
                CameraFigures(
                    id=cid,
                    state_end=b["state"],
                    analysed_fps=analysed / elapsed,
                    input_fps=delta("frames_decoded") / elapsed,
                    analysed=analysed,
                    detected=analysed - gated,
                    gated=gated,
                    dropped=delta("frames_dropped"),
                    reconnects=delta("reconnects"),
                    decode_errors=delta("decode_errors"),
                    last_error=b.get("last_error"),
                )
            )
            seen = states_seen[cid] | {b["state"]}
            if seen != {"online"}:
                warnings.append(f"{cid}: states seen in the window {sorted(seen)}")
            if analysed == 0:
                warnings.append(f"{cid}: frames_analysed did not increase over the window")
            if delta("frames_decoded") == 0:
                warnings.append(f"{cid}: frames_decoded did not increase over the window")
        cpu_s = hub_cpu1 - hub_cpu0
        srv_s = srv_cpu1 - srv_cpu0
        d_total = max(1, total1 - total0)
        machine_busy = 100.0 * (busy1 - busy0) / d_total
        other_pct_core = max(0.0, machine_busy * ncores - 100 * (cpu_s + srv_s) / elapsed)

        analysed_total = sum(c.analysed for c in per_cam)
        detected_total = sum(c.detected for c in per_cam)
        floor = source_fps * FLOOR_DECODE_MS + args.detect_fps * FLOOR_DETECT_MS
        cam_seconds = analysed_total / args.detect_fps  # analysed camera-seconds
        measured = 1000.0 * cpu_s / cam_seconds if cam_seconds > 0 else None
        efficiency = floor / measured if measured else None
        # The same, counting only the detections actually run (motion gate skips some).
        detect_rate = detected_total / cam_seconds if cam_seconds > 0 else 0.0
        floor_work = source_fps * FLOOR_DECODE_MS + detect_rate * FLOOR_DETECT_MS
        eff_work = floor_work / measured if measured else None

        fps = [c.analysed_fps for c in per_cam]
        ins = [c.input_fps for c in per_cam]
        if min(ins) < 0.95 * source_fps:
            warnings.append(
                f"input below the source's {source_fps:.2f} fps on some camera "
                f"(min {min(ins):.2f}): the server or the hub's readers lag"
            )
        if min(fps) < 0.95 * args.detect_fps:
            warnings.append(f"analysed fps below target on some camera (min {min(fps):.2f})")
        dropped = sum(c.dropped for c in per_cam)
        if dropped:
            warnings.append(f"{dropped} sampled frame(s) dropped by the analysis queues")
        if machine_busy > 90:
            warnings.append(f"machine CPU saturated ({machine_busy:.0f} % busy)")
        if other_pct_core > 20:
            warnings.append(
                f"other processes used {other_pct_core:.0f} % of a core during the "
                "window: figures are noisy"
            )
        problems = log_problems(hub.log())
        if problems:
            warnings.append("hub log has warnings/errors:\n      " + "\n      ".join(problems))

        failed = False
        return RunFigures(
            cameras=n,
            mounts=len(mount_names),
            window_s=round(elapsed, 2),
            time_to_online_s=round(to_online, 2),
            target_fps=args.detect_fps,
            source_fps=round(source_fps, 3),
            analysed_fps_mean=sum(fps) / n,
            analysed_fps_min=min(fps),
            input_fps_mean=sum(ins) / n,
            input_fps_min=min(ins),
            frames_analysed=analysed_total,
            frames_detected=detected_total,
            frames_gated=analysed_total - detected_total,
            frames_dropped=dropped,
            reconnects=sum(c.reconnects for c in per_cam),
            hub_cpu_s=round(cpu_s, 2),
            recorder_cpu_pct_core=(round(100 * (rec_cpu1 - rec_cpu0) / elapsed, 3)
                                   if args.record else None),
            hub_cpu_pct_core=100.0 * cpu_s / elapsed,
            hub_cpu_pct_machine=100.0 * cpu_s / elapsed / ncores,
            server_cpu_pct_core=100.0 * srv_s / elapsed,
            machine_busy_pct=machine_busy,
            other_cpu_pct_core=other_pct_core,
            hub_peak_rss_mib=peak_rss,
            server_rss_mib=server_rss,
            floor_ms_per_cam_s=floor,
            measured_ms_per_cam_s=measured,
            efficiency=efficiency,
            floor_ms_at_detect_rate=floor_work,
            efficiency_at_detect_rate=eff_work,
            cameras_per_machine_at_measured_cost=(ncores * 1000.0 / measured) if measured else None,
            per_camera=per_cam,
            warnings=warnings,
        )
    finally:
        if hub is not None:
            try:
                hub.stop()
            except Exception as exc:  # noqa: BLE001
                print(f"   (stopping the hub failed: {exc!r})", file=sys.stderr)
        server.stop()
        if args.keep or failed:
            print(f"   work dir kept: {workdir} (hub.yaml, hub.log)", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# -- output --------------------------------------------------------------------


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_machine(m: dict[str, Any]) -> None:
    v = m["versions"]
    print(
        f"machine: {m['cpu_model']}, {m['cores']} cores ({m['cores_usable']} usable), "
        f"{m['ram_gib']} GiB RAM, kernel {m['kernel']}"
    )
    print(
        f"         Python {m['python']}, PyAV {v['av']}, onnxruntime {v['onnxruntime']}, "
        f"numpy {v['numpy']}, OpenCV {v['cv2']}; load average at start "
        f"{' '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}"
    )


def print_run(r: RunFigures) -> None:
    print(
        f"\n-- {r.cameras} camera(s), {r.mounts} RTSP mount(s), window {r.window_s:.1f} s, "
        f"online after {r.time_to_online_s:.1f} s"
    )
    print(
        f"   {'camera':<10} {'state':<8} {'anl fps':>7} {'in fps':>7} {'analysed':>8} "
        f"{'detected':>8} {'gated':>6} {'dropped':>7} {'reconn':>6}"
    )
    for c in r.per_camera:
        print(
            f"   {c.id:<10} {c.state_end:<8} {c.analysed_fps:7.2f} {c.input_fps:7.2f} "
            f"{c.analysed:8d} {c.detected:8d} {c.gated:6d} {c.dropped:7d} {c.reconnects:6d}"
        )
    print(
        f"   hub CPU {r.hub_cpu_s:.1f} s = {r.hub_cpu_pct_core:.0f} % of a core; RTSP server "
        f"{r.server_cpu_pct_core:.0f} % of a core; machine {r.machine_busy_pct:.0f} % busy "
        f"(others {r.other_cpu_pct_core:.0f} % of a core)"
    )
    print(
        f"   cost: measured {fmt(r.measured_ms_per_cam_s, '.1f')} CPU ms per analysed "
        f"camera-second vs floor {r.floor_ms_per_cam_s:.1f} -> efficiency "
        f"{fmt(r.efficiency, '.2f')}; vs floor at the detections actually run "
        f"({r.floor_ms_at_detect_rate:.1f} ms) -> {fmt(r.efficiency_at_detect_rate, '.2f')}"
    )
    if r.recorder_cpu_pct_core is not None:
        print(f"   recording: the recorder thread used {r.recorder_cpu_pct_core:.2f} % of a core "
              f"({r.recorder_cpu_pct_core / max(r.cameras, 1):.2f} % per camera)")  # fmt: skip
    for w in r.warnings:
        print(f"   ! {w}")


def print_summary(runs: list[RunFigures], m: dict[str, Any]) -> None:
    print(
        "\n== summary (target analysed fps per camera: "
        f"{runs[0].target_fps:g}; source {runs[0].source_fps:.2f} fps)"
    )
    print_machine(m)
    head = (
        f"{'cams':>4} | {'anl fps/cam':>11} | {'min':>5} | {'target':>6} | {'in fps':>6} | "
        f"{'dropped':>7} | {'det %':>5} | {'hub CPU':>7} | {'of mach':>7} | "
        f"{'server':>6} | {'busy':>5} | {'peak RSS':>8} | {'ms/cam-s':>8} | {'eff':>5} | "
        f"{'cams@cost':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in runs:
        det = 100.0 * r.frames_detected / r.frames_analysed if r.frames_analysed else 0.0
        print(
            f"{r.cameras:>4} | {r.analysed_fps_mean:>11.2f} | {r.analysed_fps_min:>5.2f} | "
            f"{r.target_fps:>6g} | {r.input_fps_mean:>6.2f} | {r.frames_dropped:>7d} | "
            f"{det:>5.0f} | {r.hub_cpu_pct_core:>6.0f}% | {r.hub_cpu_pct_machine:>6.0f}% | "
            f"{r.server_cpu_pct_core:>5.0f}% | {r.machine_busy_pct:>4.0f}% | "
            f"{r.hub_peak_rss_mib:>5.0f} MiB | {fmt(r.measured_ms_per_cam_s, '8.1f')} | "
            f"{fmt(r.efficiency, '5.2f')} | {fmt(r.cameras_per_machine_at_measured_cost, '9.1f')}"
        )
    print(
        f"floor: {runs[0].source_fps:.2f} x {FLOOR_DECODE_MS} + {runs[0].target_fps:g} x "
        f"{FLOOR_DETECT_MS} = {runs[0].floor_ms_per_cam_s:.1f} CPU ms per camera-second "
        f"({m['cores'] * 1000 / runs[0].floor_ms_per_cam_s:.1f} cameras on {m['cores']} cores)"
    )


# -- main ----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--cameras",
        type=int,
        nargs="+",
        default=[1, 4, 8],
        metavar="N",
        help="camera counts to run, one hub run each (default: 1 4 8)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=40.0,
        help="measurement window per run, seconds (default 40)",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help="seconds between all cameras online and the window (default 5)",
    )
    p.add_argument("--json", type=Path, metavar="OUT", help="write every figure to this file")
    p.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--detect-fps", type=float, default=5.0)
    p.add_argument("--workers", type=int, default=2, help="detector.workers (default 2)")
    p.add_argument(
        "--batch",
        type=int,
        default=4,
        help="detector.batch_size: frames of several cameras per detector call (1 = no "
        "batching; default 4, as the hub ships)",
    )
    p.add_argument(
        "--mounts",
        choices=("per-camera", "shared"),
        default="per-camera",
        help="per-camera: one RTSP mount (own encoder) per camera, closest to N "
        "independent cameras (default); shared: one mount all cameras read",
    )
    p.add_argument(
        "--motion",
        choices=("on", "off"),
        default="on",
        help="the hub's motion gate (default on, as the hub ships); off = detect "
        "every sampled frame, the floor's assumption",
    )
    p.add_argument(
        "--regions",
        choices=("on", "off", "auto"),
        default="auto",
        help="region detection: also detect on native-resolution crops around motion "
        "and small objects (cameras[].detect.regions; default auto, as the hub ships: on "
        "only with a rule about small objects, see --rule; off = before issue 14)",
    )
    p.add_argument(
        "--rule",
        choices=("loitering", "stopped_vehicle", "crowd"),
        default="loitering",
        help="besides the whole-frame loitering rule, a whole-frame rule of this type "
        "(min_duration_s 3600: it never fires); stopped_vehicle or crowd turn "
        "regions: auto on",
    )
    p.add_argument(
        "--tiles",
        type=lambda v: [int(x) for x in v.lower().split("x")],
        metavar="CxR",
        help="cameras[].detect.tiles, e.g. 2x1: detect on this grid of tiles too",
    )
    p.add_argument(
        "--online-timeout",
        type=float,
        default=90.0,
        help="seconds to wait for the hub's API and every camera online",
    )
    p.add_argument(
        "--record",
        action="store_true",
        help="record every camera too (record.mode continuous, the recorder's remux and index "
        "beside the analysis): run once with and once without to see what recording costs "
        "the analysis",
    )
    p.add_argument("--keep", action="store_true", help="keep each run's work dir (config, log)")
    args = p.parse_args(argv)
    if any(n < 1 for n in args.cameras):
        p.error("--cameras takes positive counts")
    if args.duration <= 0:
        p.error("--duration must be positive")
    for what, path in (("clip", args.clip), ("model", args.model)):
        if not path.is_file():
            p.error(f"{what} not found: {path}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)  # clean up (finally blocks) on SIGTERM too
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if inherited ignored
    try:
        check_gst_python()
    except PeerError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    machine = machine_info()
    source_fps = clip_fps(args.clip)
    print_machine(machine)
    print(
        f"clip {args.clip.name}: {source_fps:.2f} fps; model {args.model.name}; detect "
        f"{args.detect_fps:g} fps; workers {args.workers}; batch {args.batch}; "
        f"motion gate {args.motion}; regions {args.regions}; rule {args.rule}; "
        f"tiles {args.tiles}; "
        f"mounts {args.mounts}; recording {'continuous' if args.record else 'off'}"
    )
    runs: list[RunFigures] = []
    status = 0
    try:
        for n in args.cameras:
            try:
                run = run_one(n, args, source_fps, machine["cores"])
            except (BenchError, PeerError, TimeoutError, RuntimeError) as exc:
                print(f"\nbench: {n} camera(s) failed: {exc}", file=sys.stderr)
                status = 1
                continue
            except Exception as exc:  # noqa: BLE001 - e.g. the API stopped answering
                print(f"\nbench: {n} camera(s) failed: {exc!r}", file=sys.stderr)
                status = 1
                continue
            runs.append(run)
            print_run(run)
    except KeyboardInterrupt:
        print("\nbench: interrupted; hub and server stopped", file=sys.stderr)
        status = 130
    if runs:
        print_summary(runs, machine)
    if args.json is not None:
        payload = {
            "machine": machine,
            "settings": {
                "clip": str(args.clip),
                "model": str(args.model),
                "detect_fps": args.detect_fps,
                "workers": args.workers,
                "batch": args.batch,
                "mounts": args.mounts,
                "motion": args.motion,
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "source_fps": source_fps,
                "floor_decode_ms": FLOOR_DECODE_MS,
                "floor_detect_ms": FLOOR_DETECT_MS,
            },
            "runs": [asdict(r) for r in runs],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        print(f"figures written to {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
