"""The console's live feed at county scale: what one console's ``/api/events`` costs the
API process with 100,000 cameras, distributed mode (camera status in Redis).

Real SQLite registry of N cameras (bench_leases.py's import: 20 townships), real Redis
holding every camera's live entry (what N cameras' workers publish) and the state-change
stream, a writer thread changing ``--changes`` camera states a second as workers do. The
feed's own work is then run as the SSE loop of api/routers/live.py runs it: every second
``camera_changes`` (the state-change stream since the feed's cursor, the changed cameras'
entries), every 30 s the list of cameras the user sees (``feed_cameras``), and once the
first look. CPU time of the feed's thread, as % of one core, for an admin and for a
township user, now and as it was before (the visible list as every camera row with its
area checked in Python, the first look reading every state).

    .venv/bin/python -m bench.bench_feed --cameras 100000 --seconds 30

Redis's own CPU over the window is printed beside it (INFO cpu; it also serves the
writer).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Integer, String, cast, func, update

from accounts.domain import Principal, sees_area
from api.access import record_area
from api.routers.live import CameraWatch, camera_changes, feed_cameras
from bench.bench_leases import import_registry
from bench.machine import machine_line
from camera_registry.status import CameraStatus
from camera_registry.store import CameraRecord, list_cameras
from core.area import Area
from core.secrets import load_or_create_cipher
from core.vocabulary import CameraState
from shaobing.adapters.redis_state import RedisLiveState, RedisStatusView
from shaobing.db import open_database
from shaobing.store import Store
from tests.redisproc import REDIS_URL, redis_prefix


class Hub:
    """What the feed reads of the API's services: the status board."""

    def __init__(self, status: RedisStatusView) -> None:
        self.status = status


def entry(camera_id: str, state: CameraState) -> dict[str, Any]:
    return {"status": CameraStatus(camera_id, state=state).to_dict(), "holder": "w0"}


def fill(live: RedisLiveState, n: int) -> None:
    """Every camera's live entry, as the workers holding them keep it."""
    ids = [f"c{i:06d}" for i in range(n)]
    for start in range(0, n, 5000):
        live.put({cid: entry(cid, "online") for cid in ids[start : start + 5000]}, {})


def changer(live: RedisLiveState, n: int, per_s: float, stop: threading.Event) -> None:
    """``per_s`` camera state changes a second, spread over the county."""
    i = 0
    while not stop.wait(1.0 / per_s):
        cid = f"c{(i * 7919) % n:06d}"
        state: CameraState = "offline" if i % 2 else "online"
        live.put({cid: entry(cid, state)}, {})
        live.record_changes([(cid, state)])
        i += 1


def visible_before(store: Store, principal: Principal) -> set[str]:
    """The feed's list of visible cameras as it was: every row, its area checked."""
    with store.sessions() as session:
        return {r.id for r in list_cameras(session) if sees_area(principal, record_area(r))}


def visible_now(store: Store, principal: Principal) -> set[str] | None:
    with store.sessions() as session:
        return feed_cameras(session, principal)


def cpu_ms(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.thread_time()
    out = fn()
    return (time.thread_time() - t0) * 1000, out


def redis_cpu(r: redis.Redis) -> float:
    info: Any = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run_feed(
    hub: Hub, cameras: set[str] | None, seconds: float, first_look_reads_all: bool
) -> tuple[float, int, float]:
    """The per-second part of the SSE loop for ``seconds``: (CPU ms, events, first look ms)."""
    watch = CameraWatch()
    if first_look_reads_all:  # as before: the first look read every state
        first_ms, states = cpu_ms(hub.status.states)
        cursor_ms, (watch.cursor, _) = cpu_ms(lambda: hub.status.changes(""))
        watch.states.update(states)
        first_ms += cursor_ms
    else:
        first_ms, _ = cpu_ms(lambda: camera_changes(hub, cameras, watch))  # type: ignore[arg-type]
    events = 0
    spent = 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(1.0)
        ms, out = cpu_ms(lambda: camera_changes(hub, cameras, watch))  # type: ignore[arg-type]
        spent += ms
        events += len(out)
    return spent, events, first_ms


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cameras", type=int, default=100_000)
    p.add_argument("--changes", type=float, default=20.0, help="camera state changes a second")
    p.add_argument("--seconds", type=float, default=30.0, help="feed window per user")
    args = p.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp, redis_prefix() as prefix:
        engine, sessions = open_database(f"sqlite:///{Path(tmp) / 'reg.db'}")
        store = Store(engine, sessions, load_or_create_cipher(Path(tmp) / "secret.key"))
        took = import_registry(store, args.cameras, 0)
        with store.sessions.begin() as session:  # the import copies one row: spread the towns
            session.execute(update(CameraRecord).values(
                township="镇" + cast(cast(func.substr(CameraRecord.id, 2), Integer) % 20, String)
            ))  # fmt: skip
        r = redis.Redis.from_url(REDIS_URL)
        live = RedisLiveState(r, prefix, ttl_s=3600)
        fill(live, args.cameras)
        print(f"registry: {args.cameras:,} cameras in SQLite ({took:.1f} s); every camera's "
              f"live entry in Redis; {args.changes:g} state changes a second")  # fmt: skip
        stop = threading.Event()
        writer = threading.Thread(target=changer, args=(live, args.cameras, args.changes, stop),
                                  daemon=True)  # fmt: skip
        writer.start()
        users = {
            "admin": Principal("admin", "admin", Area()),
            "township user (1/20 of the county)": Principal(
                "town", "operator", Area(county="示例县", township="镇3")
            ),
        }
        print(f"\n{'user':38s} {'version':7s} {'list /30 s':>11s} {'first look':>11s} "
              f"{'per s':>8s} {'events':>7s} {'% of a core':>11s} {'redis %':>8s}")  # fmt: skip
        results: dict[str, float] = {}
        for name, principal in users.items():
            for version in ("before", "now"):
                view = RedisStatusView(live)
                hub = Hub(view)
                lists = []
                fn = visible_before if version == "before" else visible_now
                for _ in range(3):
                    ms, cameras = cpu_ms(functools.partial(fn, store, principal))
                    lists.append(ms)
                list_ms = statistics.median(lists)
                r0 = redis_cpu(r)
                before = version == "before"
                spent, events, first_ms = run_feed(hub, cameras, args.seconds, before)
                redis_pct = (redis_cpu(r) - r0) * 100 / args.seconds
                per_s = spent / args.seconds
                share = (per_s + list_ms / 30.0) / 10.0  # ms per second → % of a core
                results[f"{name}/{version}"] = share
                print(f"{name:38s} {version:7s} {list_ms:9.1f}ms {first_ms:9.1f}ms "
                      f"{per_s:6.2f}ms {events:7d} {share:10.3f}% {redis_pct:7.2f}%",
                      flush=True)  # fmt: skip
        stop.set()
        writer.join()
        print("\n% of a core = (CPU ms per second of the per-second look + the 30 s list ÷ 30) "
              "÷ 10; the first look is once per connection. Aim (issue 26): ≤ 1 % for an "
              f"admin with 100,000 cameras: {results['admin/now']:.3f} %")  # fmt: skip
        r.close()
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
