"""PTZ through ONVIF (the PTZ service of onvif-zeep-async): presets, go to a preset,
save one, continuous move, stop, home.

Requests are built by zeep from the PTZ WSDL (signed with WS-Security when the camera
has a user), but answers are read by a tolerant parser of our own: cameras in the
field (and ipycam) answer PTZ calls with XML zeep rejects (undeclared prefixes), and
some declare one encoding and send another, so Chinese preset names reach us as
latin-1 mojibake (``æ°´åº``): :func:`fix_mojibake` re-decodes them.

:class:`OnvifPtz` is the blocking :class:`~linkage.ports.PtzControl` the engine and the
API use: one asyncio loop on its own thread, one connection per camera (the device
and profile looked up once, again after a failure), commands to one camera in order.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from lxml import etree

from linkage.ports import ActionFailed, Preset

log = logging.getLogger(__name__)

T = TypeVar("T")

SOAP_CONTENT_TYPE = "application/soap+xml; charset=utf-8"


@dataclass(frozen=True)
class OnvifEndpoint:
    host: str
    port: int
    username: str | None = None
    password: str | None = None  # never logged, never in an error
    profile: str | None = None  # token or name; default: the first with PTZ

    def label(self) -> str:
        return f"{self.host}:{self.port}"


# -- tolerant reading of answers (pure) ----------------------------------------------


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 (or GB18030) bytes that were decoded as latin-1.

    Only text made entirely of latin-1 code points with some above 0x7F is a
    candidate; it is changed when its bytes are valid UTF-8, or else valid GB18030
    holding CJK characters: real latin-1 names (``Café``) stay.
    """
    if not text or all(ord(c) < 0x80 for c in text) or any(ord(c) > 0xFF for c in text):
        return text
    raw = text.encode("latin-1")
    try:
        return raw.decode("utf-8")  # multi-byte UTF-8 by chance in latin-1 text is rare
    except UnicodeDecodeError:
        pass
    try:
        fixed = raw.decode("gb18030")
    except UnicodeDecodeError:
        return text
    if any("\u4e00" <= c <= "\u9fff" for c in fixed):
        return fixed
    return text


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1].rsplit(":", 1)[-1] if isinstance(tag, str) else ""


def parse_answer(content: bytes) -> etree._Element:
    """The SOAP body's first child; raises :class:`ActionFailed` on a SOAP fault or
    an answer that is not XML. Undeclared prefixes are tolerated."""
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True,
                             huge_tree=False)  # fmt: skip
    try:
        root = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as exc:
        raise ActionFailed(f"the camera's answer is not XML: {exc}") from exc
    if root is None:
        raise ActionFailed("the camera's answer is empty or not XML")
    body = next((e for e in root.iter() if _local(e.tag) == "Body"), None)
    if body is None or len(body) == 0:
        raise ActionFailed("the camera's answer has no SOAP body")
    first = body[0]
    if _local(first.tag) == "Fault":
        texts = (e.text or "" for e in first.iter() if _local(e.tag) in ("Text", "faultstring"))
        reason = " ".join(t.strip() for t in texts if t.strip())
        code = " ".join((e.text or "").strip() for e in first.iter() if _local(e.tag) == "Value")
        raise ActionFailed(f"the camera refused: {reason or 'SOAP fault'} ({code})".strip())
    return first


def parse_presets(answer: etree._Element) -> list[Preset]:
    """Presets of a GetPresetsResponse (token attribute, Name child)."""
    out: list[Preset] = []
    for element in answer.iter():
        if _local(element.tag) != "Preset":
            continue
        token = element.get("token") or ""
        name = next(((c.text or "") for c in element if _local(c.tag) == "Name"), "")
        out.append(Preset(fix_mojibake(token), unicodedata.normalize("NFC", fix_mojibake(name))))
    return out


def find_preset(presets: list[Preset], wanted: str) -> Preset | None:
    """By token first, then by name (NFC, surrounding blanks ignored)."""
    for p in presets:
        if p.token == wanted:
            return p
    key = unicodedata.normalize("NFC", wanted).strip()
    for p in presets:
        if p.name.strip() == key:
            return p
    return None


def _text_of(answer: etree._Element, name: str) -> str | None:
    return next(((e.text or "").strip() for e in answer.iter() if _local(e.tag) == name), None)


def _decode(content: bytes, content_type: str) -> bytes:
    """Bytes lxml will read right: a body sent in GB18030/GBK but declared (or not)
    otherwise is re-encoded as UTF-8 with its declaration dropped."""
    try:
        content.decode("utf-8")
        return content
    except UnicodeDecodeError:
        pass
    charset = re.search(r"charset=([\w-]+)", content_type or "")
    for codec in ([charset.group(1)] if charset else []) + ["gb18030"]:
        try:
            text = content.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
        return re.sub(r"^<\?xml[^>]*\?>", "", text.lstrip()).encode("utf-8")
    return content


# -- one camera (async) ---------------------------------------------------------------


