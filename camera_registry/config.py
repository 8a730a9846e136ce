"""Configuration models for cameras."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, StrictBool, field_validator, model_validator

from camera_registry.urls import UrlError, strip_credentials, validate_stream_url
from core.area import Area
from core.model import StrictModel

Programme = Literal["xueliang", "tianwang", "huiyan", "traffic", "city", "village", "other"]

# GB/T 28181 device/channel ids: 20 digits; digits 11-13 are the type code.
# 111-130: front-end devices (131 camera, 132 IPC...); 200-299 platform/organisation.
GB28181_RE = re.compile(r"^\d{20}$")
GB28181_CHANNEL_TYPES = {
    "111": "DVR", "112": "video server", "113": "encoder", "114": "decoder",
    "118": "NVR", "131": "camera", "132": "IPC", "133": "display", "134": "alarm input",
    "135": "alarm output", "136": "voice input", "137": "voice output",
}  # fmt: skip


def validate_gb28181_id(value: str) -> str:
    """Check a GB/T 28181 20-digit id whose type code is a video channel or device."""
    if not GB28181_RE.match(value):
        raise ValueError(f"GB/T 28181 id {value!r} must be exactly 20 digits")
    code = value[10:13]
    if code not in GB28181_CHANNEL_TYPES:
        raise ValueError(
            f"GB/T 28181 id {value!r} has type code {code} (digits 11-13), which is not a "
            f"video device or channel (expected one of {', '.join(sorted(GB28181_CHANNEL_TYPES))})"
        )
    return value


class OnvifSource(StrictModel):
    host: str = Field(min_length=1)
    port: int = Field(80, gt=0, lt=65536)
    username: str | None = None
    password: str | None = Field(None, repr=False)
    profile: str | None = Field(None, description="profile token or name; default: main stream")
    stream: Literal["main", "sub"] = Field("main", description="which stream to analyse")


#: What a sub stream may be: the wall opens it directly (no file, no GB/T 28181 INVITE).
SUB_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https", "rtmp"})


class SourceConfig(StrictModel):
    """Where the video comes from: a URL, or an ONVIF device probed for its URL."""

    url: str | None = None
    onvif: OnvifSource | None = None
    sub_url: str | None = Field(
        None,
        description="the camera's sub stream (子码流, e.g. 704x576), for live view only: the "
        "wall plays it on 9 and 16 tiles; the same username and password as the main stream",
    )
    username: str | None = None
    password: str | None = Field(None, repr=False)
    transport: Literal["tcp", "udp"] = "tcp"
    loop: bool = Field(False, description="file sources: start again at the end")
    realtime: bool = Field(True, description="file sources: pace reading at the clip's speed")

    @field_validator("url", "sub_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                validate_stream_url(v)
            except UrlError as exc:
                raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _one_source(self) -> SourceConfig:
        if (self.url is None) == (self.onvif is None):
            raise ValueError("give exactly one of 'url' or 'onvif'")
        if self.url is not None:
            bare, user, password = strip_credentials(self.url)
            if user is not None:
                # Keep credentials out of the URL: they are added only when opening.
                self.url = bare
                self.username = self.username or user
                self.password = self.password or password
        if self.sub_url is not None:
            if self.sub_url.split("://", 1)[0].lower() not in SUB_SCHEMES:
                raise ValueError("sub_url: a sub stream is a network stream (rtsp://, http://)")
            bare, user, password = strip_credentials(self.sub_url)
            if user is not None:
                # the main stream's credentials serve the sub stream too
                if self.username not in (None, user) or self.password not in (None, password):
                    raise ValueError(
                        "sub_url: its credentials differ from the main stream's; "
                        "give them once, as username and password"
                    )
                self.username, self.password = user, password
                self.sub_url = bare
        return self


class RecordConfig(StrictModel):
    """A camera's recording (the ``recording/`` package): the camera's own packets cut at
    keyframes into MP4 segments, no re-encoding."""

    mode: Literal["off", "continuous", "events", "motion", "objects"] = Field(
        "off",
        description="off: no recording; continuous: every segment; events: only the "
        "seconds around this camera's alerts (pre_s before, post_s after); motion: only the "
        "seconds around motion anywhere in the picture (the analysis motion gate's frame "
        "difference and thresholds, motion:; pre_s before, post_s after); objects: only the "
        "seconds around moving tracked objects (a person or vehicle the analysis tracks that "
        "moved; not a parked car) and around alerts (pre_s before, post_s after)",
    )
    stream: Literal["main", "sub"] = Field(
        "main",
        description="which of the camera's streams is recorded: main (its source URL, the one "
        "read) or sub (its sub-stream, where the camera has one; until then the source is "
        "recorded, with a warning)",
    )
    pre_s: float = Field(
        10.0,
        ge=0,
        le=120,
        description="events/motion/objects: seconds kept before an alert, motion or object",
    )
    post_s: float = Field(
        20.0,
        ge=0,
        le=600,
        description="events/motion/objects: seconds kept after an alert, motion or object",
    )
    segment_s: float = Field(
        10.0, ge=2, le=300, description="target segment length (cut at the next keyframe after it)"
    )
    retain_days: float | None = Field(
        None,
        gt=0,
        description="days this camera's segments are kept (default: recording.continuous_days "
        "or recording.events_days by mode)",
    )


CAMERA_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class CameraBase(StrictModel):
    """A camera as the registry knows it: identity, source, place. The analytics part
    (zones, rules, motion gate) is added by ``analytics.config.CameraConfig``."""

    id: str
    name: str = Field("", max_length=200)
    # Strict: a quoted "no" or a typo must be an error, not a camera silently on or off.
    enabled: StrictBool = True
    source: SourceConfig
    area: Area = Field(default_factory=Area)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    programme: Programme = "other"
    gb28181_id: str | None = None
    detect_fps: float = Field(5.0, gt=0, le=30)
    analysis: Literal["continuous", "patrol"] = Field(
        "continuous",
        title="analysis mode",
        description="continuous: read and analysed all the time; patrol (轮巡): visited in "
        "turn by the patrol scheduler (patrol:), a few seconds a visit: video quality "
        "diagnosis and the rules that can fire within the visit",
    )
    record: RecordConfig = Field(  # recording/ (issue 24)
        default_factory=RecordConfig, description="recording of this camera (录像)"
    )

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not CAMERA_ID_RE.match(v):
            raise ValueError(
                "must be 1-64 characters of letters, digits, '_', '.', '-' (not starting "
                "with a symbol)"
            )
        return v

    @field_validator("gb28181_id")
    @classmethod
    def _gb(cls, v: str | None) -> str | None:
        return None if v is None else validate_gb28181_id(v)


class IngestConfig(StrictModel):
    open_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(5.0, gt=0)
    reconnect_initial_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(3.0, gt=0)
    reconnect_jitter: float = Field(0.2, ge=0, le=1)
    max_decode_errors: int = Field(
        25, ge=1, description="consecutive undecodable packets before reconnecting"
    )
    auth_retry_s: float = Field(
        300.0,
        gt=0,
        description="wait between attempts after 3 consecutive authentication failures "
        "(a wrong password retried every few seconds locks the camera's account)",
    )
