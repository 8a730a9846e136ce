"""Configuration models for analytics: detector, zones, rules."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, StrictBool, field_validator, model_validator

from analytics.types import COCO_CLASSES
from camera_registry.config import CameraBase
from core.model import NAME_MAX, StrictModel
from core.schedule import WEEKDAYS, ScheduleWindow, Weekday
from core.vocabulary import AlertType, Severity

__all__ = ["WEEKDAYS", "ScheduleWindow", "Weekday"]


class DetectorConfig(StrictModel):
    backend: Literal["onnx", "ultralytics"] = "onnx"
    model: str = Field(
        "yolox_nano.onnx",
        description="path, or a known model name looked up in models_dir / mirror_dir",
    )
    models_dir: str | None = Field(None, description="default: <data_dir>/models")
    mirror_dir: str | None = Field(None, description="local directory holding model files")
    sha256: str | None = Field(
        None,
        description="expected SHA-256 of the model file loaded (with precision int8: of the "
        "INT8 copy, as `shaobing models quantize` printed it)",
    )
    precision: Literal["fp32", "int8"] = Field(
        "fp32",
        description="int8: load the INT8 copy `<model stem>.int8.onnx` that `shaobing models "
        "quantize` wrote into models_dir (or finds in mirror_dir); onnx backend only",
    )
    input_size: tuple[int, int] | None = Field(
        None, description="(width, height); default: model's"
    )
    device: str = "cpu"
    confidence: float = Field(0.3, ge=0.01, le=1.0)
    weak_confidence: float = Field(
        0.1,
        ge=0.01,
        le=1.0,
        description="boxes scored from this up to `confidence` are kept aside for the "
        "counting lines' own tracker (line_crossing, `detect.count_weak`); no other rule sees "
        "them; equal to `confidence`: none",
    )
    nms_iou: float = Field(0.45, gt=0.0, le=1.0)
    rect: StrictBool = Field(
        True,
        description="letterbox each frame to its own aspect (sides a multiple of 32) instead "
        "of the model's square: a 16:9 frame runs at 416x256, not 416x416, with the same "
        "detections and about 40 % less inference (ONNX models with a fixed square input; "
        "off when input_size is set)",
    )
    threads: int = Field(1, ge=1, le=64, description="intra-op threads per inference session")
    workers: int = Field(2, ge=1, le=64, description="analysis threads sharing the model")
    batch_size: int = Field(
        4, ge=1, le=64, description="frames from several cameras detected in one call"
    )
    batch_timeout_ms: float = Field(
        5.0, ge=0, le=1000, description="how long a worker waits to fill a batch"
    )

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v != "cpu" and not v.startswith("cuda"):
            raise ValueError("must be 'cpu', 'cuda' or 'cuda:N'")
        return v

    @model_validator(mode="after")
    def _precision(self) -> DetectorConfig:
        if self.precision == "int8" and self.backend != "onnx":
            raise ValueError("precision: int8 needs backend onnx (an ONNX model quantised "
                             "by `shaobing models quantize`)")  # fmt: skip
        return self


Point = tuple[float, float]


class ZoneConfig(StrictModel):
    name: str = Field(min_length=1, max_length=NAME_MAX)
    points: list[Point] = Field(min_length=3)
    coordinates: Literal["auto", "normalized", "pixels"] = Field(
        "auto",
        description="normalized: 0..1 of width/height (survives a resolution change); "
        "pixels: of the camera's native resolution; auto: normalized if all values <= 1",
    )

    @model_validator(mode="after")
    def _check(self) -> ZoneConfig:
        if self.resolved_coordinates() == "normalized":
            for x, y in self.points:
                if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                    raise ValueError(f"normalized point ({x}, {y}) is outside 0..1")
        return self

    def resolved_coordinates(self) -> str:
        if self.coordinates != "auto":
            return self.coordinates
        return "normalized" if all(x <= 1.0 and y <= 1.0 for x, y in self.points) else "pixels"


VEHICLES = ["car", "motorcycle", "bus", "truck"]


class RuleBase(StrictModel):
    name: str = Field(min_length=1, max_length=NAME_MAX)
    zone: str | None = Field(None, description="zone name; default: the whole frame")
    min_confidence: float = Field(0.0, ge=0.0, le=1.0)
    cooldown_s: float | None = Field(None, ge=0, description="default: alerts.cooldown_s")
    severity: Severity = "medium"
    enabled: StrictBool = True
    schedule: list[ScheduleWindow] | None = Field(
        None, description="active only inside these weekly windows (hub time zone); default: always"
    )


def _check_classes(classes: list[str]) -> list[str]:
    unknown = [c for c in classes if c not in COCO_CLASSES]
    if unknown:
        raise ValueError(f"unknown class(es) {unknown}; use COCO names such as person, car")
    if not classes:
        raise ValueError("give at least one class")
    return classes


def _persons() -> list[str]:
    return ["person"]


def _vehicles() -> list[str]:
    return list(VEHICLES)


class DwellFields(RuleBase):
    classes: list[str] = Field(default_factory=_persons)
    grace_s: float = Field(
        2.0,
        ge=0,
        description="a short occlusion or a new track id near the old one within this "
        "time keeps the clock running",
    )

    _classes = field_validator("classes")(_check_classes)


class IntrusionRule(DwellFields):
    """Objects of the classes inside the zone for at least ``min_duration_s``."""

    type: Literal["intrusion"]
    min_duration_s: float = Field(0.0, ge=0, description="seconds inside before it fires")


class PedestrianOnRoadRule(DwellFields):
    """A person inside a road zone (expressway, tunnel) for at least ``min_duration_s``."""

    type: Literal["pedestrian_on_road"]
    min_duration_s: float = Field(1.0, ge=0)
    ignore_riders: StrictBool = Field(
        True, description="a person on a bicycle or motorcycle is not a pedestrian"
    )
    severity: Severity = "high"


class LoiteringRule(DwellFields):
    """A person in the zone for ``min_duration_s`` in total, re-entries within
    ``reentry_window_s`` counted together."""

    type: Literal["loitering"]
    min_duration_s: float = Field(300.0, gt=0, description="dwell time that makes loitering")
    grace_s: float = Field(5.0, ge=0)
    reentry_window_s: float = Field(
        0.0, ge=0, description="leaving and coming back within this time keeps adding up dwell"
    )
    severity: Severity = "low"


class WanderingRule(DwellFields):
    """A person pacing back and forth: path length / net displacement ≥ ``min_path_ratio``
    over the last ``window_s``, having walked at least ``min_path_heights`` body heights."""

    type: Literal["wandering"]
    window_s: float = Field(60.0, gt=0)
    min_path_ratio: float = Field(3.0, gt=1.0)
    min_path_heights: float = Field(
        4.0, gt=0, description="minimum path length in body heights (ignores a person standing)"
    )
    min_turns: int = Field(
        1, ge=0, le=100,
        description="the path must turn back (a heading change over 120°) at least this often",
    )  # fmt: skip
    grace_s: float = Field(5.0, ge=0)
    severity: Severity = "low"


class LineCrossingRule(RuleBase):
    """Objects crossing a line. Side A is on the left walking from the line's first point to
    its second (in image coordinates, y down); ``a_to_b`` fires on A → B crossings."""

    type: Literal["line_crossing"]
    line: tuple[Point, Point]
    direction: Literal["a_to_b", "b_to_a", "both"] = "both"
    classes: list[str] = Field(default_factory=_persons)
    coordinates: Literal["auto", "normalized", "pixels"] = "auto"
    min_crossing_frames: int = Field(
        2,
        ge=1,
        description="consecutive frames an object must be seen on the new side before its "
        "crossing counts: a box jittering across the line and back counts nothing",
    )

    _classes = field_validator("classes")(_check_classes)


class WrongWayRule(RuleBase):
    """A vehicle moving against the zone's direction of travel."""

    type: Literal["wrong_way"]
    direction: tuple[float, float] = Field(
        description="expected direction of travel as an image vector [dx, dy] (y down)"
    )
    classes: list[str] = Field(default_factory=_vehicles)
    min_angle_deg: float = Field(120.0, gt=0, le=180)
    min_distance_boxes: float = Field(
        1.0, gt=0, description="distance moved against the flow, in box diagonals"
    )
    min_duration_s: float = Field(1.0, ge=0)
    walking_pace: float = Field(
        2.0,
        ge=0,
        description="a bicycle or motorcycle at or below this speed (box heights per second) "
        "with people beside it is a pushchair, cart or pushed bike among pedestrians: "
        "ignored; 0 turns this off",
    )
    severity: Severity = "high"

    _classes = field_validator("classes")(_check_classes)

    @field_validator("direction")
    @classmethod
    def _nonzero(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] == 0 and v[1] == 0:
            raise ValueError("direction must not be [0, 0]")
        return v


