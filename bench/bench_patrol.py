"""Patrol throughput (轮巡): camera visits per core per hour, video-quality-only visits.

N patrolled cameras on a real RTSP server (GStreamer's, many mounts of one shared clip),
an embedded hub (in this process) visiting them ``--streams`` at once for ``--look``
seconds each. Measured over ``--seconds``: visits completed, the hub process's CPU time
(user + system, all threads — the RTSP server runs in its own process and is not counted),
visits per hour, visits per core-hour, and what that implies for a county's points.

``--rules stopped_vehicle`` gives every camera a stopped_vehicle rule over the whole
picture (``min_duration_s`` 5 s longer than a look): each visit then runs the detector
and tracker, keeps its still vehicles and compares them with the previous visit
(analytics/revisit.py; ``--interval`` short enough for second visits within the run).
``--rules both`` measures video-quality-only visits and then stopped_vehicle visits in the
same run and prints the ratio.

    .venv/bin/python -m bench.bench_patrol --cameras 60 --streams 8 --look 10 --seconds 120
    .venv/bin/python -m bench.bench_patrol --rules both --clip .../street_parked_cars.mp4 \
        --cameras 16 --streams 4 --look 10 --seconds 90 --interval 20
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from bench.machine import machine_line
from core.assets import assets_dir
from shaobing.bootstrap import Hub
from shaobing.config import parse_config
from tests.peers.procs import RtspServer


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(args: argparse.Namespace, rules: str) -> tuple[int, float, float, int, int]:
    """One hub visiting ``args.cameras`` cameras with the given rules: (visits, CPU s,
    wall s, cameras online, stopped_vehicle alerts published)."""
    mounts = {f"m{i}": args.clip for i in range(args.mounts)}
    # Longer than a look (the rule alone never fires within a visit), shorter than the gap:
    # what the alerts count is the comparison of two visits.
    stopped = {"name": "no-stopping", "type": "stopped_vehicle", "min_duration_s": args.look + 5}
    camera_rules = [stopped] if rules == "stopped_vehicle" else []
    with tempfile.TemporaryDirectory() as tmp, RtspServer(mounts) as server:
        cameras = [{"id": f"p{i:04d}", "analysis": "patrol", "rules": camera_rules,
                    "source": {"url": server.url(f"m{i % args.mounts}")}}
                   for i in range(args.cameras)]  # fmt: skip
        loaded = parse_config({
            "data_dir": str(Path(tmp) / "data"),
            "detector": {"model": str(assets_dir() / "models" / "yolox_nano.onnx")},
            "tracks": {"enabled": False},
            "patrol": {"streams": args.streams, "look_s": args.look,
                       "interval_s": args.interval},
            "cameras": cameras,
        }, "bench.yaml", Path(tmp))  # fmt: skip
        hub = Hub(loaded)
        hub.start()
        try:
            time.sleep(args.look + 5)  # the first visits under way: measure a steady state
            visits0, cpu0, t0 = hub.patrol.visits, cpu_seconds(), time.monotonic()
            time.sleep(args.seconds)
            visits, cpu, wall = (hub.patrol.visits - visits0, cpu_seconds() - cpu0,
                                 time.monotonic() - t0)  # fmt: skip
            online = sum(1 for s in hub.status.all() if s.state == "online" and s.visits)
            alerts = hub.worker.producer.published
        finally:
            hub.stop()
    return visits, cpu, wall, online, alerts


def report(args: argparse.Namespace, rules: str, visits: int, cpu: float, wall: float,
           online: int, alerts: int) -> float:  # fmt: skip
    """Print one measurement; its visits per core-hour."""
    per_hour = visits / wall * 3600
    per_core_hour = visits / cpu * 3600 if cpu > 0 else float("nan")
    print(f"[{rules}] load {os.getloadavg()[0]:.2f} at the end")
    print(f"visits: {visits} in {wall:.0f} s ({per_hour:.0f} per hour with {args.streams} at "
          f"once); hub CPU {cpu:.1f} s = {cpu / wall * 100:.0f} % of a core")  # fmt: skip
    per_visit = cpu / max(visits, 1)
    print(f"visits per core-hour: {per_core_hour:.0f}   (CPU per visit {per_visit:.2f} s)")
    print(f"cameras found online: {online}; alerts published: {alerts}")
    if per_core_hour > 0:
        for every_h in (24, 4, 1):
            rate = args.points / every_h
            print(f"plan: {args.points:,} points every {every_h} h = {rate:,.0f} visits per "
                  f"hour = {rate / per_core_hour:.2f} cores, {rate / per_hour * args.streams:.0f}"
                  " visits at once")  # fmt: skip
    return per_core_hour


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cameras", type=int, default=60, help="patrolled cameras")
    p.add_argument("--mounts", type=int, default=20, help="distinct RTSP mount names")
    p.add_argument("--streams", type=int, default=8, help="visits at once")
    p.add_argument("--look", type=float, default=10.0, help="seconds per visit")
    p.add_argument("--seconds", type=float, default=120.0, help="how long to measure")
    p.add_argument("--points", type=int, default=45_000, help="a county's patrolled points")
    p.add_argument("--clip", type=Path, default=assets_dir() / "videos" / "crosswalk_people.mp4")
    p.add_argument(
        "--rules",
        choices=["none", "stopped_vehicle", "both"],
        default="none",
        help="the cameras' rules (both: one after the other, same run)",
    )
    p.add_argument("--interval", type=float, default=1e6, help="patrol interval_s")
    args = p.parse_args()
    print(machine_line())
    print(f"clip {args.clip.name}; {args.cameras} cameras on {args.mounts} mounts, "
          f"{args.streams} visits at once, {args.look:g} s per visit, interval "
          f"{args.interval:g} s")  # fmt: skip
    measured = {}
    for rules in ["none", "stopped_vehicle"] if args.rules == "both" else [args.rules]:
        measured[rules] = report(args, rules, *measure(args, rules))
    if len(measured) == 2:
        ratio = measured["stopped_vehicle"] / measured["none"]
        print(f"stopped_vehicle visits per core-hour / video-quality-only: {ratio:.2f} (same run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
