"""Stream URL helpers: credential masking, credential injection, host rewriting.

Credentials live in the camera record (or the environment) and are added to a URL
only at the moment a stream is opened. Everything that leaves the process for a
human (logs, API responses, alerts) goes through :func:`mask_url` or
:func:`mask_secrets` first.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

SUPPORTED_SCHEMES = ("rtsp", "rtsps", "http", "https", "file", "rtmp")

_USERINFO_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


class UrlError(ValueError):
    """A stream URL that cannot be used."""


def mask_url(url: str) -> str:
    """Replace any ``user:password@`` in a URL by ``***@``.

    >>> mask_url("rtsp://admin:12345@10.0.0.5:554/Streaming/Channels/101")
    'rtsp://***@10.0.0.5:554/Streaming/Channels/101'
    """
    return _USERINFO_RE.sub(r"\g<scheme>***@", url)


def mask_secrets(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Mask URL credentials in free text (an FFmpeg error message, say) and any
    known secret strings (passwords) that may appear on their own."""
    text = mask_url(text)
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
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
    from urllib.parse import unquote

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