class StoppedVehicleRule(RuleBase):
    """A vehicle whose displacement stays below ``max_displacement`` box sizes for
    ``min_duration_s`` inside the zone."""

    type: Literal["stopped_vehicle"]
    classes: list[str] = Field(default_factory=_vehicles)
    max_displacement: float = Field(0.25, gt=0, description="fraction of the box's diagonal")
    min_duration_s: float = Field(30.0, gt=0)
    grace_s: float = Field(
        10.0, ge=0, description="a parked car hidden by a passing bus keeps its clock"
    )
    ignore_attended_two_wheelers: StrictBool = Field(
        True,
        description="a bicycle or motorcycle with a person on or at it (a rider waiting, a "
        "pushchair, wheelchair or pushed bike the detector calls a two-wheeler) is no "
        "stopped vehicle; one standing alone still is",
    )
    severity: Severity = "high"

    _classes = field_validator("classes")(_check_classes)


class CrowdRule(RuleBase):
    """At least ``min_count`` objects in the zone for ``min_duration_s``; released when
    the count stays below ``release_count`` for ``release_s``."""

    type: Literal["crowd"]
    classes: list[str] = Field(default_factory=_persons)
    min_count: int = Field(10, ge=2)
    min_duration_s: float = Field(30.0, ge=0)
    release_count: int | None = Field(None, ge=0, description="default: 80 % of min_count")
    release_s: float = Field(10.0, ge=0)

    _classes = field_validator("classes")(_check_classes)

    @model_validator(mode="after")
    def _release(self) -> CrowdRule:
        if self.release_count is not None and self.release_count >= self.min_count:
            raise ValueError("release_count must be below min_count")
        return self


