"""Stopped vehicles found by comparing two patrol visits of a camera (轮巡: 违停, 占道).

A patrol visit watches a camera for a few seconds (``patrol.look_s``), far shorter than a
``stopped_vehicle`` rule's ``min_duration_s``: the rule cannot see a vehicle stop within
one visit. Two visits can. A vehicle that stood still during the previous visit and stands
at the same place during this one, inside a ``stopped_vehicle`` rule's zone, has been
there at least from the first sighting to the last: if that is ``min_duration_s`` or more,
it is a stopped vehicle (assuming it did not leave and come back in between: a patrol
cannot tell).

"The same vehicle at the same place" (:func:`compare_visits`):

* both sightings of the rule's classes, of one class family (car, truck and bus are one:
  the detector calls a van either; bicycle and motorcycle another), neither attended
  (a two-wheeler someone is on or at, with ``ignore_attended_two_wheelers``);
* both still during their visit: the anchor (bottom centre) strayed at most the rule's
  ``max_displacement`` box diagonals from where it was first seen;
* both anchors inside the rule's zone (a vehicle outside it, in a parking bay drawn out of
  the zone, does not count);
* box centres at most ``max_displacement`` mean diagonals apart, and sizes (diagonals)
  within a factor ``MAX_SIZE_RATIO``;
* colour signatures (analytics/appearance.py) correlating at least ``MIN_SIMILARITY``
  where both are known (a box too small for colour is judged by place alone); lower than
  within one visit, the light changes between visits;
* one-to-one: each sighting pairs with at most one of the other visit, nearest first.

A vehicle alerts once per rule: each sighting carries, per rule, since when the vehicle
has been seen at that place (its earliest visit) and whether it has alerted; a third visit
that finds it again carries both on and raises nothing. Outside the rule's schedule
nothing is raised and nothing is marked, so the first visit inside the window alerts.

:class:`VisitLog` gathers what one visit saw (fed each analysed frame's tracked boxes);
:class:`VisitSightings` is kept between visits (JSON, boxes in 0..1 of the frame so that a
resolution change does not matter). Plain Python and numpy, no I/O; the patrol runner
(shaobing/patrol.py) wires it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from analytics.appearance import SIZE, similarity
from analytics.config import StoppedVehicleRule, ZoneConfig
from analytics.sanity import attended_two_wheelers
from analytics.types import Detections, Event, class_name
from analytics.zones import Zone
from core.schedule import in_schedule

#: Classes the detector confuses with each other: a sighting matches one of its family.
FAMILIES = {"car": "car", "truck": "car", "bus": "car", "motorcycle": "two_wheeler",
            "bicycle": "two_wheeler"}  # fmt: skip
#: Colour signature correlation two sightings of one vehicle reach at least (across visits).
MIN_SIMILARITY = 0.5
#: Box diagonals of two sightings of one vehicle differ by at most this factor.
MAX_SIZE_RATIO = 1.5
#: Frames a track must be seen in during a visit to count as a sighting.
MIN_FRAMES = 3
#: Visits an alerted vehicle may go unseen (hidden by a bus, missed by the detector) and
#: still be known as alerted on when it is seen again.
MAX_MISSED = 1
#: Version of the JSON of :meth:`VisitSightings.to_json`.
FORMAT = 1

Box = tuple[float, float, float, float]


def family(cls: str) -> str:
    return FAMILIES.get(cls, cls)


@dataclass
class Sighting:
    """One object as a visit saw it (boxes in 0..1 of the frame's width and height)."""

    cls: str
    box: Box  # the last box seen
    first_at: float  # wall time of its first and last frame in the visit
    last_at: float
    frames: int
    drift: float  # farthest its anchor strayed from where first seen, in box diagonals
    confidence: float
    attended: bool = False  # a two-wheeler someone was on or at
    signature: np.ndarray | None = None  # colour signature (analytics/appearance.py)
    #: per rule: since when the vehicle has stood at this place (its earliest visit)
    since: dict[str, float] = field(default_factory=dict)
    alerted: set[str] = field(default_factory=set)  # rules that alerted on it already
    missed: int = 0  # visits since it was last seen (an alerted one kept, MAX_MISSED)

    def since_for(self, rule: str) -> float:
        return self.since.get(rule, self.first_at)

    def to_json(self) -> dict[str, Any]:
        sig = self.signature
        return {
            "cls": self.cls, "box": [round(v, 5) for v in self.box],
            "first_at": self.first_at, "last_at": self.last_at, "frames": self.frames,
            "drift": round(self.drift, 4), "confidence": round(self.confidence, 3),
            "attended": self.attended,
            "signature": None if sig is None else [round(float(v), 5) for v in sig],
            "since": self.since, "alerted": sorted(self.alerted), "missed": self.missed,
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Sighting:
        sig = d.get("signature")
        box = tuple(float(v) for v in d["box"])
        if len(box) != 4:
            raise ValueError(f"a sighting's box has {len(box)} values, not 4")
        signature = None
        if sig is not None:
            signature = np.asarray(sig, dtype=np.float32)
            if signature.shape != (SIZE,):
                raise ValueError(f"a sighting's colour signature has {len(sig)} values, "
                                 f"not {SIZE}")  # fmt: skip
        return cls(
            cls=str(d["cls"]), box=box,  # type: ignore[arg-type]
            first_at=float(d["first_at"]), last_at=float(d["last_at"]), frames=int(d["frames"]),
            drift=float(d["drift"]), confidence=float(d["confidence"]),
            attended=bool(d.get("attended", False)), signature=signature,
            since={str(k): float(v) for k, v in dict(d.get("since", {})).items()},
            alerted={str(r) for r in d.get("alerted", [])}, missed=int(d.get("missed", 0)),
        )  # fmt: skip


@dataclass
class VisitSightings:
    """What one patrol visit of a camera saw: its still objects of the watched classes."""

    started_at: float
    ended_at: float
    frame_size: tuple[int, int]  # analysed frame (width, height)
    source_size: tuple[int, int]  # the stream's native size
    objects: list[Sighting] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "started_at": self.started_at, "ended_at": self.ended_at,
            "frame_size": list(self.frame_size), "source_size": list(self.source_size),
            "objects": [o.to_json() for o in self.objects],
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> VisitSightings:
        if d.get("format") != FORMAT:
            raise ValueError(f"visit sightings of format {d.get('format')!r}, not {FORMAT}")
        fw, fh = (int(v) for v in d["frame_size"])
        sw, sh = (int(v) for v in d["source_size"])
        return cls(float(d["started_at"]), float(d["ended_at"]), (fw, fh), (sw, sh),
                   [Sighting.from_json(o) for o in d["objects"]])  # fmt: skip


# -- one visit --------------------------------------------------------------------------


@dataclass
class _Track:
    cls: str
    anchor: tuple[float, float]  # where first seen (analysed px)
    box: np.ndarray
    first_at: float
    last_at: float
    frames: int = 1
    drift: float = 0.0
    confidence: float = 0.0
    attended: bool = False
    signature: np.ndarray | None = None


class VisitLog:
    """Gathers a visit's tracked objects of ``classes`` frame by frame (cheap: a dict
    update per object); :meth:`sightings` makes the visit's record at its end."""

    def __init__(self, classes: set[str], started_at: float) -> None:
        self.classes = classes
        self.two_wheelers = bool(classes & {"bicycle", "motorcycle"})
        self.started_at = started_at
        self.frame_size: tuple[int, int] | None = None
        self.source_size: tuple[int, int] | None = None
        self._tracks: dict[int, _Track] = {}

    def add(
        self, tracked: Detections, class_names: tuple[str, ...], wall_ts: float,
        frame_size: tuple[int, int], source_size: tuple[int, int],
        look: Callable[[int], np.ndarray | None] = lambda _: None,
    ) -> None:  # fmt: skip
        """One analysed frame's tracked boxes (analysed px); ``look`` gives a track's
        colour signature (analytics/history.TrackHistory.look)."""
        if frame_size != self.frame_size:
            self._tracks.clear()  # a new resolution: boxes of another frame
            self.frame_size, self.source_size = frame_size, source_size
        if not len(tracked):
            return
        attended = (attended_two_wheelers(tracked, class_names) if self.two_wheelers
                    else np.zeros(len(tracked), dtype=bool))  # fmt: skip
        for i, tid in enumerate(tracked.tracker_id.tolist()):
            cls = class_name(int(tracked.class_id[i]), class_names)
            if cls not in self.classes:
                continue
            box = tracked.xyxy[i].astype(np.float64)
            anchor = ((box[0] + box[2]) / 2, float(box[3]))
            t = self._tracks.get(tid)
            if t is None:
                t = self._tracks[tid] = _Track(cls, anchor, box, wall_ts, wall_ts)
            else:
                t.frames += 1
            diagonal = max(math.hypot(box[2] - box[0], box[3] - box[1]), 1.0)
            moved = math.hypot(anchor[0] - t.anchor[0], anchor[1] - t.anchor[1]) / diagonal
            t.drift = max(t.drift, moved)
            t.box, t.last_at = box, wall_ts
            t.confidence = max(t.confidence, float(tracked.confidence[i]))
            t.attended |= bool(attended[i])
            sig = look(tid)
            if sig is not None and not np.isnan(sig).any():
                t.signature = np.asarray(sig, dtype=np.float32).copy()

    def sightings(self, ended_at: float) -> VisitSightings | None:
        """The visit's record: the tracks seen in ``MIN_FRAMES`` frames or more, one per
        place (a track the tracker split in two at one place is one vehicle). None: the
        visit analysed no frame."""
        if self.frame_size is None or self.source_size is None:
            return None
        w, h = self.frame_size
        objects: list[Sighting] = []
        tracks = sorted((t for t in self._tracks.values() if t.frames >= MIN_FRAMES),
                        key=lambda t: -t.frames)  # fmt: skip
        for t in tracks:
            x1, y1, x2, y2 = (float(v) for v in t.box)
            box: Box = (x1 / w, y1 / h, x2 / w, y2 / h)
            s = Sighting(t.cls, box, t.first_at, t.last_at, t.frames, t.drift, t.confidence,
                         t.attended, t.signature)  # fmt: skip
            if any(_same_place(s, o, 0.25, self.frame_size) is not None for o in objects):
                continue  # the same vehicle under another track id (seen less)
            objects.append(s)
        return VisitSightings(self.started_at, ended_at, self.frame_size, self.source_size,
                              objects)  # fmt: skip


# -- two visits -------------------------------------------------------------------------


@dataclass(frozen=True)
class StoppedBetweenVisits:
    """A vehicle at the same place on two visits, stopped at least ``stopped_s``."""

    rule: StoppedVehicleRule
    current: Sighting
    earlier: Sighting
    earlier_visit: VisitSightings
    stopped_s: float
    similarity: float | None  # of the colour signatures (None: unknown)

    @property
    def since(self) -> float:
        """When the vehicle was first seen at this place (its earliest visit)."""
        return self.current.last_at - self.stopped_s


def _px(box: Box, frame_size: tuple[int, int]) -> np.ndarray:
    w, h = frame_size
    return np.array([box[0] * w, box[1] * h, box[2] * w, box[3] * h], dtype=np.float64)


def _same_place(
    a: Sighting, b: Sighting, max_displacement: float, frame_size: tuple[int, int]
) -> float | None:
    """Centre distance of two sightings in mean box diagonals, or None when they are not
    one vehicle at one place (another family, size, place or colour)."""
    if family(a.cls) != family(b.cls):
        return None
    pa, pb = _px(a.box, frame_size), _px(b.box, frame_size)
    da = math.hypot(pa[2] - pa[0], pa[3] - pa[1])
    db = math.hypot(pb[2] - pb[0], pb[3] - pb[1])
    if min(da, db) <= 0 or max(da, db) > MAX_SIZE_RATIO * min(da, db):
        return None
    ca, cb = (pa[:2] + pa[2:]) / 2, (pb[:2] + pb[2:]) / 2
    distance = float(np.hypot(*(ca - cb))) / ((da + db) / 2)
    if distance > max_displacement:
        return None
    sim = similarity(a.signature, b.signature)
    if sim is not None and sim < MIN_SIMILARITY:
        return None
    return distance


def _candidates(
    visit: VisitSightings, rule: StoppedVehicleRule, zone: Zone, frame_size: tuple[int, int]
) -> list[Sighting]:
    """The visit's sightings the rule looks at: its classes, still, unattended, anchored
    inside its zone (mapped to ``frame_size``)."""
    out = [
        o for o in visit.objects
        if o.cls in rule.classes and o.drift <= rule.max_displacement
        and o.confidence >= rule.min_confidence
        and not (rule.ignore_attended_two_wheelers and o.attended)
    ]  # fmt: skip
    if not out:
        return out
    boxes = np.array([_px(o.box, frame_size) for o in out])
    anchors = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]], axis=1)
    inside = zone.contains(anchors)
    return [o for o, keep in zip(out, inside.tolist(), strict=True) if keep]


