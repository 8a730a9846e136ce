"""Situation analysis and camera health: the pure computations (percentiles, local-time
buckets, rankings, availability), without a database."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from alerts.stats import (
    BIN_S,
    CameraFacts,
    Rate,
    area_label,
    breakdown_level,
    bucket_times,
    camera_health,
    durations,
    local_days,
    percentile,
    top_false_alarms,
)
from camera_registry.status import CameraStatus
from core.area import Area

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_percentiles_interpolate_like_numpy() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 50) == 25.0
    assert percentile(values, 90) == pytest.approx(37.0)
    assert percentile([5.0], 90) == 5.0
    got = durations([300, 10, 120, 30, 60])
    assert (got.p50, got.p90, got.count) == (60.0, 228.0, 5)
    assert durations([]) == durations(iter(()))
    assert (durations([]).p50, durations([]).count) == (None, 0)
    assert durations([-3.0, 4.0]).p50 == 2.0  # clock skew counts as 0


def test_bins_are_bucketed_in_local_time() -> None:
    monday_0230 = datetime(2026, 11, 16, 2, 30, tzinfo=SHANGHAI).timestamp()  # Sun 18:30 UTC
    tuesday_2350 = datetime(2026, 11, 17, 23, 50, tzinfo=SHANGHAI).timestamp()
    bins = [(int(monday_0230 // BIN_S), 2), (int(tuesday_2350 // BIN_S), 1)]
    days = local_days(monday_0230 - 3600, tuesday_2350 + 86400 * 2, SHANGHAI)
    out = bucket_times(bins, SHANGHAI, days)
    assert out.by_hour[2] == 2 and out.by_hour[23] == 1 and sum(out.by_hour) == 3
    assert out.by_weekday == [2, 1, 0, 0, 0, 0, 0]  # Monday first
    assert out.daily == {date(2026, 11, 16): 2, date(2026, 11, 17): 1, date(2026, 11, 18): 0,
                         date(2026, 11, 19): 0}  # fmt: skip


def test_quarter_hour_bins_fit_zones_off_the_hour() -> None:
    kathmandu = ZoneInfo("Asia/Kathmandu")  # UTC+05:45
    at = datetime(2026, 3, 2, 6, 50, tzinfo=kathmandu).timestamp()
    out = bucket_times([(int(at // BIN_S), 1)], kathmandu)
    assert out.by_hour[6] == 1  # the bin starts at 06:45 local, not 06:00 UTC+6
    assert out.daily == {date(2026, 3, 2): 1}


def test_local_days_cover_the_range_in_the_zone() -> None:
    start = datetime(2026, 11, 16, tzinfo=SHANGHAI).timestamp()
    assert len(local_days(start, start + 7 * 86400, SHANGHAI)) == 7
    assert local_days(start, start + 1, SHANGHAI) == [date(2026, 11, 16)]
    # Across a daylight-saving change the count of local days stays right.
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2026, 3, 28, tzinfo=berlin).timestamp()
    end = datetime(2026, 3, 31, tzinfo=berlin).timestamp()
    assert local_days(first, end, berlin) == [date(2026, 3, 28), date(2026, 3, 29),
                                              date(2026, 3, 30)]  # fmt: skip


def test_false_alarm_ranking() -> None:
    rates = [Rate("a", "A", 1, 2), Rate("b", "B", 3, 10), Rate("c", "C", 1, 1),
             Rate("d", "D", 0, 50)] + [Rate(f"x{i}", "X", 1, 100) for i in range(12)]  # fmt: skip
    top = top_false_alarms(rates)
    assert [r.key for r in top[:3]] == ["b", "c", "a"]  # most, then the highest rate
    assert len(top) == 10 and "d" not in {r.key for r in top}
    assert Rate("z", "Z", 1, 3).rate == 0.333 and Rate("z", "Z", 0, 0).rate == 0.0


def test_area_labels_and_breakdown_levels() -> None:
    assert area_label(["示例县", "城关镇", None, "03"]) == "示例县/城关镇"
    assert area_label([None]) == ""
    assert breakdown_level(()) == 1  # everything: by county
    assert breakdown_level(("示例县",)) == 2  # a county: by township
    assert breakdown_level(("示例县", "城关镇", "人民村", "03")) == 4  # a grid: itself


def cam(cam_id: str, township: str, programme: str = "xueliang", enabled: bool = True
        ) -> CameraFacts:  # fmt: skip
    return CameraFacts(cam_id, cam_id.upper(), Area(county="示例县", township=township),
                       programme, enabled)  # fmt: skip


def test_camera_health_rates_and_faulty_cameras() -> None:
    cameras = [cam("a", "城关镇"), cam("b", "城关镇", "tianwang"), cam("c", "河西镇"),
               cam("d", "河西镇", "tianwang"), cam("e", "河西镇"),
               cam("f", "河西镇", enabled=False), cam("g", "城关镇", "tianwang")]  # fmt: skip
    statuses = {
        "a": CameraStatus("a", state="online", analysed_fps=4.8),
        "b": CameraStatus("b", state="offline", since=100.0, last_error="read timeout"),
        "c": CameraStatus("c", state="online", faults=["blur"]),
        "d": CameraStatus("d", state="auth_failed", last_error="401"),
        "e": CameraStatus("e", state="starting"),
        "g": CameraStatus("g", state="invalid_config", last_error="bad zone"),
    }
    h = camera_health(cameras, statuses, ("示例县",))
    assert (h.total, h.online, h.disabled, h.rate) == (6, 3, 1, 0.5)
    assert [(a.key, a.total, a.online, a.rate) for a in h.by_area] == [
        ("示例县/城关镇", 3, 1, 0.333), ("示例县/河西镇", 3, 2, 0.667)]  # fmt: skip
    assert [(p.key, p.total, p.online) for p in h.by_programme] == [
        ("tianwang", 3, 0), ("xueliang", 3, 3)]  # fmt: skip
    assert [(f.camera.camera_id, f.state, f.last_error, f.faults) for f in h.faulty] == [
        ("b", "offline", "read timeout", []), ("c", "online", None, ["blur"]),
        ("d", "auth_failed", "401", []), ("g", "invalid_config", "bad zone", []),
    ]  # fmt: skip
    assert h.analysed_fps[0] == ("a", 4.8) and len(h.analysed_fps) == 6
    missing = camera_health([cam("z", "城关镇")], {})
    assert [(f.camera.camera_id, f.state) for f in missing.faulty] == [("z", "unknown")]
    assert (missing.online, missing.rate) == (0, 0.0)
    assert camera_health([], {}).rate == 0.0