class OnvifPtzCamera:
    """The PTZ service of one camera (async; used from :class:`OnvifPtz`'s loop)."""

    def __init__(self, endpoint: OnvifEndpoint, timeout_s: float = 5.0) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._camera: Any = None
        self._ptz: Any = None
        self._profile: str | None = None
        self._http: httpx.AsyncClient | None = None

    async def _connect(self) -> None:
        if self._ptz is not None:
            return
        from camera_registry.onvif_probe import _camera_class  # NAT-safe, user-less ok

        ep = self.endpoint
        camera = _camera_class()(ep.host, ep.port, ep.username or None,
                                 (ep.password or "") if ep.username else None,
                                 no_cache=True, nat_override=True)  # fmt: skip
        try:
            await camera.update_xaddrs()
            media = await camera.create_media_service()
            profiles = await media.GetProfiles() or []
            self._profile = self._pick(profiles)
            self._ptz = await camera.create_ptz_service()
        except ActionFailed:
            await _close(camera)
            raise
        except Exception as exc:
            await _close(camera)
            reason = _reason(exc)
            if "authori" in reason.lower():
                reason = "not authorised (check the ONVIF user and password)"
            raise ActionFailed(f"camera {ep.label()}: {reason}") from exc
        self._camera = camera
        self._http = httpx.AsyncClient(timeout=self.timeout_s)

    def _pick(self, profiles: list[Any]) -> str:
        wanted = self.endpoint.profile
        for p in profiles:
            if wanted and wanted in (p.token, getattr(p, "Name", None)):
                return str(p.token)
        if wanted:
            raise ActionFailed(f"camera {self.endpoint.label()}: no profile {wanted!r}")
        with_ptz = [p for p in profiles if getattr(p, "PTZConfiguration", None) is not None]
        if not with_ptz:
            raise ActionFailed(f"camera {self.endpoint.label()} has no PTZ (no profile with a "
                               "PTZ configuration)")  # fmt: skip
        return str(with_ptz[0].token)

    async def call(self, operation: str, **params: Any) -> etree._Element:
        """One PTZ operation (ProfileToken added); the answer's body element."""
        await self._connect()
        assert self._http is not None and self._profile is not None
        try:
            message = self._ptz.zeep_client.create_message(
                self._ptz.ws_client, operation, ProfileToken=self._profile, **params
            )
            data = etree.tostring(message, xml_declaration=True, encoding="utf-8")
            answer = await self._http.post(self._ptz.xaddr, content=data,
                                           headers={"Content-Type": SOAP_CONTENT_TYPE})  # fmt: skip
        except httpx.HTTPError as exc:
            await self.close()  # reconnect next time (the device may have restarted)
            raise ActionFailed(f"camera {self.endpoint.label()} does not answer "
                               f"{operation}: {_reason(exc)}") from exc  # fmt: skip
        content = _decode(answer.content, answer.headers.get("content-type", ""))
        if answer.status_code in (401, 403):
            raise ActionFailed(f"camera {self.endpoint.label()} refused {operation}: "
                               "not authorised (check the ONVIF user and password)")  # fmt: skip
        try:
            return parse_answer(content)
        except ActionFailed as exc:
            raise ActionFailed(f"camera {self.endpoint.label()} {operation}: {exc}") from None

    async def presets(self) -> list[Preset]:
        return parse_presets(await self.call("GetPresets"))

    async def goto_preset(self, wanted: str) -> Preset:
        presets = await self.presets()
        preset = find_preset(presets, wanted)
        if preset is None:
            known = ", ".join(p.name or p.token for p in presets) or "none"
            raise ActionFailed(f"no preset {wanted!r} on camera {self.endpoint.label()} "
                               f"(it has: {known})")  # fmt: skip
        await self.call("GotoPreset", PresetToken=preset.token)
        return preset

    async def set_preset(self, name: str) -> Preset:
        answer = await self.call("SetPreset", PresetName=name)
        token = _text_of(answer, "PresetToken")
        if not token:
            raise ActionFailed(f"camera {self.endpoint.label()} saved no preset token")
        return Preset(token, name)

    async def move(self, pan: float, tilt: float, zoom: float) -> None:
        clamp = lambda v: max(-1.0, min(1.0, float(v)))  # noqa: E731
        velocity = {"PanTilt": {"x": clamp(pan), "y": clamp(tilt)}, "Zoom": {"x": clamp(zoom)}}
        await self.call("ContinuousMove", Velocity=velocity)

    async def stop(self) -> None:
        await self.call("Stop", PanTilt=True, Zoom=True)

    async def home(self) -> None:
        await self.call("GotoHomePosition")

    async def position(self) -> tuple[float, float, float] | None:
        """(pan, tilt, zoom) from GetStatus, None if the camera does not say."""
        answer = await self.call("GetStatus")
        pan_tilt = next((e for e in answer.iter() if _local(e.tag) == "PanTilt"
                         and e.get("x") is not None), None)  # fmt: skip
        zoom = next((e for e in answer.iter() if _local(e.tag) == "Zoom"
                     and e.get("x") is not None), None)  # fmt: skip
        if pan_tilt is None:
            return None
        return (float(pan_tilt.get("x") or 0), float(pan_tilt.get("y") or 0),
                float(zoom.get("x") or 0) if zoom is not None else 0.0)  # fmt: skip

    async def close(self) -> None:
        camera, self._camera, self._ptz = self._camera, None, None
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()
        if camera is not None:
            await _close(camera)


