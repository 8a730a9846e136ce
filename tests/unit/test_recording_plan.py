"""Recording retention planner (recording/retention.py): plain Python, no I/O."""

from __future__ import annotations

from recording.retention import Protected, Seg, plan

DAY = 86400.0
NOW = 1_800_000_000.0


def seg(i: int, start: float, camera: str = "cam-a", size: int = 100, mode: str = "continuous"
        ) -> Seg:  # fmt: skip
    return Seg(f"s{i}", camera, start, start + 10, size, mode)


def days(_camera: str, mode: str) -> float:
    return 30.0 if mode == "events" else 7.0


def test_expired_segments_go_by_mode_and_protected_ones_stay() -> None:
    old = NOW - 8 * DAY
    segs = [seg(1, old), seg(2, old, mode="events"), seg(3, old + 20), seg(4, NOW - 60)]
    doomed = plan(segs, now=NOW, keep_days=days, quota_bytes=None, free_bytes=None,
                  min_free_bytes=0, protected=[Protected("cam-a", old + 25, old + 26)])  # fmt: skip
    assert [s.id for s in doomed] == ["s1"]  # s2: events, 30 days; s3: held; s4: new


def test_quota_and_free_space_delete_the_oldest_first() -> None:
    segs = [seg(i, NOW - 1000 + i * 10, size=100) for i in range(10)]
    by_quota = plan(segs, now=NOW, keep_days=days, quota_bytes=750, free_bytes=None,
                    min_free_bytes=0, protected=[])  # fmt: skip
    assert [s.id for s in by_quota] == ["s0", "s1", "s2"]
    held = [Protected("cam-a", 0, NOW - 1000 + 5)]
    by_disk = plan(segs, now=NOW, keep_days=days, quota_bytes=None, free_bytes=50,
                   min_free_bytes=300, protected=held)  # fmt: skip
    assert [s.id for s in by_disk] == ["s1", "s2", "s3"]  # s0 held


def test_another_cameras_protection_does_not_apply() -> None:
    segs = [seg(1, NOW - 9 * DAY, camera="cam-b")]
    doomed = plan(segs, now=NOW, keep_days=days, quota_bytes=None, free_bytes=None,
                  min_free_bytes=0, protected=[Protected("cam-a", 0, NOW)])  # fmt: skip
    assert [s.id for s in doomed] == ["s1"]
