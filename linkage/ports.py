"""What the linkage engine needs from the outside (adapters implement these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from linkage.rules import AlertFacts, Outcome


class ActionFailed(RuntimeError):
    """An action the device refused or did not answer; the message says why."""


@dataclass(frozen=True)
class Preset:
    token: str
    name: str


@dataclass(frozen=True)
class Result:
    """What happened to an action (recorded in the alert's history)."""

    outcome: Outcome
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


class PtzControl(Protocol):
    """PTZ commands to a camera by id (ONVIF, GB/T 28181 ...). Raise ActionFailed."""

    def presets(self, camera_id: str) -> list[Preset]: ...

    def goto_preset(self, camera_id: str, preset: str) -> Preset:
        """Go to the preset with this token or name; the preset reached."""
        ...

    def set_preset(self, camera_id: str, name: str) -> Preset: ...

    def move(self, camera_id: str, pan: float, tilt: float, zoom: float) -> None: ...

    def stop(self, camera_id: str) -> None: ...

    def home(self, camera_id: str) -> None: ...


class Voice(Protocol):
    """Plays a warning of the library (or free text) through a speaker."""

    def play(
        self, speaker_id: str, *, warning: str | None = None, text: str | None = None,
        repeat: int | None = None, manual: bool = False,
    ) -> Result: ...  # fmt: skip


class AlertReader(Protocol):
    def __call__(self, alert_id: str) -> AlertFacts | None: ...


class ResultRecorder(Protocol):
    """Writes an action's result into the alert's history (and the audit log)."""

    def record(self, alert_id: str, actor: str, result: Result) -> None: ...

    def dispatch(self, alert_id: str, target: str, actor: str) -> None:
        """Send the alert to one more dispatch target (raise ActionFailed)."""
        ...


class HomeTimers(Protocol):
    """Where the cameras a linkage moved, and when each returns home, are kept so that
    they survive a restart of the process running the engine (distributed: Redis)."""

    def save(self, camera_id: str, at: float, alert_id: str | None) -> None: ...

    def drop(self, camera_id: str) -> None: ...

    def load(self) -> dict[str, tuple[float, str | None]]: ...


class AlertClaim(Protocol):
    """True for the one engine that acts on an alert when several receive it (several
    alerts roles on one Redis); the others leave it."""

    def __call__(self, alert_id: str) -> bool: ...