class PersonDownRule(RuleBase):
    """A person whose box turns wider than tall and stays put for ``min_duration_s``."""

    type: Literal["person_down"]
    classes: list[str] = Field(default_factory=_persons)
    min_aspect: float = Field(1.0, gt=0, description="box width / height at least this")
    max_relative_height: float = Field(
        0.6,
        ge=0,
        lt=1,
        description="…or a box at most this share of the height of a person standing at "
        "that image row (learned from the people the camera has seen; before that, judged "
        "from the upright people in view at that row, or from the person's own upright boxes "
        "before): curled up or foreshortened (a person sitting is about 0.65-0.75); 0 turns "
        "this off",
    )
    max_displacement: float = Field(0.3, gt=0, description="fraction of the box's diagonal")
    min_duration_s: float = Field(10.0, gt=0)
    grace_s: float = Field(3.0, ge=0)
    min_confidence: float = Field(0.2, ge=0.0, le=1.0)
    pose_min_score: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="with the pose model (optional extra 'pose'): its person score from "
        "which the body's orientation overrules the box",
    )
    pose_lying_angle: float = Field(
        60.0, gt=0, le=180, description="hips->head axis this many degrees from the vertical "
        "or more: lying, whatever the box",
    )  # fmt: skip
    pose_upright_angle: float = Field(
        20.0, ge=0, lt=90, description="this many degrees or fewer: upright (sitting, "
        "crouching), whatever the box",
    )  # fmt: skip
    severity: Severity = "high"

    _classes = field_validator("classes")(_check_classes)