def rule_zone(
    rule: StoppedVehicleRule, zones: Mapping[str, ZoneConfig], visit: VisitSightings
) -> Zone:
    """The rule's zone in the visit's analysed frame (the whole frame without one)."""
    if rule.zone is None:
        return Zone.whole_frame(visit.frame_size)
    return Zone.from_config(zones[rule.zone], visit.source_size, visit.frame_size)


def compare_visits(
    previous: VisitSightings | None,
    current: VisitSightings,
    rules: Sequence[StoppedVehicleRule],
    zones: Mapping[str, ZoneConfig],
    when: dt.datetime | None = None,
    max_gap_s: float | None = None,
) -> list[StoppedBetweenVisits]:
    """The vehicles stopped between the ``previous`` visit and the ``current`` one, by the
    enabled ``stopped_vehicle`` rules; ``when`` is the current visit's local time (the
    rules' schedules; None: always). A previous visit that ended more than ``max_gap_s``
    before this one began (the patrol was stopped for days) is not compared with: a car
    parked there every evening is no car stopped all week. Carries each current
    sighting's ``since`` and ``alerted`` on from the earlier sighting it matches, and keeps
    an alerted vehicle this visit did not see for ``MAX_MISSED`` more visits (no second
    alert when it is seen again)."""
    findings: list[StoppedBetweenVisits] = []
    if previous is None:
        return findings
    if max_gap_s is not None and current.started_at - previous.ended_at > max_gap_s:
        return findings
    size = current.frame_size
    matched: set[int] = set()
    for rule in rules:
        if not rule.enabled or rule.type != "stopped_vehicle":
            continue
        if rule.zone is not None and rule.zone not in zones:
            continue  # a rule naming a zone the camera lost: nothing to look at
        zone = rule_zone(rule, zones, current)
        now = _candidates(current, rule, zone, size)
        before = _candidates(previous, rule, zone, size)
        armed = when is None or in_schedule(rule.schedule, when)
        for cur, prev, _ in _pairs(now, before, rule.max_displacement, size):
            matched.add(id(prev))
            since = prev.since_for(rule.name)
            cur.since[rule.name] = since
            if rule.name in prev.alerted:
                cur.alerted.add(rule.name)  # the same vehicle: alerted on already
                continue
            stopped = cur.last_at - since
            if not armed or stopped < rule.min_duration_s:
                continue
            cur.alerted.add(rule.name)
            sim = similarity(cur.signature, prev.signature)
            findings.append(StoppedBetweenVisits(rule, cur, prev, previous, stopped, sim))
    for prev in previous.objects:
        if prev.alerted and id(prev) not in matched and prev.missed < MAX_MISSED:
            current.objects.append(replace(prev, missed=prev.missed + 1, since=dict(prev.since),
                                           alerted=set(prev.alerted)))  # fmt: skip
    return findings


