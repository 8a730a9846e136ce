"""Recording retention on real files and SQLite rows (the planner's own tests:
tests/unit/test_recording_plan.py): sparing open alerts and held cases; a full disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.storage_directory import SharedDirectory
from recording.config import RecordingConfig
from recording.retention import RecordingRetention
from recording.store import RecordingHold, SegmentRecord, new_id
from shaobing.db import open_database
from tests.factories import make_alert, store

DAY = 86400.0
NOW = 1_800_000_000.0


def days(_camera: str, mode: str) -> float:
    return 30.0 if mode == "events" else 7.0


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'hub.db'}")
    yield sessions
    engine.dispose()


def test_a_pass_deletes_files_and_rows_but_not_an_open_alerts_or_a_cases(
    tmp_path: Path, db: sessionmaker[Session]
) -> None:
    storage = SharedDirectory(tmp_path / "rec")
    starts = [NOW - 9 * DAY + i * 600 for i in range(4)]
    with db.begin() as session:
        for i, start in enumerate(starts):
            key = f"cam-a/x/{i}.mp4"
            storage.put(key, b"\x00" * 1000)
            session.add(SegmentRecord(id=new_id(), camera_id="cam-a", key=key, start=start,
                                      end=start + 10, size_bytes=1000, sha256="0" * 64,
                                      codec="h264", width=640, height=360, mode="continuous",
                                      alert_count=0, repaired=0, created_at=start))  # fmt: skip
        session.add(RecordingHold(id=new_id(), camera_id="cam-a", start=starts[2],
                                  end=starts[2] + 5, case_number="2026-001",
                                  created_by="inv", created_at=NOW))  # fmt: skip
    store(db, make_alert(1, camera_id="cam-a", created_at=starts[1] + 5))  # open: new
    retention = RecordingRetention(RecordingConfig(), storage, db, days, disk=tmp_path,
                                   clock=lambda: NOW)  # fmt: skip
    deleted = retention.sweep()
    assert deleted == ["cam-a/x/0.mp4", "cam-a/x/3.mp4"]
    assert not (tmp_path / "rec/cam-a/x/0.mp4").exists()
    assert (tmp_path / "rec/cam-a/x/1.mp4").exists() and (tmp_path / "rec/cam-a/x/2.mp4").exists()
    with db() as session:
        left = sorted(session.scalars(select(SegmentRecord.key)))
    assert left == ["cam-a/x/1.mp4", "cam-a/x/2.mp4"]
    assert retention.free_bytes is not None and retention.health()["deleted"] == 2


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 6 MB file system (tmpfs): the recording disk that fills up."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (root is needed): {done.stderr}", pytrace=False)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_keeps_recording_by_dropping_the_oldest(
    tmp_path: Path, db: sessionmaker[Session], videos_dir: Path, small_disk: Path
) -> None:
    """Three minutes of video (about 20 MB) into a 6 MB disk with 2 MB kept free: retention
    passes between the chunks delete the oldest segments; no segment is lost, and the
    bytes on disk are exactly those of the rows left."""
    import shutil

    from camera_registry.config import RecordConfig
    from recording.recorder import Recorder
    from tests.integration.test_recording import ClipFeed

    storage = SharedDirectory(small_disk / "rec")
    feed = ClipFeed(videos_dir / "crosswalk_people.mp4", origin=NOW - 3600)
    recorder = Recorder(storage, db, tmp_path / "spool")
    recorder.add_camera("cam-a", RecordConfig(mode="continuous", segment_s=4),
                        feed)  # type: ignore[arg-type]  # fmt: skip
    cfg = RecordingConfig(min_free_gb=2 / 1024)  # 2 MB
    retention = RecordingRetention(cfg, storage, db, days, disk=small_disk,
                                   clock=lambda: NOW)  # fmt: skip
    recorder.start()
    played = 0.0
    try:
        while played < 180:
            feed.play()
            feed.origin += 28.6  # the clip's length: the camera goes on
            played += 28.6
            feed.container.seek(0)
            time_ok = _wait(lambda: recorder.health()["queue"] == 0)
            assert time_ok
            retention.sweep()
            assert shutil.disk_usage(small_disk).free > 1024**2, "the disk never fills"
    finally:
        recorder.stop()
    health = recorder.health()["cameras"]["cam-a"]
    assert health["failed"] == 0 and health["segments"] >= 15, health
    assert retention.deleted > 0
    with db() as session:
        left = list(session.scalars(select(SegmentRecord).order_by(SegmentRecord.start)))
    on_disk = {p.relative_to(small_disk / "rec").as_posix(): p.stat().st_size
               for p in (small_disk / "rec").rglob("*.mp4")}  # fmt: skip
    assert on_disk == {r.key: r.size_bytes for r in left}  # exactly the rows' bytes
    # The oldest went: what is left is the end of the recording, without a hole.
    assert left[-1].end > feed.origin - 30
    for a, b in zip(left, left[1:], strict=False):
        assert b.start - a.end < 1.0


def _wait(check: object, timeout: float = 20.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False