class CongestionRule(RuleBase):
    """At least ``min_vehicles`` in the zone whose median speed stays below
    ``max_median_speed`` (box lengths per second) for ``min_duration_s``."""

    type: Literal["congestion"]
    classes: list[str] = Field(default_factory=_vehicles)
    min_vehicles: int = Field(8, ge=1)
    max_median_speed: float = Field(0.5, gt=0)
    min_duration_s: float = Field(60.0, ge=0)
    release_s: float = Field(10.0, ge=0)

    _classes = field_validator("classes")(_check_classes)


FaultKind = Literal[
    "black", "overexposed", "frozen", "blur", "occlusion", "colour_cast", "scene_change", "noise"
]


class CameraFaultRule(StrictModel):
    """The camera itself (视频质量诊断): a black, over-exposed, frozen, blurred, covered,
    colour-cast, turned or noisy picture for ``min_duration_s`` (see analytics/vqd.py)."""

    type: Literal["camera_fault"]
    name: str = Field(min_length=1, max_length=NAME_MAX)
    enabled: StrictBool = True
    checks: list[FaultKind] = Field(
        default_factory=lambda: list(get_args(FaultKind)), description="the faults looked for"
    )
    black_level: float = Field(16.0, ge=0, le=255, description="mean luma at or below is black")
    black_contrast: float = Field(
        6.0, ge=0, description="…and a grey standard deviation at or below (a night scene has more)"
    )
    overexposed_share: float = Field(0.85, gt=0, le=1, description="share of saturated pixels")
    blur_ratio: float = Field(
        0.3, gt=0, lt=1, description="sharpness below this share of the learned sharpness"
    )
    occlusion_share: float = Field(
        0.5, gt=0, le=1, description="rise of the uniform share of the picture over the learned"
    )
    cast_level: float = Field(28.0, gt=0, description="mean colour's distance from grey (Lab)")
    scene_similarity: float = Field(
        0.35, gt=-1, lt=1, description="correlation with the learned view below this: turned"
    )
    noise_ratio: float = Field(3.0, gt=1, description="noise above this multiple of the learned")
    frozen_level: float = Field(
        0.01,
        ge=0,
        description="mean absolute grey difference between frames at or below is frozen. "
        "A frozen picture re-encoded by the camera measured 0 to 0.0097; a quiet real street "
        "dips below 0.01 for at most 1.6 s at a time, far shorter than min_duration_s",
    )
    min_duration_s: float = Field(8.0, gt=0, description="reported within 10 s by default")
    cooldown_s: float | None = Field(None, ge=0)
    severity: Severity = "medium"
    schedule: list[ScheduleWindow] | None = None
    zone: None = None


RuleConfig = Annotated[
    IntrusionRule
    | PedestrianOnRoadRule
    | LoiteringRule
    | WanderingRule
    | LineCrossingRule
    | WrongWayRule
    | StoppedVehicleRule
    | CrowdRule
    | PersonDownRule
    | CongestionRule
    | CameraFaultRule,
    Field(discriminator="type"),
]

#: The rule types, in the order the console offers them (each rule class's ``type``).
RULE_TYPES: tuple[AlertType, ...] = tuple(
    get_args(cls.model_fields["type"].annotation)[0] for cls in get_args(get_args(RuleConfig)[0])
)

#: Every alert type a rule can raise (the ``type`` of alerts, routing rules, targets).
ALERT_TYPES: tuple[str, ...] = tuple(
    get_args(m.model_fields["type"].annotation)[0] for m in get_args(get_args(RuleConfig)[0])
)


class MotionConfig(StrictModel):
    """Skip detection on frames without motion in the zones that matter."""

    enabled: StrictBool = True
    width: int = Field(160, ge=32, le=640, description="grey image width for differencing")
    pixel_threshold: int = Field(20, ge=1, le=255, description="grey-level change that counts")
    min_changed: float = Field(
        0.002, ge=0, le=1, description="fraction of the watched area that must change"
    )
    keepalive_s: float = Field(
        2.0, gt=0, description="detect at least this often anyway (stationary objects)"
    )
    quality_interval_s: float = Field(
        0.5, ge=0, le=5, description="video quality diagnosis at most this often (0: every frame)"
    )


