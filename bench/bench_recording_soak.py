"""Recording soak in real time: a real hub records real RTSP cameras for half an hour.

    .venv/bin/python -m bench.bench_recording_soak [--cameras 8] [--minutes 30] [--quota-mb N]

A GStreamer RTSP server (``tests/peers/rtsp_server.py``) serves ``--cameras`` mounts of the
crosswalk clip (looped, each mount its own encoder: a live camera each); ``shaobing run``
reads, analyses (``--detect-fps``, default 1) and records every camera continuously
(10 s segments). Every minute the hub's resident memory (VmRSS) and its segment count are
sampled. At the end the hub is stopped (the open segments close) and the figures printed:

* memory: RSS after the first minutes against the second half's maximum and the end (flat:
  no growth with the hours recorded);
* disk: every file in the recording folder against the index (``recording_segments``):
  the same names and exactly the same byte sizes, none missing, none unindexed;
* coverage per camera: seconds recorded against the seconds the camera was online (from its
  first segment's start to the stop), and the gaps between consecutive segments over 1 s;
* failures: segments the recorder failed to store, packets dropped (its queue overflowing).

With ``--quota-mb`` the retention quota is that small (deleting the oldest segments while
recording: coverage is then counted up to what retention deleted, which is reported).
Prints the machine; nothing is sent beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from bench.bench_cameras import proc_cpu_s, proc_status_kib, start_server  # noqa: E402
from bench.machine import machine_line  # noqa: E402
from core.assets import assets_dir  # noqa: E402
from tests.hubproc import HubProcess  # noqa: E402
from tests.peers.procs import RtspServer  # noqa: E402

CLIP = assets_dir() / "videos" / "crosswalk_people.mp4"
MODEL = assets_dir() / "models" / "yolox_nano.onnx"


def hub_config(urls: list[str], detect_fps: float, quota_mb: float | None) -> dict[str, object]:
    recording: dict[str, object] = {"min_free_gb": 0.5, "retention_interval_s": 30}
    if quota_mb:
        recording["quota_gb"] = quota_mb / 1024
    return {
        "detector": {"model": str(MODEL), "workers": 1},
        "recording": recording,
        "cameras": [
            {"id": f"soak-{i + 1:02d}", "name": f"录像压测 {i + 1}", "detect_fps": detect_fps,
             "source": {"url": url, "transport": "tcp"},
             "record": {"mode": "continuous", "segment_s": 10}}
            for i, url in enumerate(urls)
        ],
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--detect-fps", type=float, default=1.0)
    ap.add_argument("--quota-mb", type=float, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    print(machine_line(), flush=True)
    work = Path(tempfile.mkdtemp(prefix="shaobing-rec-soak-"))
    rtsp = RtspServer({f"cam{i}": CLIP for i in range(args.cameras)})
    start_server(rtsp)
    ids = [f"soak-{i + 1:02d}" for i in range(args.cameras)]
    hub = HubProcess(
        work, hub_config([rtsp.url(f"cam{i}") for i in range(args.cameras)], args.detect_fps,
                         args.quota_mb),
    )  # fmt: skip
    samples: list[tuple[float, float, int]] = []  # (minute, RSS MB, segments indexed)
    try:
        hub.start()
        assert hub.proc is not None
        pid = hub.proc.pid
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if all(hub.camera(c)["status"]["state"] == "online" for c in ids):
                break
            time.sleep(1)
        else:
            raise SystemExit("cameras not online in 90 s")
        started, cpu0 = time.monotonic(), proc_cpu_s(pid)
        print(f"{args.cameras} cameras online; recording for {args.minutes:g} min", flush=True)
        while (elapsed := time.monotonic() - started) < args.minutes * 60:
            time.sleep(min(60.0, args.minutes * 60 - elapsed))
            health = httpx.get(f"{hub.base}/healthz", timeout=10).json()["recording"]
            segs = sum(c["segments"] for c in health["cameras"].values())
            rss = proc_status_kib(pid, "VmRSS") / 1024
            minute = (time.monotonic() - started) / 60
            samples.append((minute, rss, segs))
            print(f"  {minute:5.1f} min: RSS {rss:6.1f} MB, {segs} segments stored, "
                  f"status {health['status']}", flush=True)  # fmt: skip
        cpu = proc_cpu_s(pid) - cpu0
        wall = time.monotonic() - started
        final = httpx.get(f"{hub.base}/healthz", timeout=10).json()["recording"]
    finally:
        hub.stop(timeout=60)
        rtsp.stop()
    stopped = time.time()

    rec = work / "data" / "recordings"
    on_disk = {p.relative_to(rec).as_posix(): p.stat().st_size for p in rec.rglob("*.mp4")}
    db = sqlite3.connect(work / "data" / "shaobing.db")
    rows = db.execute(
        'SELECT camera_id, key, start, "end", size_bytes FROM recording_segments '
        "ORDER BY camera_id, start"
    ).fetchall()
    indexed = {key: size for _, key, _, _, size in rows}
    missing = sorted(set(indexed) - set(on_disk))
    unindexed = sorted(set(on_disk) - set(indexed))
    wrong = sorted(k for k in set(indexed) & set(on_disk) if indexed[k] != on_disk[k])
    exact = not (missing or unindexed or wrong)

    print(f"soak: {args.cameras} cameras x {wall / 60:.1f} min in real time, analysed at "
          f"{args.detect_fps:g} fps; hub CPU {cpu / wall * 100:.1f} % of a core "
          f"(analysis and recording)")  # fmt: skip
    if samples:
        half = samples[len(samples) // 2 :]
        first = samples[min(2, len(samples) - 1)][1]
        print(f"memory: RSS {first:.0f} MB at {samples[min(2, len(samples) - 1)][0]:.0f} min, "
              f"{max(s[1] for s in half):.0f} MB max in the second half, {samples[-1][1]:.0f} MB "
              f"at the end (growth over the second half: "
              f"{half[-1][1] - half[0][1]:+.1f} MB)")  # fmt: skip
    verdict = (
        "exact (every file indexed with its size, every row on disk)"
        if exact
        else f"MISMATCH: missing {missing[:3]} unindexed {unindexed[:3]} size {wrong[:3]}"
    )
    print(
        f"disk: {len(on_disk)} files, {sum(on_disk.values()) / 1e6:.1f} MB on disk; "
        f"{len(indexed)} rows, {sum(indexed.values()) / 1e6:.1f} MB indexed: {verdict}"
    )
    failed = sum(c["failed"] for c in final["cameras"].values())
    dropped = sum(c["dropped"] for c in final["cameras"].values())
    deleted = final.get("retention", {}).get("deleted", 0)
    print(f"recorder: {failed} segments failed to store, {dropped} queue overflows; "
          f"retention deleted {deleted} segments")  # fmt: skip
    coverage, gaps = [], []
    for cam in ids:
        spans = [(s, e) for c, _, s, e, _ in rows if c == cam]
        if not spans:
            print(f"  {cam}: nothing recorded")
            coverage.append(0.0)
            continue
        recorded = sum(e - s for s, e in spans)
        holes = [b[0] - a[1] for a, b in zip(spans, spans[1:], strict=False) if b[0] - a[1] > 1.0]
        gaps.extend(holes)
        coverage.append(recorded / max(stopped - spans[0][0], 1.0))
    print(f"coverage: recorded / online seconds per camera: min {min(coverage):.4f}, median "
          f"{statistics.median(coverage):.4f}; gaps over 1 s: {len(gaps)}"
          f"{f' (longest {max(gaps):.1f} s)' if gaps else ''}"
          f"{' (retention deleted some: counted what is left)' if deleted else ''}")  # fmt: skip
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept: {work}")
    return 0 if exact and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
