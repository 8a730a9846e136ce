"""Control plane at county scale: lease rounds of W workers over a registry of N cameras.

Real SQLite registry (N cameras imported, ``--enabled`` of them enabled), real Redis, W
workers' lease loops (``shaobing/distributed.py: LeasedCameras``) in this process with a
recording worker (no video: the control plane is what is measured). Prints: the time of
one lease round (p50, p99, max) against the lease's third (the budget), lease churn (a
camera changing hands) while nothing changes, the time for a camera enabled in the
registry to be taken, and for a dead worker's cameras to be taken by the others.

    .venv/bin/python -m bench.bench_leases --cameras 100000 --enabled 40 --workers 4
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import insert

from analytics.config import CameraConfig
from bench.machine import machine_line
from camera_registry.store import CameraRecord, upsert_camera
from core.secrets import load_or_create_cipher
from shaobing.adapters.leases import WorkerLeases
from shaobing.db import open_database
from shaobing.distributed import LeasedCameras
from shaobing.store import Store
from tests.redisproc import REDIS_URL, redis_prefix


class RecordingWorker:
    def __init__(self) -> None:
        self.readers: dict[str, Any] = {}
        self.taken = 0

        class Pool:
            slots: dict[str, Any] = {}

        self.pool = Pool()

    def start_camera(self, cam: CameraConfig, **_: Any) -> None:
        self.readers[cam.id] = cam
        self.taken += 1

    def stop_camera(self, camera_id: str, **_: Any) -> None:
        self.readers.pop(camera_id, None)

    def report_invalid(self, camera_id: str, error: str) -> None:
        pass

    def apply_analytics(self, cam: CameraConfig) -> None:
        pass


def camera(i: int, enabled: bool) -> dict[str, Any]:
    return {"id": f"c{i:06d}", "enabled": enabled,
            "area": {"county": "示例县", "township": f"镇{i % 20}"},
            "source": {"url": f"rtsp://127.0.0.1:9/{i}", "username": "u", "password": "pw"}}


def import_registry(store: Store, n: int, enabled: int) -> float:
    """N rows in one bulk insert: one camera encrypted and validated as the registry does,
    the others copies of its row under their own ids (the import path is not measured)."""
    started = time.monotonic()
    with store.sessions.begin() as session:
        template = upsert_camera(session, CameraConfig.model_validate(camera(0, True)),
                                 origin="import", cipher=store.cipher)  # fmt: skip
        session.flush()
        columns = {c.key: getattr(template, c.key) for c in CameraRecord.__table__.columns}
    rows = []
    for i in range(1, n):
        row = dict(columns, id=f"c{i:06d}", name=f"c{i:06d}", enabled=i < enabled,
                   updated_at=time.time() - 3600,  # a registry that exists: steady state
                   config_json=columns["config_json"].replace('"c000000"', f'"c{i:06d}"')
                   .replace('"enabled": true', f'"enabled": {"true" if i < enabled else "false"}'))
        rows.append(row)
    with store.sessions.begin() as session:
        for start in range(0, len(rows), 10_000):
            session.execute(insert(CameraRecord), rows[start : start + 10_000])
    return time.monotonic() - started


class TimedLoop:
    """A worker's lease loop, each round timed."""

    def __init__(self, cams: LeasedCameras) -> None:
        self.cams = cams
        self.rounds: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        interval = self.cams.leases.lease_s / 3
        while not self.stop.is_set():
            started = time.perf_counter()
            self.cams._round()
            self.rounds.append(time.perf_counter() - started)
            self.stop.wait(interval)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cameras", type=int, default=100_000)
    p.add_argument("--enabled", type=int, default=40)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--lease", type=float, default=10.0, help="bus.lease_s")
    p.add_argument("--quiet", type=float, default=60.0, help="seconds with nothing changing")
    args = p.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp, redis_prefix() as prefix:
        engine, sessions = open_database(f"sqlite:///{Path(tmp) / 'reg.db'}")
        store = Store(engine, sessions, load_or_create_cipher(Path(tmp) / "secret.key"))
        took = import_registry(store, args.cameras, args.enabled)
        print(f"registry: {args.cameras:,} cameras ({args.enabled} enabled) imported in "
              f"{took:.1f} s (SQLite)")  # fmt: skip
        r = redis.Redis.from_url(REDIS_URL)
        loops = []
        for w in range(args.workers):
            leases = WorkerLeases(r, prefix, f"w{w}", args.lease)
            worker = RecordingWorker()
            loops.append(TimedLoop(LeasedCameras(worker, store, r, prefix, leases)))  # type: ignore[arg-type]
        for loop in loops:
            loop.thread.start()
        time.sleep(args.lease * 1.5)  # settle on the shares
        before = {id(loop): set(loop.cams.leases.held) for loop in loops}
        taken0 = sum(loop.cams.worker.taken for loop in loops)  # type: ignore[attr-defined]
        time.sleep(args.quiet)
        after = {id(loop): set(loop.cams.leases.held) for loop in loops}
        churn = sum(len(before[k] ^ after[k]) for k in before)
        taken = sum(loop.cams.worker.taken for loop in loops) - taken0  # type: ignore[attr-defined]
        rounds = sorted(t for loop in loops for t in loop.rounds[2:])
        held = sorted(len(s) for s in after.values())
        print(f"shares: {held}; over {args.quiet:.0f} s with nothing changing: churn {churn}, "
              f"cameras (re)started {taken}")  # fmt: skip
        if rounds:
            p99 = rounds[min(len(rounds) - 1, int(len(rounds) * 0.99))]
            print(f"lease round: p50 {statistics.median(rounds) * 1000:.1f} ms, p99 "
                  f"{p99 * 1000:.1f} ms, max {rounds[-1] * 1000:.1f} ms (budget: a third of the "
                  f"lease, {args.lease / 3 * 1000:.0f} ms) over {len(rounds)} rounds")  # fmt: skip

        # A camera enabled in the registry: taken by a worker within ...
        new_id = f"c{args.cameras - 1:06d}"
        with store.sessions.begin() as session:
            upsert_camera(session, CameraConfig.model_validate(camera(args.cameras - 1, True)),
                          origin="api", cipher=store.cipher)  # fmt: skip
        started = time.monotonic()
        while not any(new_id in loop.cams.leases.held for loop in loops):
            if time.monotonic() - started > 60:
                break
            time.sleep(0.05)
        print(f"new camera taken after {time.monotonic() - started:.1f} s")

        # A worker dies (stops renewing, never leaves): its cameras resumed by the others.
        dead = loops[0]
        dead.stop.set()
        dead.thread.join()
        orphans = set(dead.cams.leases.held)
        started = time.monotonic()
        while True:
            others = set().union(*(set(lp.cams.leases.held) for lp in loops[1:]))
            if orphans <= others or time.monotonic() - started > 120:
                break
            time.sleep(0.1)
        print(f"dead worker's {len(orphans)} camera(s) resumed after "
              f"{time.monotonic() - started:.1f} s (lease {args.lease:g} s)")  # fmt: skip
        for loop in loops[1:]:
            loop.stop.set()
            loop.thread.join()
            loop.cams.leases.leave()
        with store.sessions() as session:
            assert session.query(CameraRecord).count() == args.cameras
        r.close()
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