async def _close(camera: Any) -> None:
    try:
        await camera.close()
    except Exception as exc:  # noqa: BLE001 - closing must not mask the outcome
        log.debug("closing ONVIF session: %s", exc)


def _reason(exc: BaseException) -> str:
    """Why, without any URL credentials (httpx errors may print the URL)."""
    text = str(exc) or type(exc).__name__
    return re.sub(r"//[^/@\s]+@", "//", text)


# -- the blocking facade ------------------------------------------------------------------


class OnvifPtz:
    """:class:`~linkage.ports.PtzControl` over ONVIF for cameras by id.

    ``endpoints(camera_id)`` says where a camera's ONVIF service is (None: the camera
    has no ONVIF source, so no PTZ through ONVIF). A continuous move stops by itself
    after ``move_stop_s`` unless another move or a stop comes first (a console that
    lost its connection never leaves a camera spinning).
    """

    def __init__(
        self,
        endpoints: Callable[[str], OnvifEndpoint | None],
        *,
        timeout_s: float = 5.0,
        move_stop_s: float = 1.0,
    ) -> None:
        self.endpoints = endpoints
        self.timeout_s = timeout_s
        self.move_stop_s = move_stop_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="onvif-ptz",
                                        daemon=True)  # fmt: skip
        self._start_lock = threading.Lock()  # the loop's thread starts on first use
        self._cameras: dict[str, OnvifPtzCamera] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._stops: dict[str, asyncio.TimerHandle] = {}

    def close(self) -> None:
        async def close_all() -> None:
            for cam in list(self._cameras.values()):
                await cam.close()

        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(self.timeout_s)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self.timeout_s)

    def _run(self, camera_id: str, work: Callable[[OnvifPtzCamera], Coroutine[Any, Any, T]]) -> T:
        async def serialised() -> T:
            lock = self._locks.setdefault(camera_id, asyncio.Lock())
            async with lock:
                camera = self._camera(camera_id)
                try:
                    return await asyncio.wait_for(work(camera), self.timeout_s * 2)
                except TimeoutError as exc:
                    await camera.close()
                    raise ActionFailed(f"camera {camera_id}: no answer within "
                                       f"{self.timeout_s * 2:.0f} s") from exc  # fmt: skip

        with self._start_lock:
            if not self._thread.is_alive():
                self._thread.start()
        future = asyncio.run_coroutine_threadsafe(serialised(), self._loop)
        return future.result(self.timeout_s * 3)

    def _camera(self, camera_id: str) -> OnvifPtzCamera:
        endpoint = self.endpoints(camera_id)
        if endpoint is None:
            raise ActionFailed(f"camera {camera_id} has no ONVIF PTZ (no ONVIF source)")
        cached = self._cameras.get(camera_id)
        if cached is None or cached.endpoint != endpoint:
            cached = self._cameras[camera_id] = OnvifPtzCamera(endpoint, self.timeout_s)
        return cached

    def _cancel_stop(self, camera_id: str) -> None:
        handle = self._stops.pop(camera_id, None)
        if handle is not None:
            handle.cancel()

    # -- PtzControl ------------------------------------------------------------------

    def presets(self, camera_id: str) -> list[Preset]:
        return self._run(camera_id, lambda c: c.presets())

    def goto_preset(self, camera_id: str, preset: str) -> Preset:
        return self._run(camera_id, lambda c: c.goto_preset(preset))

    def set_preset(self, camera_id: str, name: str) -> Preset:
        return self._run(camera_id, lambda c: c.set_preset(name))

    def move(self, camera_id: str, pan: float, tilt: float, zoom: float) -> None:
        async def work(c: OnvifPtzCamera) -> None:
            self._cancel_stop(camera_id)
            await c.move(pan, tilt, zoom)
            self._stops[camera_id] = self._loop.call_later(
                self.move_stop_s, lambda: asyncio.ensure_future(self._auto_stop(camera_id))
            )

        self._run(camera_id, work)

    async def _auto_stop(self, camera_id: str) -> None:
        self._stops.pop(camera_id, None)
        lock = self._locks.setdefault(camera_id, asyncio.Lock())
        async with lock:
            try:
                await self._camera(camera_id).stop()
            except ActionFailed as exc:
                log.warning("camera %s: automatic PTZ stop failed: %s", camera_id, exc)

    def stop(self, camera_id: str) -> None:
        async def work(c: OnvifPtzCamera) -> None:
            self._cancel_stop(camera_id)
            await c.stop()

        self._run(camera_id, work)

    def home(self, camera_id: str) -> None:
        self._run(camera_id, lambda c: c.home())

    def position(self, camera_id: str) -> tuple[float, float, float] | None:
        return self._run(camera_id, lambda c: c.position())
