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
    over RTP), an HTTP speaker API (a webhook that receives the text and audio), or a
    camera's speaker through the ONVIF audio back channel (RTSP, G.711 over RTP)."""

    id: str = Field(min_length=1, max_length=ID_MAX)
    name: str = Field("", max_length=NAME_MAX)
    kind: Literal["sip", "http", "onvif_backchannel", "gb28181"]
    uri: str | None = Field(None, description="sip: sip:user@host:port of the speaker; "
                            "gb28181: gb28181://<device id>/<audio output id> (voice "
                            "broadcast through the hub's SIP platform)")  # fmt: skip
    url: str | None = Field(
        None,
        description="http: the speaker API's URL (POST); onvif_backchannel: the camera's "
        "RTSP URL (rtsp://host:port/path, its audio back channel)",
    )
    codec: Literal["pcmu", "pcma"] = Field("pcma", description="G.711 μ-law or A-law")
    local_ip: str = Field("127.0.0.1", description="sip: the address RTP is sent from")
    username: str | None = Field(None, description="sip, onvif_backchannel: digest user")
    password: str | None = Field(None, repr=False, description="sip, onvif_backchannel: password")
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
        if self.kind == "onvif_backchannel" and not (self.url or "").startswith("rtsp://"):
            raise ValueError("an onvif_backchannel speaker needs url: rtsp://host[:port]/path")
        if self.kind == "gb28181" and not re.fullmatch(r"gb28181://\d{20}/\d{20}", self.uri or ""):
            raise ValueError("a gb28181 speaker needs uri: gb28181://<20-digit device id>/"
                             "<20-digit audio output id>")  # fmt: skip
        return self


class WarningConfig(StrictModel):
    """A warning of the library: text spoken by the offline TTS, or a recorded file."""

    text: str = Field("", max_length=200)
    file: str | None = Field(
        None,
        description="WAV (8/16-bit PCM or G.711) played instead of the text, relative to the "
        "config file; builtin:<key> for a recording shipped with Shaobing",
    )

    @model_validator(mode="after")
    def _something(self) -> WarningConfig:
        if not self.text.strip() and not self.file:
            raise ValueError("a warning needs text or file")
        return self


#: The texts of the warnings every deployment has (keys usable in rules and by 喊话)
BUILTIN_TEXTS: dict[str, str] = {
    "reservoir": "水库危险，请勿靠近。",
    "leave_water": "您已进入危险水域，请立即离开。",
    "level_crossing": "火车即将通过，请勿穿越道口。",
    "crowd": "请不要聚集，有序离开。",
    "expressway": "高速公路禁止行人和停车，请立即离开。",
    "no_dumping": "禁止乱倒垃圾，您已被录像。",
}

#: Played from the recordings shipped in linkage/sounds/ (``python -m linkage.sounds``);
#: the text is what the console shows, and what the TTS says should a file be missing.
DEFAULT_WARNINGS: dict[str, WarningConfig] = {
    key: WarningConfig(text=text, file=f"builtin:{key}") for key, text in BUILTIN_TEXTS.items()
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
            problems = rule_problems(rule, speakers=speakers, warnings=set(self.warnings))
            if problems:
                raise ValueError(f"rule {rule.name}: {problems[0]}")
        return self


def rule_problems(
    rule: LinkageRule,
    *,
    speakers: set[str],
    warnings: set[str],
    cameras: set[str] | None = None,
    targets: set[str] | None = None,
) -> list[str]:
    """What in ``rule`` names something that does not exist (empty: nothing), each
    with the field it is in; ``cameras``/``targets`` None: not checked."""
    out: list[str] = []
    if cameras is not None:
        out += [f"cameras: unknown camera {c!r}" for c in rule.cameras or [] if c not in cameras]
    for i, action in enumerate(rule.actions):
        where = f"actions[{i}]"
        if isinstance(action, VoiceAction):
            if action.speaker not in speakers:
                out.append(f"{where}.speaker: unknown speaker {action.speaker!r}")
            if action.warning not in warnings:
                out.append(f"{where}.warning: unknown warning {action.warning!r}")
        camera = getattr(action, "camera", None)
        if cameras is not None and camera is not None and camera not in cameras:
            out.append(f"{where}.camera: unknown camera {camera!r}")
        if isinstance(action, DispatchAction) and targets is not None:
            if action.target not in targets:
                out.append(f"{where}.target: unknown or disabled dispatch target {action.target!r}")
    return out
