"""Probe an ONVIF camera: identity, media profiles, stream and snapshot URIs.

Built on onvif-zeep-async (``onvif.ONVIFCamera``, WSDL files bundled with the
package). One probe = GetServices/GetCapabilities (service addresses),
GetDeviceInformation, GetProfiles, then GetStreamUri for each profile and
GetSnapshotUri for the main one. The whole probe is bounded by ``timeout``.

URIs in the result never carry credentials: the caller adds them with
:func:`camera_registry.urls.with_credentials` when opening a stream. A camera
behind NAT reports its private address; every URI whose host differs from the
host we reached the device at is rewritten to that host (``rewritten=True``), and
the service addresses (XAddrs) are forced to the probed host:port too.

Errors are :class:`OnvifProbeError`, whose message names ``host:port`` and the
reason (unreachable, authentication failed, timeout, bad response) and never
contains the password.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import zeep.exceptions

from camera_registry.urls import mask_secrets, rewrite_host, strip_credentials, url_host

if TYPE_CHECKING:
    from onvif import ONVIFCamera

log = logging.getLogger(__name__)

_AUTH_MARKERS = (
    "notauthorized",
    "not authorized",
    "unauthorized",
    "authority failure",
    "authentication",
    "sender not authorized",
)


@dataclass
class OnvifProfile:
    """One media profile of the device."""

    token: str
    name: str
    encoding: str | None
    width: int | None
    height: int | None
    fps: float | None
    stream_uri: str | None

    @property
    def pixels(self) -> int:
        """width x height, 0 when unknown (for ranking profiles)."""
        return (self.width or 0) * (self.height or 0)


@dataclass
class ProbeResult:
    """What the device told us, with URIs ready to use (no credentials inside)."""

    host: str
    port: int
    manufacturer: str
    model: str
    firmware: str
    serial: str
    hardware_id: str
    profiles: list[OnvifProfile] = field(default_factory=list)
    main_uri: str | None = None
    sub_uri: str | None = None
    snapshot_uri: str | None = None
    rewritten: bool = False
    main_profile: str | None = None
    sub_profile: str | None = None


class OnvifProbeError(Exception):
    """The probe failed; the message names host:port and the reason, never the password."""

    def __init__(self, host: str, port: int, reason: str, kind: str = "error") -> None:
        self.host = host
        self.port = port
        self.reason = reason
        #: One of "unreachable", "auth", "timeout", "bad_response", "no_profile", "error".
        self.kind = kind
        super().__init__(f"ONVIF probe of {host}:{port} failed: {reason}")


async def probe_onvif(
    host: str,
    port: int,
    username: str | None,
    password: str | None,
    *,
    profile: str | None = None,
    timeout: float = 10.0,
    adjust_time: bool = False,
) -> ProbeResult:
    """Probe the ONVIF device at ``host:port``.

    ``profile`` selects the main profile by token or name (case-insensitive);
    otherwise the highest-resolution profile with a stream URI is the main one and
    the lowest-resolution other one the sub. ``adjust_time`` compensates a device
    clock that is off (WS-Security timestamps) at the cost of one more request.
    Raises :class:`OnvifProbeError` on any failure, after at most ``timeout`` s.
    """
    secrets = [password] if password else []
    try:
        return await asyncio.wait_for(
            _probe(host, port, username, password, profile, adjust_time), timeout
        )
    except OnvifProbeError as exc:
        raise OnvifProbeError(host, port, mask_secrets(exc.reason, secrets), exc.kind) from None
    except TimeoutError:
        raise OnvifProbeError(
            host, port, f"timeout: no complete answer within {timeout:g} s", "timeout"
        ) from None
    except Exception as exc:  # noqa: BLE001 - classified, then re-raised as OnvifProbeError
        kind, reason = _classify(exc)
        raise OnvifProbeError(host, port, mask_secrets(reason, secrets), kind) from None


def probe_onvif_sync(
    host: str,
    port: int,
    username: str | None,
    password: str | None,
    *,
    profile: str | None = None,
    timeout: float = 10.0,
    adjust_time: bool = False,
) -> ProbeResult:
    """Blocking :func:`probe_onvif` (runs its own event loop; not from async code)."""
    return asyncio.run(
        probe_onvif(
            host,
            port,
            username,
            password,
            profile=profile,
            timeout=timeout,
            adjust_time=adjust_time,
        )
    )


# -- the probe itself --------------------------------------------------------------


async def _probe(
    host: str,
    port: int,
    username: str | None,
    password: str | None,
    profile: str | None,
    adjust_time: bool,
) -> ProbeResult:
    camera = _open_camera(host, port, username, password, adjust_time)
    try:
        await camera.update_xaddrs()
        devicemgmt = await camera.create_devicemgmt_service()
        info = await devicemgmt.GetDeviceInformation()
        media = await camera.create_media_service()
        raw_profiles = await media.GetProfiles() or []
        profiles = [await _read_profile(media, raw) for raw in raw_profiles]
        if not profiles:
            raise OnvifProbeError(host, port, "the device reports no media profile", "no_profile")
        main, sub = _pick_profiles(host, port, profiles, profile)
        snapshot = await _snapshot_uri(media, main.token)
    finally:
        await _close(camera)
    return _build_result(host, port, info, profiles, main, sub, snapshot)


def _open_camera(
    host: str, port: int, username: str | None, password: str | None, adjust_time: bool
) -> ONVIFCamera:
    """An ONVIFCamera that forces service addresses to host:port (NAT-safe)."""
    return _camera_class()(
        host,
        port,
        username or None,
        (password or "") if username else None,
        no_cache=True,
        adjust_time=adjust_time,
        nat_override=True,
    )


@functools.cache
def _camera_class() -> type[ONVIFCamera]:
    """ONVIFCamera that sends no WS-Security header when there is no username.

    (onvif-zeep-async always signs requests and fails with a TypeError on a None
    username.) Imported lazily: importing ``onvif`` calls logging.basicConfig().
    """
    from onvif import ONVIFCamera

    class _Camera(ONVIFCamera):
        async def create_onvif_service(
            self,
            name: str,
            port_type: str | None = None,
            read_timeout: int | None = None,
            write_timeout: int | None = None,
        ) -> Any:
            service = await super().create_onvif_service(
                name, port_type, read_timeout, write_timeout
            )
            if not self.user:
                service.ws_client = service.ws_client_authless
            return service

    return _Camera


async def _close(camera: ONVIFCamera) -> None:
    try:
        await camera.close()
    except Exception as exc:  # noqa: BLE001 - closing must not mask the real outcome
        log.debug("closing ONVIF session: %s", exc)


async def _read_profile(media: Any, raw: Any) -> OnvifProfile:
    """An :class:`OnvifProfile` from a GetProfiles entry, with its stream URI."""
    token = str(_get(raw, "token") or "")
    encoder = _get(raw, "VideoEncoderConfiguration")
    resolution = _get(encoder, "Resolution")
    rate = _get(encoder, "RateControl")
    fps = _get(rate, "FrameRateLimit")
    return OnvifProfile(
        token=token,
        name=str(_get(raw, "Name") or token),
        encoding=_str_or_none(_get(encoder, "Encoding")),
        width=_int_or_none(_get(resolution, "Width")),
        height=_int_or_none(_get(resolution, "Height")),
        fps=float(fps) if fps else None,
        stream_uri=await _stream_uri(media, token) if token else None,
    )


async def _stream_uri(media: Any, token: str) -> str | None:
    """RTSP (RTP over RTSP, unicast) URI of a profile; None if the device refuses."""
    request = {
        "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
        "ProfileToken": token,
    }
    try:
        answer = await media.GetStreamUri(request)
    except zeep.exceptions.Fault as exc:
        log.debug("GetStreamUri(%s) refused: %s", token, exc)
        return None
    return _str_or_none(_get(answer, "Uri"))


async def _snapshot_uri(media: Any, token: str) -> str | None:
    """Snapshot URI of a profile; None if unsupported."""
    try:
        answer = await media.GetSnapshotUri({"ProfileToken": token})
    except zeep.exceptions.Fault as exc:
        log.debug("GetSnapshotUri(%s) refused: %s", token, exc)
        return None
    return _str_or_none(_get(answer, "Uri"))


def _pick_profiles(
    host: str, port: int, profiles: list[OnvifProfile], wanted: str | None
) -> tuple[OnvifProfile, OnvifProfile | None]:
    """(main, sub): the named or largest profile, and the smallest other one."""
    streamable = [p for p in profiles if p.stream_uri] or profiles
    if wanted:
        key = wanted.casefold()
        matches = [p for p in profiles if key in (p.token.casefold(), p.name.casefold())]
        if not matches:
            names = ", ".join(f"{p.name} ({p.token})" for p in profiles)
            raise OnvifProbeError(
                host, port, f"no profile named {wanted!r}; the device has {names}", "no_profile"
            )
        main = matches[0]
    else:
        main = max(streamable, key=lambda p: p.pixels)
    others = [p for p in streamable if p is not main]
    sub = min(others, key=lambda p: p.pixels) if others else None
    return main, sub


def _build_result(
    host: str,
    port: int,
    info: Any,
    profiles: list[OnvifProfile],
    main: OnvifProfile,
    sub: OnvifProfile | None,
    snapshot: str | None,
) -> ProbeResult:
    """Assemble the result, cleaning every URI (credentials out, NAT host in)."""
    rewritten = False

    def clean(uri: str | None) -> str | None:
        nonlocal rewritten
        fixed, changed = _clean_uri(uri, host)
        rewritten = rewritten or changed
        return fixed

    for p in profiles:
        p.stream_uri = clean(p.stream_uri)
    return ProbeResult(
        host=host,
        port=port,
        manufacturer=str(_get(info, "Manufacturer") or ""),
        model=str(_get(info, "Model") or ""),
        firmware=str(_get(info, "FirmwareVersion") or ""),
        serial=str(_get(info, "SerialNumber") or ""),
        hardware_id=str(_get(info, "HardwareId") or ""),
        profiles=profiles,
        main_uri=main.stream_uri,
        sub_uri=sub.stream_uri if sub else None,
        snapshot_uri=clean(snapshot),
        rewritten=rewritten,
        main_profile=main.token,
        sub_profile=sub.token if sub else None,
    )


def _clean_uri(uri: str | None, host: str) -> tuple[str | None, bool]:
    """Strip credentials; point the URI at ``host`` if it names another. (uri, rewritten)."""
    if not uri:
        return None, False
    bare, _user, _password = strip_credentials(uri.strip())
    reported = (url_host(bare) or "").casefold()
    wanted = host.strip("[]").casefold()
    if reported and reported != wanted:
        return rewrite_host(bare, host.strip("[]")), True
    return bare, False


# -- error classification ------------------------------------------------------------


def _classify(exc: BaseException) -> tuple[str, str]:
    """(kind, reason) for an exception raised while talking to the device."""
    for err in _chain(exc):
        if isinstance(err, (asyncio.TimeoutError, TimeoutError)):
            return "timeout", "timeout waiting for the device"
        if _is_auth_error(err):
            return "auth", f"authentication failed (wrong username or password?): {err}"
        if isinstance(err, (aiohttp.ClientConnectorError, ConnectionError)):
            return "unreachable", f"unreachable: {err}"
        if isinstance(err, aiohttp.ClientError | OSError):
            return "unreachable", f"connection failed: {type(err).__name__}: {err}"
    if isinstance(exc, zeep.exceptions.TransportError):
        return "bad_response", (
            f"HTTP {exc.status_code} from the device service (not an ONVIF device, or wrong port?)"
        )
    if isinstance(exc, zeep.exceptions.Fault):
        return "bad_response", f"device returned a SOAP fault: {exc}"
    return "bad_response", f"bad response from the device: {type(exc).__name__}: {exc}"


def _is_auth_error(err: BaseException) -> bool:
    if type(err).__name__ == "ONVIFAuthError":
        return True
    if isinstance(err, zeep.exceptions.TransportError):
        return err.status_code in (401, 403)
    if isinstance(err, zeep.exceptions.Fault):
        subcodes = " ".join(str(c) for c in (getattr(err, "subcodes", None) or []))
        text = f"{err.message} {err.code} {subcodes}".casefold()
        return any(marker in text for marker in _AUTH_MARKERS)
    return False


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes/contexts, outermost first (cycle-safe)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


# -- small helpers -----------------------------------------------------------------


def _get(obj: Any, name: str) -> Any:
    """Attribute or key ``name`` of a zeep object (or dict), None if absent."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    try:
        return getattr(obj, name, None)
    except Exception:  # noqa: BLE001 - zeep objects may raise on unknown names
        return None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _str_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
