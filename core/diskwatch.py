"""Free space of the folders the hub writes to, watched: a full disk is said, not found out.

A :class:`DiskWatcher` checks each named path (``data_dir``: database and event spool;
``evidence``: snapshots, clips, track thumbnails) every ``interval_s``. A path whose free
space is under its floor, or that cannot be written, is *low*: ``/healthz`` turns
``degraded`` with the reason, ``/metrics`` carries ``shaobing_disk_free_bytes`` and
``shaobing_disk_low``, and each change is logged once (not every check) and given to
``on_change`` (shaobing/disk_alerts.py: an alert to the room when a path turns low).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import Gauge

log = logging.getLogger(__name__)

#: Free space under which a path is low, unless the watcher is given another floor:
#: the smaller of 512 MiB and 5 % of the file system (a small disk is not always low).
FLOOR_BYTES = 512 * 1024 * 1024
FLOOR_SHARE = 0.05

DISK_FREE = Gauge("shaobing_disk_free_bytes", "Free bytes of a watched path's file system",
                  ["path"])  # fmt: skip
DISK_LOW = Gauge("shaobing_disk_low", "1 while a watched path is under its free-space floor "
                 "or cannot be written", ["path"])  # fmt: skip


@dataclass(frozen=True)
class DiskState:
    """One check of one path."""

    name: str
    path: str
    free_bytes: int
    total_bytes: int
    floor_bytes: int
    writable: bool
    error: str | None = None

    @property
    def low(self) -> bool:
        return self.error is not None or not self.writable or self.free_bytes < self.floor_bytes

    def reason(self) -> str | None:
        """Why the path is low, in words for an operator (None when it is not)."""
        if self.error is not None:
            return f"{self.name} ({self.path}): {self.error}"
        if not self.writable:
            return f"{self.name} ({self.path}): not writable"
        if self.free_bytes < self.floor_bytes:
            return (f"{self.name} ({self.path}): {self.free_bytes // 1024} KiB free, "
                    f"under the floor of {self.floor_bytes // 1024} KiB")  # fmt: skip
        return None


def check_path(name: str, path: Path, floor_bytes: int | None = None) -> DiskState:
    """Free space and writability of ``path`` (the nearest existing folder above it)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError as exc:
        return DiskState(name, str(path), 0, 0, floor_bytes or 0, False, str(exc))
    floor = (
        floor_bytes if floor_bytes is not None else min(FLOOR_BYTES, int(usage.total * FLOOR_SHARE))
    )
    writable = os.access(probe, os.W_OK)
    return DiskState(name, str(path), usage.free, usage.total, floor, writable)


class DiskWatcher:
    """Watch the free space of named paths; ``health()`` for ``/healthz``."""

    name = "disks"  # a role of the composition (shaobing.bootstrap.Role)

    def __init__(
        self,
        paths: Mapping[str, Path],
        *,
        floor_bytes: int | None = None,
        interval_s: float = 10.0,
        on_change: Callable[[DiskState], None] | None = None,
    ) -> None:
        self.paths = dict(paths)
        self.floor_bytes = floor_bytes
        self.interval_s = interval_s
        self.on_change = on_change
        self._states: dict[str, DiskState] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="disk-watch", daemon=True)

    @property
    def threads(self) -> list[threading.Thread]:
        return [self._thread]

    def start(self) -> None:
        self.check()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def check(self) -> dict[str, DiskState]:
        """Check every path now (the thread does it every ``interval_s``)."""
        states = {name: check_path(name, p, self.floor_bytes) for name, p in self.paths.items()}
        for name, state in states.items():
            DISK_FREE.labels(name).set(state.free_bytes)
            DISK_LOW.labels(name).set(1 if state.low else 0)
            with self._lock:
                before = self._states.get(name)
                self._states[name] = state
            if before is not None and before.low == state.low:
                continue
            if state.low:
                log.error("disk low: %s; alerts are kept in memory, evidence and tracks "
                          "are dropped first", state.reason())  # fmt: skip
            elif before is not None:
                log.warning("disk %s (%s): space back, %d KiB free", name, state.path,
                            state.free_bytes // 1024)  # fmt: skip
            # A change, or a path already low at the first check (a hub started on a full disk).
            if self.on_change is not None and (before is not None or state.low):
                try:
                    self.on_change(state)
                except Exception:  # noqa: BLE001 - telling must not stop the watching
                    log.exception("disk watcher: reporting %s failed", name)
        return states

    def health(self) -> dict[str, object]:
        """``ok``, the reasons a path is low and each path's figures."""
        with self._lock:
            states = dict(self._states)
        reasons = [r for s in states.values() if (r := s.reason()) is not None]
        return {
            "ok": not reasons,
            "reasons": reasons,
            "disks": {
                n: {
                    "path": s.path,
                    "free_bytes": s.free_bytes,
                    "total_bytes": s.total_bytes,
                    "floor_bytes": s.floor_bytes,
                    "low": s.low,
                }
                for n, s in states.items()
            },  # fmt: skip
        }

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watcher must outlive one failed check
                log.exception("disk watcher: check failed; next in %.0f s", self.interval_s)


def with_reasons(health: dict[str, object], *parts: Mapping[str, object]) -> dict[str, object]:
    """``health`` (a ``/healthz`` body) with the reasons of the parts that are not ok
    (a :meth:`DiskWatcher.health`, the event spool's): ``status`` turns ``degraded``."""
    reasons = list(health.get("reasons", []))  # type: ignore[call-overload]
    for part in parts:
        if part.get("ok", True):
            continue
        more = part.get("reasons")
        if isinstance(more, list):
            reasons.extend(str(r) for r in more)
        elif part.get("reason"):
            reasons.append(str(part["reason"]))
    for part in parts:
        if "disks" in part:
            health["disks"] = part["disks"]
    health["reasons"] = reasons
    if reasons:
        health["status"] = "degraded"
    return health
