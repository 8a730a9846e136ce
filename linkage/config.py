"""Linkage configuration (the ``linkage:`` section): rules, speakers, warnings, PTZ.

One model per concern on the project's :class:`~core.model.StrictModel` (unknown keys
are errors). A rule is data: alert type × camera/area × severity × schedule → actions,
with an optional delay or operator confirmation.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from core.area import Area
from core.model import ID_MAX, NAME_MAX, StrictModel
from core.schedule import ScheduleWindow

Severity = Literal["info", "low", "medium", "high", "critical"]


class PtzPresetAction(StrictModel):
    """Turn a PTZ camera to a preset (by token or by its name, Chinese names included)."""

    kind: Literal["ptz_preset"] = "ptz_preset"
    camera: str | None = Field(None, max_length=ID_MAX, description="default: the alert's camera")
    preset: str = Field(min_length=1, max_length=NAME_MAX, description="preset token or name")


class VoiceAction(StrictModel):
    """Speak a warning of the library through a speaker."""

    kind: Literal["voice"] = "voice"
    speaker: str = Field(min_length=1, max_length=ID_MAX)
    warning: str = Field(min_length=1, max_length=NAME_MAX, description="a key of warnings")
    repeat: int | None = Field(None, ge=1, le=10, description="default: the speaker's")


class PopupAction(StrictModel):
    """Pop up another camera's live view on the wall next to the alert."""

    kind: Literal["popup"] = "popup"
    camera: str = Field(min_length=1, max_length=ID_MAX)


class DispatchAction(StrictModel):
    """Send the alert to one more dispatch target (one of ``dispatch:``)."""

    kind: Literal["dispatch"] = "dispatch"
    target: str = Field(min_length=1, max_length=ID_MAX)


LinkageAction = Annotated[
    PtzPresetAction | VoiceAction | PopupAction | DispatchAction, Field(discriminator="kind")
]


class LinkageRule(StrictModel):
    """alert type × camera/area × severity × schedule → actions."""

    name: str = Field(min_length=1, max_length=NAME_MAX)
    enabled: bool = True
    types: list[str] | None = Field(None, description="alert types; default: all")
    cameras: list[str] | None = Field(None, description="camera ids; default: any camera")
    area: Area = Field(default_factory=Area, description="default: everywhere")
    min_severity: Severity = "info"
    schedule: list[ScheduleWindow] | None = Field(None, description="default: always")
    delay_s: float = Field(0.0, ge=0, le=3600, description="wait before acting")
    confirm: bool = Field(False, description="an operator confirms before the actions run")
    actions: list[LinkageAction] = Field(min_length=1)


class SpeakerConfig(StrictModel):
    """An on-site speaker: an IP speaker/intercom called over SIP (auto-answer, G.711
    over RTP), or an HTTP speaker API (a webhook that receives the text and audio)."""

    id: str = Field(min_length=1, max_length=ID_MAX)
    name: str = Field("", max_length=NAME_MAX)
    kind: Literal["sip", "http", "gb28181"]
    uri: str | None = Field(None, description="sip: sip:user@host:port of the speaker; "
                            "gb28181: gb28181://<device id>/<audio output id> (voice "
                            "broadcast through the hub's SIP platform)")  # fmt: skip
    url: str | None = Field(None, description="http: the speaker API's URL (POST)")
    codec: Literal["pcmu", "pcma"] = Field("pcma", description="G.711 μ-law or A-law")
    local_ip: str = Field("127.0.0.1", description="sip: the address RTP is sent from")
    username: str | None = Field(None, description="sip: digest user, when the speaker asks")
    password: str | None = Field(None, repr=False, description="sip: digest password")
    repeat: int = Field(2, ge=1, le=10, description="how many times a warning is played")
    gap_s: float = Field(1.0, ge=0, le=30, description="silence between repetitions")
    volume: int | None = Field(None, ge=0, le=100, description="http: passed to the speaker")
    timeout_s: float = Field(5.0, gt=0, le=60, description="answer / HTTP timeout")
    quiet_hours: list[ScheduleWindow] = Field(
        default_factory=list, description="no automatic warnings in these windows"
    )

    @model_validator(mode="after")
    def _address(self) -> SpeakerConfig:
        if self.kind == "sip" and not (self.uri or "").startswith("sip:"):
            raise ValueError("a sip speaker needs uri: sip:user@host[:port]")
        if self.kind == "http" and not (self.url or "").startswith(("http://", "https://")):
            raise ValueError("an http speaker needs url: http(s)://...")
        if self.kind == "gb28181" and not re.fullmatch(r"gb28181://\d{20}/\d{20}", self.uri or ""):
            raise ValueError("a gb28181 speaker needs uri: gb28181://<20-digit device id>/"
                             "<20-digit audio output id>")  # fmt: skip
        return self


class WarningConfig(StrictModel):
    """A warning of the library: text spoken by the offline TTS, or a recorded file."""

    text: str = Field("", max_length=200)
    file: str | None = Field(None, description="WAV (8/16-bit PCM) played instead of the text")

    @model_validator(mode="after")
    def _something(self) -> WarningConfig:
        if not self.text.strip() and not self.file:
            raise ValueError("a warning needs text or file")
        return self


#: Warnings every deployment has (keys usable in rules and by the 喊话 button).
DEFAULT_WARNINGS: dict[str, WarningConfig] = {
    "reservoir": WarningConfig(text="水库危险，请勿靠近。"),
    "leave_water": WarningConfig(text="您已进入危险水域，请立即离开。"),
    "level_crossing": WarningConfig(text="火车即将通过，请勿穿越道口。"),
    "crowd": WarningConfig(text="请不要聚集，有序离开。"),
    "expressway": WarningConfig(text="高速公路禁止行人和停车，请立即离开。"),
    "no_dumping": WarningConfig(text="禁止乱倒垃圾，您已被录像。"),
}


class LinkageConfig(StrictModel):
    enabled: bool = Field(True, description="run linkage rules on new alerts")
    rules: list[LinkageRule] = Field(default_factory=list)
    speakers: list[SpeakerConfig] = Field(default_factory=list)
    warnings: dict[str, WarningConfig] = Field(
        default_factory=lambda: dict(DEFAULT_WARNINGS), description="default: the built-in ones"
    )
    return_home_s: float = Field(
        120.0, gt=0, description="a camera moved by a linkage returns home after this"
    )
    operator_hold_s: float = Field(
        60.0, gt=0, description="an operator's PTZ lock lasts this long after their last command"
    )
    confirm_timeout_s: float = Field(
        600.0, gt=0, description="actions awaiting confirmation expire after this"
    )
    action_attempts: int = Field(2, ge=1, le=5, description="tries of a failed action")

    @model_validator(mode="after")
    def _references(self) -> LinkageConfig:
        speakers = {s.id for s in self.speakers}
        if len(speakers) != len(self.speakers):
            raise ValueError("speaker ids must be unique")
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError("linkage rule names must be unique")
        for rule in self.rules:
            for action in rule.actions:
                if isinstance(action, VoiceAction):
                    if action.speaker not in speakers:
                        raise ValueError(f"rule {rule.name}: unknown speaker {action.speaker!r}")
                    if action.warning not in self.warnings:
                        raise ValueError(f"rule {rule.name}: unknown warning {action.warning!r}")
        return self
