"""Hub-wide recording settings (``recording:`` in the config); a camera's own mode and
padding are ``record:`` in its camera config (:class:`camera_registry.config.RecordConfig`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.model import StrictModel


class RecordingConfig(StrictModel):
    """Where segments are written and how long they are kept."""

    storage: Literal["directory", "evidence"] = Field(
        "directory",
        description="directory: segments in recording.dir; evidence: in the evidence storage "
        "(storage.evidence: its directory or its S3 bucket), keys under recordings/",
    )

    dir: str | None = Field(
        None,
        description="folder of the segments (default <data_dir>/recordings; in distributed "
        "mode a folder shared by the workers and API nodes, like the evidence directory)",
    )
    continuous_days: float = Field(
        7.0,
        gt=0,
        description="days continuous recordings are kept (a camera's record.retain_days wins)",
    )
    events_days: float = Field(
        30.0, gt=0, description="days event recordings (modes events and objects) are kept (camera "
        "record.retain_days wins)"
    )
    quota_gb: float | None = Field(
        None, gt=0, description="most space the segments may take; the oldest go first beyond it"
    )
    min_free_gb: float = Field(
        1.0, ge=0, description="free space kept on the recording disk; the oldest go first below it"
    )
    retention_interval_s: float = Field(
        60.0, gt=0, description="seconds between two retention passes"
    )
