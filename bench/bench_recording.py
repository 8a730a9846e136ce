"""Recording: CPU per recorded camera (remux only), seek → first frame, a 10-minute export.

    .venv/bin/python -m bench.bench_recording [--cameras 2] [--seconds 660] [--seeks 15]

1. A 1080p H.264 clip at about 4 Mbit/s, keyframe every 2 s (made once from the crosswalk
   clip with libx264, cached in the temp folder), stands for a camera's main stream.
2. ``--cameras`` feeder threads hand its packets (looped, wall times advancing with the
   stream) to one :class:`recording.recorder.Recorder` as fast as it takes them: segments
   of 10 s cut, remuxed to faststart MP4, stored, hashed and indexed (SQLite). The
   process CPU time, less a baseline pass that only makes the packets (what the reader and
   live feed already pay), divided by the seconds of video, is the CPU per recorded camera
   in real time (% of one core).
3. Seek: ``--seeks`` random times; each the time to remux a 60 s and a 300 s window from
   there (what the console asks for) and decode its first frame.
4. Export: the time to write a 10-minute range into a signed case export (segments'
   SHA-256 checked, remuxed, zipped, hashed).
Prints the machine and the figures: wall times (what a user waits; on a shared machine they
follow the others' load and the disk) and the process CPU time beside them.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av

from bench.machine import machine_line
from camera_registry.config import RecordConfig
from core.storage_directory import SharedDirectory
from ingest.live import LiveStart
from ingest.ring import BufferedPacket, StreamTemplate
from recording.export import write_recording_export
from recording.playback import write_range
from recording.recorder import Recorder
from recording.store import segments_in
from shaobing.db import open_database

ASSETS = Path(
    os.environ.get("SHAOBING_ASSETS", Path(__file__).resolve().parents[2] / "shared" / "assets")
)
CLIP_1080P = Path(tempfile.gettempdir()) / "shaobing-bench-1080p-4M.ts"
ORIGIN = 1_790_000_000.0


def make_clip() -> Path:
    """The crosswalk clip scaled to 1920x1080, 4 Mbit/s, a keyframe every 2 s (MPEG-TS,
    Annex B: what an RTSP camera sends)."""
    if CLIP_1080P.exists():
        return CLIP_1080P
    tmp = CLIP_1080P.with_suffix(".tmp")
    with av.open(str(ASSETS / "videos" / "crosswalk_people.mp4")) as src, \
            av.open(str(tmp), "w", format="mpegts") as out:  # fmt: skip
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.bit_rate = 4_000_000
        stream.options = {"preset": "ultrafast", "g": "48", "bf": "0"}
        for i, frame in enumerate(src.decode(video=0)):
            scaled = frame.reformat(width=1920, height=1080, format="yuv420p")
            scaled.pts, scaled.time_base = i, Fraction(1, 24)
            out.mux(stream.encode(scaled))
        out.mux(stream.encode(None))
    tmp.replace(CLIP_1080P)
    return CLIP_1080P


class Camera:
    """A camera's packets (read once into memory), handed to a subscriber like a LiveFeed."""

    def __init__(self, path: Path) -> None:
        self.container = av.open(str(path))
        self.stream = self.container.streams.video[0]
        self.template = StreamTemplate(self.stream)
        self.tb = self.stream.time_base or Fraction(1, 90000)
        self.packets = [(bytes(p), p.pts, p.dts, int(p.duration or 0), bool(p.is_keyframe))
                        for p in self.container.demux(self.stream)
                        if p.size and p.pts is not None]  # fmt: skip
        first, last = self.packets[0][1], self.packets[-1][1]
        self.span = float((last - first) * self.tb) + 1 / 24
        self.viewer = None
        self.backlog: Callable[[], int] = lambda: 0  # the recorder's queue: wait, lose nothing

    def subscribe(self, viewer):  # type: ignore[no-untyped-def]
        self.viewer = viewer
        return LiveStart(self.template, "h264", []), lambda: None

    def play_window(self, begin: float, end: float) -> int:
        """The packets whose time is in [begin, end) seconds after ORIGIN (looped)."""
        ticks = int(round(self.span / self.tb))
        n = 0
        for k in range(int(begin // self.span), int(end // self.span) + 1):
            for data, pts, dts, dur, key in self.packets:
                offset = k * self.span + float((pts - self.packets[0][1]) * self.tb)
                if not begin <= offset < end:
                    continue
                while self.backlog() > 2000:
                    time.sleep(0.002)
                assert self.viewer is not None
                self.viewer(BufferedPacket(data, pts + k * ticks, dts + k * ticks, dur, key,
                                           ORIGIN + offset))  # fmt: skip
                n += 1
        return n

    def play(self, seconds: float, viewer=None) -> int:  # type: ignore[no-untyped-def]
        viewer = viewer or self.viewer
        ticks = int(round(self.span / self.tb))
        loops, n = int(seconds // self.span) + 1, 0
        for k in range(loops):
            for data, pts, dts, dur, key in self.packets:
                t = ORIGIN + k * self.span + float((pts - self.packets[0][1]) * self.tb)
                if t - ORIGIN > seconds:
                    return n
                while self.backlog() > 2000:  # faster than real time, but never dropped
                    time.sleep(0.002)
                viewer(BufferedPacket(data, pts + k * ticks, dts + k * ticks, dur, key, t))
                n += 1
        return n


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def soak(cameras: int, seconds: float, quota_mb: float) -> None:
    """``cameras`` cameras (the 640x360 crosswalk clip, ~0.9 Mbit/s) recorded for
    ``seconds`` of video each (faster than real time, back-pressured), retention passes
    with a quota between chunks: RSS sampled, and the bytes on disk compared with the
    index's."""
    from recording.config import RecordingConfig
    from recording.retention import RecordingRetention
    from recording.store import SegmentRecord

    work = Path(tempfile.mkdtemp(prefix="shaobing-soak-rec-"))
    engine, sessions = open_database(f"sqlite:///{work / 'hub.db'}")
    storage = SharedDirectory(work / "rec")
    cams = [Camera(ASSETS / "videos" / "crosswalk_people.mp4") for _ in range(cameras)]
    recorder = Recorder(storage, sessions, work / "spool")
    for i, cam in enumerate(cams):
        cam.backlog = lambda: recorder.health()["queue"]
        recorder.add_camera(f"cam{i}", RecordConfig(mode="continuous"), cam)  # type: ignore[arg-type]
    cfg = RecordingConfig(quota_gb=quota_mb / 1024, min_free_gb=0)
    retention = RecordingRetention(cfg, storage, sessions, lambda c, m: 7.0, disk=work,
                                   clock=lambda: ORIGIN + seconds)  # fmt: skip
    recorder.start()
    chunk, samples, done = 60.0, [], 0.0
    started = time.monotonic()
    while done < seconds:
        threads = [threading.Thread(target=c.play_window, args=(done, done + chunk)) for c in cams]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done += chunk
        retention.sweep()
        samples.append(rss_mb())
    recorder.stop(timeout=600)
    with sessions() as session:
        indexed = {r.key: r.size_bytes for r in session.query(SegmentRecord)}
    on_disk = {p.relative_to(work / "rec").as_posix(): p.stat().st_size
               for p in (work / "rec").rglob("*.mp4")}  # fmt: skip
    half = len(samples) // 2
    per_camera = recorder.health()["cameras"]["cam0"]["segments"]
    print(f"soak: {cameras} cameras x {seconds / 60:.0f} min of video in "
          f"{time.monotonic() - started:.0f} s wall; {per_camera} segments per camera, "
          f"{retention.deleted} deleted by the {quota_mb:.0f} MB quota")  # fmt: skip
    print(f"soak memory: RSS {samples[0]:.0f} MB after the first minute, "
          f"{max(samples[half:]):.0f} MB max in the second half, {samples[-1]:.0f} MB at the end")
    same = on_disk == indexed
    print(f"soak disk: {len(on_disk)} files, {sum(on_disk.values()) / 1e6:.1f} MB on disk = "
          f"{sum(indexed.values()) / 1e6:.1f} MB indexed: {'exact' if same else 'MISMATCH'}; "
          f"failed {sum(c['failed'] for c in recorder.health()['cameras'].values())}")
    engine.dispose()
    shutil.rmtree(work)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cameras", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=660.0, help="seconds of video per camera")
    ap.add_argument("--seeks", type=int, default=15)
    ap.add_argument("--soak", type=int, default=0, metavar="N",
                    help="instead: a soak of N cameras (--soak-seconds of video each)")
    ap.add_argument("--soak-seconds", type=float, default=1800.0)
    ap.add_argument("--soak-quota-mb", type=float, default=300.0)
    args = ap.parse_args()
    print(machine_line())
    if args.soak:
        soak(args.soak, args.soak_seconds, args.soak_quota_mb)
        return
    clip = make_clip()
    size = clip.stat().st_size
    probe = Camera(clip)
    print(f"camera: {clip.name}: 1920x1080 H.264, {size * 8 / probe.span / 1e6:.2f} Mbit/s, "
          f"{probe.span:.1f} s looped, keyframe every 2 s")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="shaobing-bench-rec-"))
    engine, sessions = open_database(f"sqlite:///{work / 'hub.db'}")
    storage = SharedDirectory(work / "rec")
    cams = [Camera(clip) for _ in range(args.cameras)]

    # Baseline: the packets made and handed to a viewer that does nothing.
    cpu0 = time.process_time()
    threads = [threading.Thread(target=c.play, args=(args.seconds, lambda p: None)) for c in cams]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    baseline = time.process_time() - cpu0

    recorder = Recorder(storage, sessions, work / "spool")
    for i, cam in enumerate(cams):
        cam.backlog = lambda: recorder.health()["queue"]
        recorder.add_camera(f"cam{i}", RecordConfig(mode="continuous", segment_s=10), cam)  # type: ignore[arg-type]
    recorder.start()
    cpu0, wall0 = time.process_time(), time.monotonic()
    threads = [threading.Thread(target=c.play, args=(args.seconds,)) for c in cams]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorder.stop(timeout=600)
    recorded_cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    video_s = args.seconds * args.cameras
    per_camera = (recorded_cpu - baseline) / video_s * 100
    health = recorder.health()
    segs = sum(c["segments"] for c in health["cameras"].values())
    disk = sum(p.stat().st_size for p in (work / "rec").rglob("*.mp4"))
    print(f"recording: {args.cameras} camera(s) x {args.seconds:.0f} s = {video_s:.0f} s of video "
          f"in {wall:.1f} s wall; {segs} segments, {disk / 1e6:.0f} MB on disk; "
          f"CPU {recorded_cpu:.1f} s (baseline without the recorder {baseline:.1f} s)")  # fmt: skip
    print(f"CPU per recorded camera (remux only, real time): {per_camera:.2f} % of one core "
          f"(target <= 2 %)")  # fmt: skip

    with sessions() as session:
        rows = list(segments_in(session, "cam0", 0, 4e9))
    first, last = rows[0].start, rows[-1].end
    rng = random.Random(24)
    for window in (60.0, 300.0):
        times, cpus = [], []
        for _ in range(args.seeks):
            at = rng.uniform(first, max(first, last - window))
            target = work / "seek.mp4"
            started, cpu0 = time.perf_counter(), time.process_time()
            with sessions() as session:
                made = write_range(storage, segments_in(session, "cam0", at, at + window),
                                   at, at + window, target)  # fmt: skip
            with av.open(str(target)) as c:
                next(iter(c.decode(video=0)))
            times.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu0)
            assert made.start <= at
        median, worst = statistics.median(times), max(times)
        print(f"seek -> first frame, {window:.0f} s window: median {median:.3f} s, "
              f"max {worst:.3f} s over {len(times)} seeks (CPU median "
              f"{statistics.median(cpus):.3f} s; target <= 1 s)")  # fmt: skip

    if last - first >= 600:
        started, cpu0 = time.perf_counter(), time.process_time()
        with sessions() as session:
            manifest = write_recording_export(
                work / "case.zip", {"id": "cam0", "name": "bench"},
                segments_in(session, "cam0", first, first + 600), first, first + 600,
                b"k" * 32, storage=storage, user="bench", case_number="B-1", reason="bench",
            )  # fmt: skip
        took, cpu = time.perf_counter() - started, time.process_time() - cpu0
        mb = manifest["files"][0]["size"] / 1e6
        print(f"export of a 10-minute range: {took:.2f} s wall, {cpu:.2f} s CPU ({mb:.0f} MB "
              f"MP4, signed zip; target <= 5 s)")  # fmt: skip
    else:
        print("export: fewer than 10 minutes recorded (raise --seconds)")
    engine.dispose()
    for p in sorted(work.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    work.rmdir()


if __name__ == "__main__":
    main()