#: Rule types about small, far or packed objects: with ``detect.regions: auto`` they turn
#: region detection on (where the native frame is larger than the analysed one).
SMALL_OBJECT_RULES = ("stopped_vehicle", "congestion", "crowd", "person_down", "pedestrian_on_road")


class DetectConfig(StrictModel):
    """Per camera: which tracks the rules may see, and where the detector looks."""

    min_frames: int = Field(
        2, ge=1, le=100, description="frames a track must be seen before any rule sees it"
    )
    min_median_score: float = Field(
        0.4, ge=0, le=1, description="median detector score over the track, at least"
    )
    count_weak: StrictBool = Field(
        True,
        description="line_crossing rules count the tracks of their own tracker, which also "
        "follows boxes scored below the detector's confidence (down to "
        "detector.weak_confidence): vehicles in rain, mist or spray (analytics/tracking.py, "
        "CountTracker); false: they count the main tracks like every other rule",
    )
    confirm_frames: int = Field(
        3, ge=0, le=100,
        description="intrusion and pedestrian_on_road see only confirmed objects: seen in "
        "at least this many frames, mostly without gaps, steady size, no jumps (0: off)",
    )  # fmt: skip
    confirm_score: float = Field(
        0.5, ge=0, le=1,
        description="... and the median of their last 10 scores at least this "
        "(Frigate's threshold)",
    )  # fmt: skip
    oversized_person_ratio: float = Field(
        3.0,
        ge=0,
        description="a person this many times taller than the other people at its image "
        "row is dropped (needs 3 others in view); 0 turns this off",
    )
    regions: StrictBool | Literal["auto"] = Field(
        "auto",
        description="also detect at native resolution on model-sized crops around motion, "
        "around small tracked objects and inside small watched zones (small, far or packed "
        "objects); auto: on where the native frame is larger than the analysed one and the "
        "camera has a rule about small or packed objects (stopped_vehicle, congestion, crowd, "
        "person_down, pedestrian_on_road); true: always; false: never",
    )
    max_regions: int = Field(
        2, ge=0, le=16, description="crops around tracked objects and motion per frame at most"
    )
    tiles: tuple[int, int] | None = Field(
        None,
        description="[columns, rows]: also detect on this grid of tiles every frame "
        "(far-field cameras); costs one detector run per tile",
    )
    scan_s: float = Field(
        1.0,
        ge=0,
        description="with region detection on: one native-resolution window of half the "
        "model's input (zoomed in 2x) this often, in turn over the watched zones' extent (the "
        "whole frame for a rule without a zone; the first sweep on every frame), finds small "
        "objects that have not moved since the camera started (a car parked far away); 0 "
        "turns this off",
    )
    crowd_tiles_s: float = Field(
        1.0,
        ge=0,
        description="with region detection on and a crowd rule (no `tiles` given): tile the "
        "native frame with model-sized tiles this often, for the crowd count (a 9:16 portrait "
        "frame gets 1x2 tiles, 16:9 gets 2x1, at most 2x2); 0 turns this off",
    )

    @field_validator("tiles")
    @classmethod
    def _tiles(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and not (1 <= v[0] <= 8 and 1 <= v[1] <= 8):
            raise ValueError("tiles must be [columns, rows], each 1..8")
        return v


class CameraConfig(CameraBase):
    """A camera with what the hub analyses on it: zones, rules, the motion gate."""

    zones: list[ZoneConfig] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    detect: DetectConfig = Field(default_factory=DetectConfig)

    @model_validator(mode="after")
    def _zones_and_rules(self) -> CameraConfig:
        names = [z.name for z in self.zones]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"duplicate zone name(s): {sorted(dupes)}")
        rule_names = [r.name for r in self.rules]
        dupes = {n for n in rule_names if rule_names.count(n) > 1}
        if dupes:
            raise ValueError(f"duplicate rule name(s): {sorted(dupes)}")
        for rule in self.rules:
            if rule.zone is not None and rule.zone not in names:
                raise ValueError(
                    f"rule {rule.name!r} names zone {rule.zone!r}, which is not defined "
                    f"(zones: {names or 'none'})"
                )
        return self
