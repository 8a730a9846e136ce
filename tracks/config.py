"""The ``tracks:`` section of the hub config: the investigator search index."""

from __future__ import annotations

from pydantic import Field, StrictBool

from core.model import StrictModel


class TracksConfig(StrictModel):
    """Which tracks the search index keeps, and for how long."""

    enabled: StrictBool = Field(
        True,
        title="Track index",
        description="index confirmed tracks (class, colour, thumbnail, clip) for search",
    )
    retention_days: float = Field(
        30.0, gt=0, title="Retention (days)",
        description="tracks (rows, thumbnails, clips) older than this are deleted",
    )  # fmt: skip
    max_disk_mb: float = Field(
        2048.0, gt=0, title="Disk quota (MB)",
        description="thumbnails and clips beyond this size are deleted, oldest track first",
    )  # fmt: skip
    min_frames: int = Field(
        5, ge=1, le=1000, title="Minimum frames",
        description="a track seen in fewer analysed frames is not indexed (a false positive)",
    )  # fmt: skip
    min_score: float = Field(
        0.45, ge=0, le=1, title="Minimum median score",
        description="a track whose median detection score is lower is not indexed",
    )  # fmt: skip
    end_after_s: float = Field(
        3.0, gt=0, le=60, title="Track end (s)",
        description="a track not seen for this long has ended and is indexed",
    )  # fmt: skip
    max_track_s: float = Field(
        600.0, ge=10, le=86400, title="Longest entry (s)",
        description="a longer presence (a parked car) is indexed as consecutive entries",
    )  # fmt: skip
    clips: StrictBool = Field(
        True, title="Clips",
        description="save the clip of each indexed track (needs alerts.clips_enabled: the "
        "clip is cut from the same packet buffer)",
    )  # fmt: skip
    clip_margin_s: float = Field(
        2.0, ge=0, le=30, title="Clip margin (s)",
        description="seconds of video before the first and after the last sighting",
    )  # fmt: skip
