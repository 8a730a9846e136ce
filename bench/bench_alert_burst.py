#!/usr/bin/env python
"""Alert bursts vs analysis throughput: the alert path on the analysis thread or off it.

One analysis thread runs the real detector and ``CameraAnalytics`` over the same
sampled frames (the crosswalk clip, decoded once at the detect fps and kept in
memory, so decoding is not measured) and, after each frame, hands over a burst of
K synthetic events, each with its own cooldown key so every one becomes an alert.
The mode decides what handing over costs the analysis thread:

* ``inline`` (the old design, rebuilt from today's functions): the analysis thread
  itself renders the evidence (``render_snapshots``: two full-resolution JPEGs,
  written with their SHA-256) and stores the alert (``AlertService.create``: one
  ``SqlUnitOfWork`` transaction with the alert, its history and outbox rows) before
  it analyses the next frame;
* ``producer`` (now): the analysis thread calls ``AlertProducer.on_event`` (a
  cooldown check and a queue put); the producer's thread renders the evidence and
  publishes on the ``MemoryEventBus``; ``AlertWorkers`` stores the alert on its own
  thread through the same ``AlertService``.

For each mode and K it reports the analysis thread's throughput (frames / wall time
of its loop), the time it spent handing the events of a frame over (mean, p95), and
for ``producer`` the time after the loop until every alert was stored (drain), with
the total wall time including the drain. The stored alerts are counted in the
database and must equal frames × K.

Run from the repository root::

    .venv/bin/python bench/bench_alert_burst.py --bursts 0 1 4 --json /tmp/burst.json

See bench/README.md. Nothing leaves the machine; everything is written in a temp dir.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import av  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from alerts.adapters.memory_bus import MemoryEventBus  # noqa: E402
from alerts.adapters.spool import SpoolingEventBus  # noqa: E402
from alerts.adapters.sql import AlertRecord, OutboxRecord, SqlUnitOfWork  # noqa: E402
from alerts.config import AlertsConfig  # noqa: E402
from alerts.domain.cooldown import CooldownGate  # noqa: E402
from alerts.domain.incidents import IncidentPolicy  # noqa: E402
from alerts.domain.routing import Router, Target  # noqa: E402
from alerts.evidence import render_snapshots  # noqa: E402
from alerts.messages import EventMessage  # noqa: E402
from alerts.producer import AlertProducer, CameraInfo  # noqa: E402
from alerts.service import AlertService, AlertWorkers  # noqa: E402
from analytics.config import DetectorConfig, LoiteringRule, MotionConfig, ZoneConfig  # noqa: E402
from analytics.detectors import Detector, create_detector  # noqa: E402
from analytics.pipeline import CameraAnalytics, CameraRulesConfig  # noqa: E402
from analytics.types import Event  # noqa: E402
from core.area import Area  # noqa: E402
from core.assets import assets_dir  # noqa: E402
from ingest.reader import SampledFrame, iter_sampled_frames  # noqa: E402
from shaobing.db import open_database  # noqa: E402

DEFAULT_CLIP = assets_dir() / "videos" / "crosswalk_people.mp4"
DEFAULT_MODEL = assets_dir() / "models" / "yolox_nano.onnx"
CAMERA = "bench-burst"
RULE = "frame-loitering"  # the camera's one rule; the synthetic events name it (zone drawn)
MODES = ("inline", "producer")
CLK_TCK = os.sysconf("SC_CLK_TCK")


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
    versions: dict[str, str] = {}
    for mod in ("onnxruntime", "av", "cv2", "numpy", "sqlalchemy"):
        try:
            versions[mod] = str(__import__(mod).__version__)
        except Exception as exc:  # noqa: BLE001 - report, do not fail
            versions[mod] = f"unavailable ({exc.__class__.__name__})"
    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count() or 1,
        "cores_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "versions": versions,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def machine_line(m: dict[str, Any]) -> str:
    v = m["versions"]
    return (
        f"{m['cpu_model']}, {m['cores']} cores ({m['cores_usable']} usable); "
        f"Python {m['python']}, onnxruntime {v['onnxruntime']}, PyAV {v['av']}, "
        f"OpenCV {v['cv2']}, SQLAlchemy {v['sqlalchemy']}; load average at start "
        f"{' '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}"
    )


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores; idle and iowait excluded)."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(parts[:8]) - parts[3] - parts[4]) / CLK_TCK


# -- inputs --------------------------------------------------------------------


def decode_frames(
    clip: Path, n: int, detect_fps: float, box: tuple[int, int]
) -> list[SampledFrame]:
    """The first ``n`` frames sampled at ``detect_fps``, as replay samples them."""
    frames: list[SampledFrame] = []
    with av.open(str(clip)) as container:
        for frame in iter_sampled_frames(
            container,
            camera_id=CAMERA,
            detect_fps=detect_fps,
            box=box,
            mode="replay",
            max_decode_errors=10,
        ):
            frames.append(frame)
            if len(frames) >= n:
                break
    if not frames:
        raise SystemExit(f"no frame decoded from {clip}")
    return frames


def make_analytics(detector: Detector, detect_fps: float, motion: bool) -> CameraAnalytics:
    """A whole-frame zone with a loitering rule that never fires (tracking and the rule
    run on every frame; the only alerts are the synthetic ones)."""
    zone = ZoneConfig(name="frame", points=[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)])
    rule = LoiteringRule(name=RULE, type="loitering", zone="frame", min_duration_s=3600)
    cfg = CameraRulesConfig(CAMERA, detect_fps, [zone], [rule], MotionConfig(enabled=motion))
    return CameraAnalytics(cfg, detector.class_names, use_schedules=False)


def burst(frame: SampledFrame, k: int) -> list[Event]:
    """K events for this frame, each with its own cooldown key, boxes inside the frame."""
    w, h = frame.frame_size
    events = []
    for i in range(k):
        x1 = w * (0.05 + 0.22 * (i % 4))
        y1 = h * (0.25 + 0.05 * (i // 4 % 4))
        box = (
            round(x1, 1),
            round(y1, 1),
            round(x1 + w * 0.18, 1),
            round(min(h - 1, y1 + h * 0.6), 1),
        )
        events.append(
            Event(
                camera_id=CAMERA,
                rule=RULE,
                type="loitering",
                ts=frame.wall_ts,
                pts=frame.pts,
                track_ids=[frame.seq * 100 + i],
                object_class="person",
                zone="frame",
                severity="low",
                measured=301.0,
                threshold=300.0,
                unit="s",
                explanation=f"bench burst: frame {frame.seq} event {i}",
                confidence=0.8,
                box=box,
                started_pts=max(0.0, frame.pts - 301.0),
                key=f"{frame.seq}-{i}",
            )  # fmt: skip
        )
    return events


# -- one run ---------------------------------------------------------------------


@dataclass
class RunFigures:
    mode: str
    k: int
    frames: int
    events: int
    analysis_s: float  # wall time of the analysis loop
    analysed_fps: float  # frames / analysis_s
    handover_ms_mean: float  # per frame: time the analysis thread spent on its K events
    handover_ms_p95: float
    handover_ms_max: float
    handover_max_frame: int  # index of the frame with the longest handover
    analysis_thread_cpu_s: float
    analysis_busy: float  # analysis thread CPU / analysis_s (<1: it waited for a core or the GIL)
    drain_s: float  # after the loop until every alert was stored (0 for inline)
    total_s: float  # analysis_s + drain_s
    fps_incl_drain: float  # frames / total_s
    process_cpu_s: float  # the whole process (all threads) over the run, incl. drain
    process_cores: float  # process_cpu_s / total_s
    others_cores: float  # the rest of the machine's busy CPU over the run, in cores
    stored: int  # alerts in the database
    stored_ok: bool  # stored == frames × K
    with_evidence: int  # alerts in the database with a snapshot
    outbox_rows: int
    published_without_evidence: int  # producer: renderer queue full → published without
    max_backlog: int  # producer: deepest render queue seen by the analysis thread


def p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def run_once(
    mode: str,
    k: int,
    frames: list[SampledFrame],
    detector: Detector,
    args: argparse.Namespace,
    workdir: Path,
) -> RunFigures:
    workdir.mkdir(parents=True)
    snapshots = workdir / "snapshots"
    engine, sessions = open_database(f"sqlite:///{workdir / 'alerts.db'}")
    alerts_cfg = AlertsConfig(cooldown_s=600, jpeg_quality=args.jpeg_quality)
    router = Router(rules=[], departments={}, targets={"centre": Target("centre")})
    # every synthetic event its own row: the store path is measured, not incident grouping
    service = AlertService(lambda: SqlUnitOfWork(sessions), lambda: router,
                           incidents=IncidentPolicy(enabled=False))  # fmt: skip
    info = CameraInfo("bench camera", Area())
    analytics = make_analytics(detector, args.detect_fps, args.motion == "on")

    bus = producer = workers = None
    if mode == "producer":
        bus = MemoryEventBus()
        if args.bus == "spool":  # as the hub: each event fsynced to a file until stored
            bus = SpoolingEventBus(bus, workdir / "spool")
        producer = AlertProducer(
            bus, alerts_cfg, snapshots, {CAMERA: info}, queue_size=args.queue_size
        )
        workers = AlertWorkers(service, bus)
        workers.start()
        producer.start()
    gate = CooldownGate()

    def inline(event: Event, frame: SampledFrame, polygon: Any) -> None:
        """The old path: cooldown, evidence and the SQL commit on the analysis thread."""
        if not gate.allow(event, frame.t, alerts_cfg.cooldown_s):
            return
        message = EventMessage(str(uuid.uuid4()), event, info.name, info.area, time.time())
        message.evidence = render_snapshots(
            message.alert_id, event.camera_id, message.created_at, event, frame, polygon,
            snapshots, alerts_cfg.jpeg_quality,
        )  # fmt: skip
        service.create(message)

    handover: list[float] = []
    out: dict[str, float] = {}
    backlog = [0]
    failure: list[BaseException] = []

    def analyse() -> None:
        try:
            cpu0 = time.thread_time()
            t0 = time.perf_counter()
            for frame in frames:
                motion = analytics.check_motion(frame.image, frame.t, frame.source_size)
                detections = detector.detect([frame.image])[0] if motion.detect else None
                _, real = analytics.process(
                    detections, t=frame.t, pts=frame.pts, wall_ts=frame.wall_ts,
                    source_size=frame.source_size, frame_size=frame.frame_size, gate=motion,
                )  # fmt: skip
                events = real + burst(frame, k)  # built outside the timed handover
                h0 = time.perf_counter()
                for event in events:
                    # as Hub._on_event: the rule's polygon, then hand over
                    polygon = analytics.zones_for_drawing().get(event.rule)
                    if producer is not None:
                        producer.on_event(event, frame, polygon, t=frame.t)
                    else:
                        inline(event, frame, polygon)
                handover.append(time.perf_counter() - h0)
                if producer is not None:
                    backlog[0] = max(backlog[0], producer.backlog())
            out["analysis_s"] = time.perf_counter() - t0
            out["thread_cpu_s"] = time.thread_time() - cpu0
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failure.append(exc)

    expected = len(frames) * k
    cpu_before = os.times()
    busy_before = machine_busy_s()
    start = time.perf_counter()
    thread = threading.Thread(target=analyse, name="analysis-0")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    loop_end = time.perf_counter()
    drain_s = 0.0
    if producer is not None and workers is not None:
        deadline = loop_end + args.drain_timeout
        while service.counters.created < expected and time.perf_counter() < deadline:
            time.sleep(0.002)
        drain_s = time.perf_counter() - loop_end
    total_s = time.perf_counter() - start
    cpu_after = os.times()
    busy_after = machine_busy_s()
    if producer is not None and workers is not None:
        producer.stop()
        workers.stop()

    with sessions() as session:
        stored = session.scalar(select(func.count()).select_from(AlertRecord)) or 0
        with_evidence = (
            session.scalar(
                select(func.count())
                .select_from(AlertRecord)
                .where(AlertRecord.snapshot_path.is_not(None))
            )
            or 0
        )
        outbox = session.scalar(select(func.count()).select_from(OutboxRecord)) or 0
    engine.dispose()
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)

    n = len(frames)
    analysis_s = out["analysis_s"]
    process_cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    others = max(0.0, (busy_after - busy_before) - process_cpu)
    return RunFigures(
        mode=mode, k=k, frames=n, events=expected,
        analysis_s=round(analysis_s, 3), analysed_fps=round(n / analysis_s, 2),
        handover_ms_mean=round(1000 * sum(handover) / len(handover), 3),
        handover_ms_p95=round(1000 * p95(handover), 3),
        handover_ms_max=round(1000 * max(handover), 3),
        handover_max_frame=handover.index(max(handover)),
        analysis_thread_cpu_s=round(out["thread_cpu_s"], 3),
        drain_s=round(drain_s, 3), total_s=round(total_s, 3),
        fps_incl_drain=round(n / total_s, 2),
        analysis_busy=round(out["thread_cpu_s"] / analysis_s, 3),
        process_cpu_s=round(process_cpu, 3),
        process_cores=round(process_cpu / total_s, 3),
        others_cores=round(others / total_s, 3),
        stored=stored, stored_ok=stored == expected, with_evidence=with_evidence,
        outbox_rows=outbox,
        published_without_evidence=producer.without_evidence if producer is not None else 0,
        max_backlog=backlog[0],
    )  # fmt: skip


# -- report ----------------------------------------------------------------------

COLUMNS = (
    ("mode", "mode", "{}"),
    ("K", "k", "{}"),
    ("frames", "frames", "{}"),
    ("analysed fps", "analysed_fps", "{:.1f}"),
    ("handover ms mean", "handover_ms_mean", "{:.2f}"),
    ("p95", "handover_ms_p95", "{:.2f}"),
    ("drain s", "drain_s", "{:.2f}"),
    ("total s", "total_s", "{:.2f}"),
    ("fps incl. drain", "fps_incl_drain", "{:.1f}"),
    ("analysis busy", "analysis_busy", "{:.2f}"),
    ("process cores", "process_cores", "{:.2f}"),
    ("others", "others_cores", "{:.2f}"),
    ("stored", "stored", "{}"),
    ("with evidence", "with_evidence", "{}"),
    ("fps of each run", "analysed_fps_all", "{}"),
)


def summarise(runs: list[RunFigures]) -> list[dict[str, Any]]:
    """One row per (mode, K), in run order: the repeat with the median analysed fps (its
    figures together, not medians taken column by column), with the worst case over the
    repeats of what must not go wrong: the fewest stored and with evidence, the most
    published without evidence, ``stored_ok`` only if every repeat stored frames × K."""
    groups: dict[tuple[str, int], list[RunFigures]] = {}
    for r in runs:
        groups.setdefault((r.mode, r.k), []).append(r)
    rows = []
    for group in groups.values():
        median = sorted(group, key=lambda r: r.analysed_fps)[(len(group) - 1) // 2]
        row: dict[str, Any] = asdict(median)
        row.update(
            repeats=len(group),
            analysed_fps_all=[r.analysed_fps for r in group],
            stored=min(r.stored for r in group),
            stored_ok=all(r.stored_ok for r in group),
            with_evidence=min(r.with_evidence for r in group),
            published_without_evidence=max(r.published_without_evidence for r in group),
            max_backlog=max(r.max_backlog for r in group),
        )
        rows.append(row)
    return rows


def table(summary: list[dict[str, Any]]) -> str:
    cells = [[title for title, _, _ in COLUMNS]]
    stored_col = [key for _, key, _ in COLUMNS].index("stored")
    for d in summary:
        row = [
            " / ".join(f"{v:.1f}" for v in d[key])
            if isinstance(d[key], list)
            else fmt.format(d[key])
            for _, key, fmt in COLUMNS
        ]
        if not d["stored_ok"]:
            row[stored_col] += f" (≠{d['events']}!)"
        cells.append(row)
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bursts", type=int, nargs="+", default=[0, 1, 4], metavar="K",
                   help="events per analysed frame (default: 0 1 4)")  # fmt: skip
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--frames", type=int, default=150, help="sampled frames kept (default 150)")
    p.add_argument("--detect-fps", type=float, default=5.0)
    p.add_argument("--motion", choices=("on", "off"), default="on", help="the motion gate")
    p.add_argument("--queue-size", type=int, default=64,
                   help="AlertProducer render queue (default 64, as the hub)")  # fmt: skip
    p.add_argument("--jpeg-quality", type=int, default=85)
    p.add_argument("--bus", choices=("memory", "spool"), default="memory",
                   help="producer's bus: MemoryEventBus, or wrapped in SpoolingEventBus "
                   "as the hub now does (default memory)")  # fmt: skip
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per mode and K; the table shows medians (default 3)",
    )
    p.add_argument("--drain-timeout", type=float, default=120.0)
    p.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--json", type=Path, metavar="OUT", help="write every figure to OUT")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (DBs, snapshots)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # One warning per event published without evidence would flood the output; counted below.
    logging.getLogger("alerts.producer").setLevel(logging.ERROR)
    for path in (args.clip, args.model):
        if not path.is_file():
            print(f"missing: {path}", file=sys.stderr)
            return 2

    machine = machine_info()
    print(f"machine: {machine_line(machine)}", flush=True)
    detector = create_detector(DetectorConfig(model=str(args.model)), args.model.parent, None)
    t0 = time.perf_counter()
    frames = decode_frames(args.clip, args.frames, args.detect_fps, detector.input_size)
    print(f"clip: {args.clip.name}, {len(frames)} frames sampled at {args.detect_fps:g} fps "
          f"({frames[0].source_size[0]}x{frames[0].source_size[1]} → "
          f"{frames[0].frame_size[0]}x{frames[0].frame_size[1]}), decoded in "
          f"{time.perf_counter() - t0:.1f} s; detector {detector.name}", flush=True)  # fmt: skip

    root = Path(tempfile.mkdtemp(prefix="bench-burst-"))
    runs: list[RunFigures] = []
    try:
        # Warm-up (discarded): model session, JPEG encoder, SQLAlchemy mappers and statements.
        for mode in args.modes:
            run_once(mode, 1, frames[:10], detector, args, root / f"warmup-{mode}")
        for rep in range(args.repeat):
            for k in args.bursts:
                for mode in args.modes:
                    r = run_once(mode, k, frames, detector, args, root / f"{mode}-k{k}-r{rep}")
                    runs.append(r)
                    print(f"  {mode:8s} K={k}: {r.analysed_fps:.1f} fps analysed, handover "
                          f"{r.handover_ms_mean:.2f} ms/frame (p95 {r.handover_ms_p95:.2f}), "
                          f"drain {r.drain_s:.2f} s, stored {r.stored}/{r.events}"
                          f"{'' if r.stored_ok else ' MISMATCH'}, with evidence "
                          f"{r.with_evidence}", flush=True)  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"work dir kept: {root}")

    summary = summarise(runs)
    print()
    if args.repeat > 1:
        print(f"the run with the median analysed fps of {args.repeat} per mode and K "
              "(stored, with evidence: the fewest in any run):")  # fmt: skip
    print(table(summary))
    print()
    print(f"machine: {machine_line(machine)}")
    print("analysed fps = frames / wall time of the analysis loop; handover = per frame, the "
          "time the analysis thread spent on its K events; drain = after the loop until "
          "every alert was stored; total = loop + drain; analysis busy = the analysis thread's "
          "CPU / its wall time; process cores = CPU of this process (all threads) / total; "
          "others = the rest of the machine's busy CPU over the run, in cores.")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({
            "machine": machine,
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "clip_frames": len(frames),
            "summary": summary,
            "runs": [asdict(r) for r in runs],
        }, indent=2, ensure_ascii=False))  # fmt: skip
        print(f"figures written to {args.json}")
    return 0 if all(r.stored_ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
