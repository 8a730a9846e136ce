"""Stream URL helpers: credential masking, credential injection, host rewriting.

Credentials live in the camera record (or the environment) and are added to a URL
only at the moment a stream is opened. Everything that leaves the process for a
human (logs, API responses, alerts) goes through :func:`mask_url` or
:func:`mask_secrets` first.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

SUPPORTED_SCHEMES = ("rtsp", "rtsps", "http", "https", "file", "rtmp", "gb28181")

_USERINFO_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")

#: Parameter names that carry credentials in a URL's query *or path*: Dahua/Hikvision
#: ``...?channel=1&user=admin&password=x``, Xiongmai/XMeye ``/user=admin_password=x_channel=1``.
#: Bare ``name`` is left out on purpose: it is a channel or camera name far more often.
CREDENTIAL_KEYS = (
    "username", "user", "usr", "loginuse", "loginpas", "login", "passwd", "password",
    "pass", "pwd", "auth", "token", "key", "secret",
)  # fmt: skip
_KEYS = "|".join(CREDENTIAL_KEYS)
# The key must not be the tail of a longer word ("monkey="); '_' may precede it (XMeye
# separates parameters with '_', and api_key / access_token are credentials too). The
# value runs to the next parameter ("&x=", "_x=", "/x=", "?x=") or to a character that
# cannot be in it; in doubt more is masked, never less.
_PARAM_RE = re.compile(
    rf"(?i)(?<![A-Za-z0-9])(?P<key>{_KEYS})=(?P<value>.*?)"
    r"(?=[&;_/?][A-Za-z][A-Za-z0-9]*=|[&#\s'\"<>]|$)"
)
# The same keys in quoted mappings, as exceptions print them: {'password': 'x'}.
_QUOTED_RE = re.compile(
    rf"(?i)(?P<q>[\"'])(?P<key>[A-Za-z_]*(?:{_KEYS}))(?P=q)(?P<sep>\s*[:=]\s*)"
    r"(?P<vq>[\"'])(?:\\.|(?!(?P=vq)).)*(?P=vq)"
)


class UrlError(ValueError):
    """A stream URL that cannot be used."""


def mask_url(url: str) -> str:
    """Mask credentials anywhere in a URL (or in text holding URLs): ``user:password@``
    becomes ``***@`` and the value of every credential parameter (:data:`CREDENTIAL_KEYS`,
    in the query or the path) becomes ``***``.

    >>> mask_url("rtsp://admin:12345@10.0.0.5:554/Streaming/Channels/101")
    'rtsp://***@10.0.0.5:554/Streaming/Channels/101'
    >>> mask_url("rtsp://10.0.0.5/cam/realmonitor?channel=1&user=admin&password=x")
    'rtsp://10.0.0.5/cam/realmonitor?channel=1&user=***&password=***'
    """
    text = _USERINFO_RE.sub(r"\g<scheme>***@", url)
    text = _PARAM_RE.sub(r"\g<key>=***", text)
    return _QUOTED_RE.sub(r"\g<q>\g<key>\g<q>\g<sep>\g<vq>***\g<vq>", text)


def has_credentials(url: str) -> bool:
    """Whether a URL carries credentials (userinfo or a credential parameter)."""
    return mask_url(url) != url


def mask_secrets(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Mask URL credentials in free text (an FFmpeg error message, say) and any
    known secret strings (passwords) that may appear on their own."""
    text = mask_url(text)
    for secret in secrets:
        if secret and len(secret) >= 3:
            # FFmpeg prints URLs as given: the password may appear percent-encoded.
            for form in {secret, quote(secret, safe=""), quote(secret)}:
                text = text.replace(form, "***")
    return text


def validate_stream_url(url: str) -> str:
    """Check that a URL is usable as a stream source; return it unchanged.

    Raises :class:`UrlError` with the masked URL and the reason.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "" and "://" not in url and url.strip():
        return url  # a plain file path
    if scheme not in SUPPORTED_SCHEMES:
        raise UrlError(
            f"unsupported scheme {scheme!r} in {mask_url(url)!r}; "
            f"expected one of {', '.join(SUPPORTED_SCHEMES)}"
        )
    if scheme == "file":
        if not parts.path:
            raise UrlError(f"file URL {url!r} has no path")
        return url
    if not parts.hostname:
        raise UrlError(f"URL {mask_url(url)!r} has no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise UrlError(f"URL {mask_url(url)!r} has an invalid port") from exc
    if port is not None and not 0 < port < 65536:
        raise UrlError(f"URL {mask_url(url)!r} has port {port} out of range")
    return url


def strip_credentials(url: str) -> tuple[str, str | None, str | None]:
    """Split ``scheme://user:pass@host/...`` into the bare URL and the credentials."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, None
    netloc = parts.hostname or ""
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return bare, user, password


def with_credentials(url: str, username: str | None, password: str | None) -> str:
    """Return ``url`` with ``username:password@`` in its authority (percent-encoded).

    Existing credentials in the URL are replaced. With no username the URL is
    returned without credentials.
    """
    bare, _, _ = strip_credentials(url)
    if not username:
        return bare
    parts = urlsplit(bare)
    userinfo = quote(username, safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    return urlunsplit(
        (parts.scheme, f"{userinfo}@{parts.netloc}", parts.path, parts.query, parts.fragment)
    )


def rewrite_host(url: str, host: str, port: int | None = None) -> str:
    """Replace the host (and optionally the port) of ``url``.

    Used when a camera behind NAT reports its private address in GetStreamUri:
    the returned URI keeps its path and query but takes the host we reached the
    device at. The URL's own port is kept unless ``port`` is given.
    """
    parts = urlsplit(url)
    userinfo = ""
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@"
    new_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    new_port = port if port is not None else parts.port
    netloc = f"{userinfo}{new_host}" + (f":{new_port}" if new_port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def url_host(url: str) -> str | None:
    """The host part of a URL, or None."""
    return urlsplit(url).hostname
