"""PTZ of GB/T 28181 channels (DeviceControl ``PTZCmd`` through the hub's SIP server), and
the PTZ port that sends each camera's commands to its own protocol.

:class:`GbPtz` is a :class:`~linkage.ports.PtzControl` for cameras whose source is
``gb28181://<device>/<channel>``: continuous moves, stop, and numbered presets (GB/T 28181
presets are numbers 1-255 without names; there is no preset list in the 2016 standard and
no home command — ``home`` goes to preset 1, the usual home position of county installs,
and says so). A move stops by itself after ``move_stop_s`` unless another move or a stop
comes first, as with ONVIF. :class:`RoutedPtz` puts it beside the ONVIF adapter behind the
one port the linkage engine and the API use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from gb28181 import ptz as cmd
from linkage.ports import ActionFailed, Preset, PtzControl

log = logging.getLogger(__name__)

#: ``locate(camera_id)``: (device id, channel id) of a GB/T 28181 camera, else None.
Locate = Callable[[str], tuple[str, str] | None]


class GbPtz:
    """PTZ of GB/T 28181 channels through ``server`` (a :class:`gb28181.server.SipServer`)."""

    def __init__(self, server: Any, locate: Locate, *, move_stop_s: float = 1.0,
                 home_preset: int = 1) -> None:  # fmt: skip
        self.server = server
        self.locate = locate
        self.move_stop_s = move_stop_s
        self.home_preset = home_preset
        self._timers: dict[str, threading.Timer] = {}
        self._lock = threading.Lock()

    def handles(self, camera_id: str) -> bool:
        return self.locate(camera_id) is not None

    def _send(self, camera_id: str, ptz_cmd: str) -> None:
        where = self.locate(camera_id)
        if where is None:
            raise ActionFailed(f"camera {camera_id} is not a GB/T 28181 channel")
        device_id, channel_id = where
        try:
            self.server.call(self.server.ptz(device_id, channel_id, ptz_cmd), timeout=8)
        except Exception as exc:  # noqa: BLE001 - said plainly to the caller
            raise ActionFailed(f"GB/T 28181 channel {channel_id}: {exc}") from None

    def _cancel_timer(self, camera_id: str) -> None:
        with self._lock:
            timer = self._timers.pop(camera_id, None)
        if timer is not None:
            timer.cancel()

    def _auto_stop(self, camera_id: str) -> None:
        try:
            self._send(camera_id, cmd.stop())
        except ActionFailed as exc:
            log.warning("PTZ auto-stop of %s failed: %s", camera_id, exc)

    # -- PtzControl -----------------------------------------------------------------

    def presets(self, camera_id: str) -> list[Preset]:
        if self.locate(camera_id) is None:
            raise ActionFailed(f"camera {camera_id} is not a GB/T 28181 channel")
        return []  # GB/T 28181-2016 has no preset list: presets are numbers 1-255

    def goto_preset(self, camera_id: str, preset: str) -> Preset:
        number = _number(preset)
        self._cancel_timer(camera_id)
        self._send(camera_id, cmd.preset(cmd.CALL_PRESET, number))
        return Preset(str(number), str(number))

    def set_preset(self, camera_id: str, name: str) -> Preset:
        number = _number(name)
        self._send(camera_id, cmd.preset(cmd.SET_PRESET, number))
        return Preset(str(number), str(number))

    def move(self, camera_id: str, pan: float, tilt: float, zoom: float) -> None:
        try:
            ptz_cmd = cmd.move(pan, tilt, zoom)
        except ValueError as exc:
            raise ActionFailed(str(exc)) from None
        self._cancel_timer(camera_id)
        self._send(camera_id, ptz_cmd)
        timer = threading.Timer(self.move_stop_s, self._auto_stop, args=(camera_id,))
        timer.daemon = True
        with self._lock:
            self._timers[camera_id] = timer
        timer.start()

    def stop(self, camera_id: str) -> None:
        self._cancel_timer(camera_id)
        self._send(camera_id, cmd.stop())

    def home(self, camera_id: str) -> None:
        self.goto_preset(camera_id, str(self.home_preset))

    def close(self) -> None:
        with self._lock:
            timers = list(self._timers.values())
            self._timers.clear()
        for timer in timers:
            timer.cancel()


def _number(preset: str) -> int:
    text = str(preset).strip()
    if not text.isdigit() or not 1 <= int(text) <= 255:
        raise ActionFailed(f"GB/T 28181 presets are numbers 1-255, not {preset!r}")
    return int(text)


class RoutedPtz:
    """One :class:`~linkage.ports.PtzControl` over several: GB/T 28181 channels to
    :class:`GbPtz`, every other camera to ``fallback`` (ONVIF)."""

    def __init__(self, gb: GbPtz, fallback: PtzControl | None) -> None:
        self.gb = gb
        self.fallback = fallback

    def _for(self, camera_id: str) -> PtzControl:
        if self.gb.handles(camera_id):
            return self.gb
        if self.fallback is None:
            raise ActionFailed(f"camera {camera_id} has no PTZ control")
        return self.fallback

    def presets(self, camera_id: str) -> list[Preset]:
        return self._for(camera_id).presets(camera_id)

    def goto_preset(self, camera_id: str, preset: str) -> Preset:
        return self._for(camera_id).goto_preset(camera_id, preset)

    def set_preset(self, camera_id: str, name: str) -> Preset:
        return self._for(camera_id).set_preset(camera_id, name)

    def move(self, camera_id: str, pan: float, tilt: float, zoom: float) -> None:
        self._for(camera_id).move(camera_id, pan, tilt, zoom)

    def stop(self, camera_id: str) -> None:
        self._for(camera_id).stop(camera_id)

    def home(self, camera_id: str) -> None:
        self._for(camera_id).home(camera_id)


def route_gb_ptz(linkage: Any, server: Any, locate: Locate) -> GbPtz:
    """Wire GB/T 28181 PTZ into a built :class:`~linkage.wiring.Linkage` (its engine and
    the API use ``ptz``): GB channels to the SIP server, the rest as before."""
    gb = GbPtz(server, locate)
    routed = RoutedPtz(gb, linkage.ptz)
    linkage.ptz = routed
    linkage.engine.ptz = routed
    linkage._closers = (*linkage._closers, gb.close)
    return gb
