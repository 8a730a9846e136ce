"""PTZ on a camera (arrows, zoom, presets, home; one operator at a time), linkage
rules and their actions awaiting confirmation, pop-ups, and 喊话 (voice warnings).

The linkage component is ``services.linkage`` (404 when this process has none).
Device failures answer 502 with the reason; a camera another operator holds, 409.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from accounts.domain import Principal, sees_alert
from api.access import visible_camera
from api.auth import audit_request
from api.deps import (
    AlertHandler,
    AlertReader,
    CameraConfigurer,
    CameraReader,
    RoutingReader,
    ServicesDep,
    SessionDep,
)
from api.ports import HubServices
from linkage.arbiter import PtzBusy
from linkage.config import LinkageRule
from linkage.engine import ConfirmationNotFound
from linkage.ports import ActionFailed, Result

router = APIRouter(tags=["linkage"])



class PresetOut(BaseModel):
    token: str
    name: str


class PtzMove(BaseModel):
    pan: float = Field(0.0, ge=-1, le=1, description="speed, -1 (left) to 1 (right)")
    tilt: float = Field(0.0, ge=-1, le=1, description="speed, -1 (down) to 1 (up)")
    zoom: float = Field(0.0, ge=-1, le=1, description="speed, -1 (out) to 1 (in)")


class PresetGo(BaseModel):
    preset: str = Field(min_length=1, max_length=100, description="token or name")


class PresetSave(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class PtzState(BaseModel):
    camera_id: str
    holder: str | None = Field(None, description="the operator controlling the camera")
    held_until: float | None = None
    preset: PresetOut | None = None


class Speak(BaseModel):
    speaker: str = Field(min_length=1, max_length=64)
    warning: str | None = Field(None, description="a warning of the library (its key)")
    text: str | None = Field(None, max_length=200, description="free text, spoken by TTS")
    repeat: int | None = Field(None, ge=1, le=10)
    alert_id: str | None = Field(None, description="record the result in this alert")


class ActionResultOut(BaseModel):
    outcome: Literal["sent", "answered", "failed", "skipped", "awaiting_confirmation",
                     "cancelled"]  # fmt: skip
    note: str
    detail: dict[str, Any] = Field(default_factory=dict)


class PendingOut(BaseModel):
    key: str
    alert_id: str
    rule: str
    kind: str
    expires_at: float
    action: dict[str, Any]


class PopupOut(BaseModel):
    camera_id: str
    alert_id: str
    rule: str
    at: float


class SpeakerOut(BaseModel):
    id: str
    name: str
    kind: str


def linkage_of(hub: HubServices) -> Any:
    component = getattr(hub, "linkage", None)
    if component is None:
        raise HTTPException(404, "linkage is not running in this process")
    return component


def _ptz(hub: HubServices) -> Any:
    component = linkage_of(hub)
    if component.ptz is None:
        raise HTTPException(404, "no PTZ control in this process")
    return component


def _take(component: Any, camera_id: str, principal: Principal) -> float:
    try:
        return float(component.engine.take_ptz(camera_id, principal.username))
    except PtzBusy as busy:
        raise HTTPException(409, f"camera {camera_id} is controlled by {busy.holder}; "
                                 "try again when they are done") from None  # fmt: skip


def _device(call: Any) -> Any:
    try:
        return call()
    except ActionFailed as exc:
        raise HTTPException(502, str(exc)) from None


def _command(component: Any, camera_id: str, principal: Principal, call: Any) -> Any:
    """Run a PTZ command as ``principal``, who takes (or keeps) the camera; a command
    the camera refused does not leave a new hold behind."""
    engine = component.engine
    had = engine.arbiter.holder(camera_id, engine.clock()) == principal.username
    _take(component, camera_id, principal)
    try:
        return _device(call)
    except HTTPException:
        if not had:
            engine.release_ptz(camera_id, principal.username)
        raise


def _state(component: Any, camera_id: str, preset: Any = None) -> PtzState:
    holds = component.engine.arbiter.holds(component.engine.clock())
    holder, until = holds.get(camera_id, (None, None))
    out = PresetOut(token=preset.token, name=preset.name) if preset is not None else None
    return PtzState(camera_id=camera_id, holder=holder, held_until=until, preset=out)


@router.get("/api/cameras/{camera_id}/ptz/presets", response_model=list[PresetOut],
            summary="The camera's PTZ presets (names as the camera has them)")  # fmt: skip
def get_presets(camera_id: str, hub: ServicesDep, session: SessionDep,
                principal: CameraReader) -> list[PresetOut]:  # fmt: skip
    visible_camera(session, camera_id, principal)
    component = _ptz(hub)
    presets = _device(lambda: component.ptz.presets(camera_id))
    return [PresetOut(token=p.token, name=p.name) for p in presets]


@router.post("/api/cameras/{camera_id}/ptz/move", response_model=PtzState,
             summary="Move at a speed (stops by itself after a second; send again to go on)")
def post_move(camera_id: str, body: PtzMove, hub: ServicesDep, session: SessionDep,
              principal: AlertHandler) -> PtzState:  # fmt: skip
    visible_camera(session, camera_id, principal)
    component = _ptz(hub)
    _command(component, camera_id, principal,
             lambda: component.ptz.move(camera_id, body.pan, body.tilt, body.zoom))
    return _state(component, camera_id)


@router.post("/api/cameras/{camera_id}/ptz/stop", response_model=PtzState, summary="Stop moving")
def post_stop(
    camera_id: str, hub: ServicesDep, session: SessionDep, principal: AlertHandler
) -> PtzState:
    visible_camera(session, camera_id, principal)
    component = _ptz(hub)
    _command(component, camera_id, principal, lambda: component.ptz.stop(camera_id))
    return _state(component, camera_id)


@router.post("/api/cameras/{camera_id}/ptz/home", response_model=PtzState,
             summary="Go to the home position")  # fmt: skip
def post_home(camera_id: str, request: Request, hub: ServicesDep, session: SessionDep,
              principal: AlertHandler) -> PtzState:  # fmt: skip
    visible_camera(session, camera_id, principal)
    component = _ptz(hub)
    _command(component, camera_id, principal, lambda: component.ptz.home(camera_id))
    audit_request(request, session, principal, "ptz_home", camera_id)
    session.commit()
    return _state(component, camera_id)


@router.post("/api/cameras/{camera_id}/ptz/goto", response_model=PtzState,
             summary="Go to a preset (token or name)")  # fmt: skip
def post_goto(camera_id: str, body: PresetGo, request: Request, hub: ServicesDep,
              session: SessionDep, principal: AlertHandler) -> PtzState:  # fmt: skip
    visible_camera(session, camera_id, principal)
    component = _ptz(hub)
    preset = _command(
        component, camera_id, principal, lambda: component.ptz.goto_preset(camera_id, body.preset)
    )
    audit_request(request, session, principal, "ptz_goto_preset", camera_id,
                  f"{preset.token} {preset.name}")  # fmt: skip
    session.commit()
    return _state(component, camera_id, preset)


@router.post("/api/cameras/{camera_id}/ptz/presets", response_model=PresetOut, status_code=201,
             summary="Save the current position as a preset")  # fmt: skip
def post_preset(camera_id: str, body: PresetSave, request: Request, hub: ServicesDep,
                session: SessionDep, principal: CameraConfigurer) -> PresetOut:  # fmt: skip
    visible_camera(session, camera_id, principal)
    component = _ptz(hub)
    preset = _command(
        component, camera_id, principal, lambda: component.ptz.set_preset(camera_id, body.name)
    )
    audit_request(request, session, principal, "ptz_set_preset", camera_id,
                  f"{preset.token} {preset.name}")  # fmt: skip
    session.commit()
    return PresetOut(token=preset.token, name=preset.name)


@router.post("/api/cameras/{camera_id}/ptz/release", response_model=PtzState,
             summary="Let go of the camera (another operator may take it)")  # fmt: skip
def post_release(camera_id: str, hub: ServicesDep, session: SessionDep,
                 principal: AlertHandler) -> PtzState:  # fmt: skip
    visible_camera(session, camera_id, principal)
    component = linkage_of(hub)
    component.engine.release_ptz(camera_id, principal.username)
    return _state(component, camera_id)


@router.get("/api/linkage/rules", response_model=list[LinkageRule],
            summary="Linkage rules (from the config)")  # fmt: skip
def get_rules(hub: ServicesDep, principal: RoutingReader) -> list[LinkageRule]:
    return list(linkage_of(hub).config.rules)


@router.get("/api/linkage/pending", response_model=list[PendingOut],
            summary="Actions awaiting an operator's confirmation")  # fmt: skip
def get_pending(hub: ServicesDep, principal: AlertReader) -> list[PendingOut]:
    out = []
    for p in linkage_of(hub).engine.pending():
        action = {k: v for k, v in p.items() if k not in ("key", "alert_id", "rule",
                                                          "expires_at")}  # fmt: skip
        out.append(
            PendingOut(
                key=p["key"],
                alert_id=p["alert_id"],
                rule=p["rule"],
                kind=p["kind"],
                expires_at=p["expires_at"],
                action=action,
            )
        )
    return out


@router.post(
    "/api/linkage/pending/{key}/{decision}",
    status_code=204,
    summary="Confirm (run now) or decline an action awaiting confirmation",
)
def post_decision(
    key: str,
    decision: Literal["confirm", "decline"],
    request: Request,
    hub: ServicesDep,
    session: SessionDep,
    principal: AlertHandler,
) -> None:
    try:
        linkage_of(hub).engine.confirm(key, principal.username, accept=decision == "confirm")
    except ConfirmationNotFound:
        raise HTTPException(404, f"no action awaiting confirmation {key!r}") from None
    audit_request(request, session, principal, f"linkage_{decision}", key[:128])
    session.commit()


@router.get("/api/linkage/popups", response_model=list[PopupOut],
            summary="Cameras linkage rules popped up on the wall, newest last")  # fmt: skip
def get_popups(hub: ServicesDep, principal: AlertReader) -> list[PopupOut]:
    return [PopupOut(**p) for p in linkage_of(hub).engine.popups]


@router.get("/api/linkage/speakers", response_model=list[SpeakerOut], summary="Speakers")
def get_speakers(hub: ServicesDep, principal: AlertReader) -> list[SpeakerOut]:
    return [SpeakerOut(id=s.id, name=s.name or s.id, kind=s.kind)
            for s in linkage_of(hub).config.speakers]  # fmt: skip


@router.get("/api/linkage/warnings", summary="The library of warnings: key → text")
def get_warnings(hub: ServicesDep, principal: AlertReader) -> dict[str, str]:
    return {k: w.text or (w.file or "") for k, w in linkage_of(hub).config.warnings.items()}


@router.post("/api/linkage/speak", response_model=ActionResultOut,
             responses={409: {"description": "no speaker is configured (linkage.speakers)"}},
             summary="喊话: play a warning (or text) through a speaker now")  # fmt: skip
def post_speak(body: Speak, request: Request, hub: ServicesDep, session: SessionDep,
               principal: AlertHandler) -> ActionResultOut:  # fmt: skip
    component = linkage_of(hub)
    if component.voice is None:
        raise HTTPException(409, "no speaker is configured (linkage.speakers)")
    if bool(body.warning) == bool(body.text):
        raise HTTPException(422, "give either warning or text")
    if body.alert_id is not None:
        alert = hub.alerts.get(body.alert_id)
        if alert is None or not sees_alert(principal, alert.area, alert.departments,
                                           alert.assignee):  # fmt: skip
            raise HTTPException(404, f"no alert {body.alert_id!r}")
    try:
        result = component.voice.play(body.speaker, warning=body.warning, text=body.text,
                                      repeat=body.repeat, manual=True)  # fmt: skip
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0]) if exc.args else "unknown") from None
    except ActionFailed as exc:  # the speaker did not take it: say why, and record it
        result = Result("failed", str(exc), {"speaker": body.speaker})
    audit_request(request, session, principal, "voice_warning", body.speaker,
                  f"{result.outcome}: {body.warning or body.text}")  # fmt: skip
    session.commit()
    if body.alert_id is not None:
        component.recorder.record(body.alert_id, principal.username, result)
    return ActionResultOut(outcome=result.outcome, note=result.note, detail=result.detail)
