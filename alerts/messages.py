"""The message that crosses the event bus: an event with its camera and evidence.

Plain data, JSON-serialisable (no frames): the frame never leaves the process
that decoded it; the evidence rendered from it travels as file references with
their SHA-256. The alert id is chosen where the event is born, so a message
delivered twice (the bus is at-least-once) is stored once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from alerts.domain.model import EvidenceRef
from analytics.types import Event
from core.area import Area

EVENTS_TOPIC = "events"


@dataclass
class EventMessage:
    alert_id: str
    event: Event
    camera_name: str
    area: Area
    created_at: float  # wall clock when the rule fired
    evidence: dict[str, EvidenceRef] = field(default_factory=dict)
    evidence_error: str | None = None  # why there is no evidence, if there is none
    camera_gb28181_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "event": dataclasses.asdict(self.event),
            "camera_name": self.camera_name,
            "area": self.area.model_dump(),
            "created_at": self.created_at,
            "evidence": {k: dataclasses.asdict(v) for k, v in self.evidence.items()},
            "evidence_error": self.evidence_error,
            "camera_gb28181_id": self.camera_gb28181_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventMessage:
        ev = dict(data["event"])
        if ev.get("box") is not None:
            ev["box"] = tuple(ev["box"])
        return cls(
            alert_id=data["alert_id"],
            event=Event(**ev),
            camera_name=data["camera_name"],
            area=Area.model_validate(data["area"]),
            created_at=float(data["created_at"]),
            evidence={k: EvidenceRef(**v) for k, v in (data.get("evidence") or {}).items()},
            evidence_error=data.get("evidence_error"),
            camera_gb28181_id=data.get("camera_gb28181_id"),  # absent in older spools
        )


#: The ``kind`` of a message on :data:`EVENTS_TOPIC` that adds a clip to a stored alert
#: (an event message has no ``kind``). Same topic, so it is consumed after its event.
CLIP_KIND = "evidence.clip"


@dataclass(frozen=True)
class ClipMessage:
    """An evidence clip written after its alert was published (it needs the seconds after)."""

    alert_id: str
    path: str
    sha256: str
    start: float
    end: float

    def to_dict(self) -> dict[str, Any]:
        return {"kind": CLIP_KIND, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClipMessage:
        return cls(data["alert_id"], data["path"], data["sha256"], float(data["start"]),
                   float(data["end"]))  # fmt: skip

    def ref(self) -> EvidenceRef:
        return EvidenceRef(self.path, self.sha256, self.start, self.end)