def _pairs(
    now: list[Sighting], before: list[Sighting], max_displacement: float,
    frame_size: tuple[int, int],
) -> list[tuple[Sighting, Sighting, float]]:  # fmt: skip
    """One-to-one pairs of the same vehicle at the same place, nearest first."""
    scored = []
    for i, a in enumerate(now):
        for j, b in enumerate(before):
            d = _same_place(a, b, max_displacement, frame_size)
            if d is not None:
                scored.append((d, i, j))
    scored.sort()
    used_now: set[int] = set()
    used_before: set[int] = set()
    out = []
    for d, i, j in scored:
        if i in used_now or j in used_before:
            continue
        used_now.add(i)
        used_before.add(j)
        out.append((now[i], before[j], d))
    return out


# -- the alert --------------------------------------------------------------------------


def stopped_event(
    f: StoppedBetweenVisits, camera_id: str, frame_size: tuple[int, int], pts: float,
    tz: dt.tzinfo = dt.UTC,
) -> Event:  # fmt: skip
    """The ``stopped_vehicle`` event of a finding, in the current visit's analysed frame
    (``frame_size``, ``pts`` of its frame): its box, and in ``extra`` the earlier visit's
    time, box and how long the vehicle has stood there at least."""
    rule, cur = f.rule, f.current
    box = _px(cur.box, frame_size)
    earlier = _px(f.earlier.box, frame_size)
    seen = dt.datetime.fromtimestamp(f.earlier.last_at, tz).strftime("%Y-%m-%d %H:%M:%S")
    since = dt.datetime.fromtimestamp(f.since, tz).strftime("%Y-%m-%d %H:%M:%S")
    where = f"in zone '{rule.zone}'" if rule.zone else "in view"
    # A vehicle carried over several visits: since its first one.
    first = f" (there since {since})" if f.since < f.earlier_visit.started_at else ""
    centre = (box[:2] + box[2:]) / 2 / np.array(frame_size, dtype=np.float64)
    return Event(
        camera_id=camera_id, rule=rule.name, type="stopped_vehicle", ts=cur.last_at, pts=pts,
        track_ids=[], object_class=cur.cls, zone=rule.zone or "frame", severity=rule.severity,
        measured=round(f.stopped_s, 1), threshold=rule.min_duration_s, unit="s",
        explanation=(
            f"{cur.cls} stationary {where} for at least {f.stopped_s:.0f} s ≥ "
            f"{rule.min_duration_s:g} s: at the same place on the patrol visit of {seen}"
            f"{first} and on this one"
        ),
        confidence=cur.confidence, box=(box[0], box[1], box[2], box[3]),
        started_pts=pts - f.stopped_s, cooldown_s=rule.cooldown_s,
        # One vehicle, one alert: keyed by where and since when it stands, not by a track
        # id (a new visit has new ids).
        key=f"visits:{f.since:.0f}:{centre[0]:.3f},{centre[1]:.3f}",
        extra={
            "patrol": True,
            "earlier_visit_at": round(f.earlier.last_at, 3),
            "earlier_box": [round(float(v), 1) for v in earlier],
            "stopped_since": round(f.since, 3),
            "stopped_at_least_s": round(f.stopped_s, 1),
            "similarity": None if f.similarity is None else round(f.similarity, 3),
        },
    )  # fmt: skip


def stopped_vehicle_rules(rules: Sequence[object]) -> list[StoppedVehicleRule]:
    """The enabled ``stopped_vehicle`` rules among a camera's rules."""
    return [r for r in rules if isinstance(r, StoppedVehicleRule) and r.enabled]


def watched_classes(rules: Sequence[StoppedVehicleRule]) -> set[str]:
    """The classes a visit log keeps for these rules."""
    return {c for r in rules for c in r.classes}
