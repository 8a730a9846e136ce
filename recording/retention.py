"""Recording retention: which segments go (pure planning, unit-tested) and the thread
that deletes them (files first, then rows).

Order: segments past their camera's days (``record.retain_days``, else
``recording.continuous_days`` / ``events_days`` by mode) go first; then, while the
segments take more than ``recording.quota_gb`` or the disk has less than
``recording.min_free_gb`` free, the oldest go, one after the other. Never a segment that
overlaps an open incident of its camera (from its first alert to its latest occurrence,
padded by ``ALERT_PAD_S``) or a range held for a case (保全: a recording exported with
``keep``, or the alerts of a case export with ``keep``).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from core.storage import EvidenceStorage, StorageError
from recording.config import RecordingConfig
from recording.store import RecordingHold, SegmentRecord, delete_segments

log = logging.getLogger(__name__)

#: Seconds around an open alert's time that retention never deletes.
ALERT_PAD_S = 300.0
#: An alert's situation is taken to start at most this long before the alert.
SITUATION_MAX_S = 3600.0


def situation_start(created_at: float, started_at: float | None) -> float:
    """When the situation of an alert began (its ``started_at``, e.g. when the loitering
    person arrived), at most ``SITUATION_MAX_S`` before the alert."""
    return max(min(created_at, started_at or created_at), created_at - SITUATION_MAX_S)


@dataclass(frozen=True)
class Seg:
    id: str
    camera_id: str
    start: float
    end: float
    size: int
    mode: str


@dataclass(frozen=True)
class Protected:
    camera_id: str
    start: float
    end: float


def plan(
    segments: Sequence[Seg],
    *,
    now: float,
    keep_days: Callable[[str, str], float],
    protected: Sequence[Protected],
    quota_bytes: int | None,
    free_bytes: int | None,
    min_free_bytes: int,
) -> list[Seg]:
    """The segments to delete, oldest first."""
    by_camera: dict[str, list[Protected]] = {}
    for p in protected:
        by_camera.setdefault(p.camera_id, []).append(p)

    def kept(s: Seg) -> bool:
        return any(p.start < s.end and p.end > s.start for p in by_camera.get(s.camera_id, ()))

    ordered = sorted(segments, key=lambda s: s.start)
    total = sum(s.size for s in ordered)
    free = free_bytes
    doomed: list[Seg] = []
    for s in ordered:
        if kept(s):
            continue
        expired = s.end < now - keep_days(s.camera_id, s.mode) * 86400
        over_quota = quota_bytes is not None and total > quota_bytes
        low_disk = free is not None and free < min_free_bytes
        if not (expired or over_quota or low_disk):
            continue
        doomed.append(s)
        total -= s.size
        if free is not None:
            free += s.size
    return doomed


class RecordingRetention:
    """One pass every ``recording.retention_interval_s`` on the ``recording-retention``
    thread; a failed pass is logged and the next one runs."""

    def __init__(
        self,
        cfg: RecordingConfig,
        storage: EvidenceStorage,
        sessions: sessionmaker[Session],
        keep_days: Callable[[str, str], float],
        *,
        disk: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``disk``: a folder on the recording disk (its free space); None for a bucket."""
        self.cfg = cfg
        self.storage = storage
        self.sessions = sessions
        self.keep_days = keep_days
        self.disk = disk
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recording-retention",
                                        daemon=True)  # fmt: skip
        self.deleted = 0
        self.deleted_bytes = 0
        self.last_error: str | None = None
        self.free_bytes: int | None = None

    @property
    def threads(self) -> list[threading.Thread]:
        return [self._thread]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def health(self) -> dict[str, Any]:
        return {"deleted": self.deleted, "deleted_bytes": self.deleted_bytes,
                "free_bytes": self.free_bytes, "last_error": self.last_error}  # fmt: skip

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - retention must keep running
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("recording retention pass failed; next in %.0f s",
                              self.cfg.retention_interval_s)  # fmt: skip
            self._stop.wait(self.cfg.retention_interval_s)

    def _free(self) -> int | None:
        if self.disk is None:
            return None
        try:
            self.disk.mkdir(parents=True, exist_ok=True)
            return shutil.disk_usage(self.disk).free
        except OSError as exc:
            self.last_error = f"recording disk: {exc}"
            return None

    def sweep(self) -> list[str]:
        """One pass; the keys deleted."""
        from alerts.adapters.sql import AlertRecord  # the adapter: imported where used
        from alerts.domain.model import OPEN_STATUSES

        now = self.clock()
        with self.sessions() as session:
            rows = session.execute(select(SegmentRecord.id, SegmentRecord.camera_id,
                                          SegmentRecord.start, SegmentRecord.end,
                                          SegmentRecord.size_bytes, SegmentRecord.mode,
                                          SegmentRecord.key)).all()  # fmt: skip
            keys = {r[0]: r[6] for r in rows}
            segs = [Seg(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]
            protected = [Protected(h.camera_id, h.start, h.end)
                         for h in session.scalars(select(RecordingHold))]  # fmt: skip
            # An open incident: from its first alert to its latest occurrence (an
            # incident grows while its situation lasts), padded.
            for camera_id, created_at, started_at, last_at in session.execute(
                select(AlertRecord.camera_id, AlertRecord.created_at, AlertRecord.started_at,
                       AlertRecord.last_at)
                .where(AlertRecord.status.in_(sorted(OPEN_STATUSES)))
            ):  # fmt: skip
                first = situation_start(created_at, started_at) - ALERT_PAD_S
                last = max(created_at, last_at or 0.0) + ALERT_PAD_S
                protected.append(Protected(camera_id, first, last))
        self.free_bytes = self._free()
        quota = int(self.cfg.quota_gb * 1024**3) if self.cfg.quota_gb else None
        doomed = plan(segs, now=now, keep_days=self.keep_days, protected=protected,
                      quota_bytes=quota, free_bytes=self.free_bytes,
                      min_free_bytes=int(self.cfg.min_free_gb * 1024**3))  # fmt: skip
        gone: list[str] = []
        for s in doomed:
            try:
                self.storage.delete(keys[s.id])
            except (OSError, StorageError) as exc:
                log.error("recording retention: %s not deleted: %s", keys[s.id], exc)
                continue
            gone.append(s.id)
            self.deleted_bytes += s.size
        try:
            with self.sessions.begin() as session:
                delete_segments(session, gone)
        except SQLAlchemyError as exc:  # files gone, rows stay: playback says missing
            log.error("recording retention: %d rows not deleted: %s", len(gone), exc)
            raise
        if gone:
            log.info("recording retention: %d segment(s) deleted", len(gone))
        self.deleted += len(gone)
        return [keys[i] for i in gone]
