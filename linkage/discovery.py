"""WS-Discovery of ONVIF devices on one named network interface.

A Probe (``dn:NetworkVideoTransmitter``) is multicast to 239.255.255.250:3702 only
through the interface named (``IP_MULTICAST_IF`` by interface index, the socket
bound to that interface with ``SO_BINDTODEVICE``, TTL 1), never through another; the
ProbeMatches that answer our MessageID are listed with their addresses, scopes,
model and name. Parsing is pure (:func:`parse_probe_match`) and tolerant (devices
differ: with or without the ``ProbeMatches`` wrapper, scopes URL-encoded or not).
"""

from __future__ import annotations

import fcntl
import logging
import socket
import struct
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

from lxml import etree

log = logging.getLogger(__name__)

MULTICAST = ("239.255.255.250", 3702)
SIOCGIFADDR = 0x8915
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


class DiscoveryError(RuntimeError):
    """The interface cannot be used (unknown, no IPv4 address, not permitted)."""


@dataclass(frozen=True)
class DiscoveredDevice:
    endpoint: str  # urn:uuid:... (stable per device)
    address: str  # the IP the answer came from
    xaddrs: tuple[str, ...]  # ONVIF device service URLs
    scopes: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    model: str | None = None  # onvif://www.onvif.org/hardware/<model>
    name: str | None = None  # onvif://www.onvif.org/name/<name>
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def onvif_host_port(self) -> tuple[str, int] | None:
        """Host and port of the first device service URL (for the ONVIF probe)."""
        for url in self.xaddrs:
            parsed = urlparse(url)
            if parsed.hostname:
                return parsed.hostname, parsed.port or 80
        return None

    def to_dict(self) -> dict[str, object]:
        return {"endpoint": self.endpoint, "address": self.address, "xaddrs": list(self.xaddrs),
                "scopes": list(self.scopes), "types": list(self.types), "model": self.model,
                "name": self.name}  # fmt: skip


def probe_message(message_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
        'xmlns:dn="http://www.onvif.org/ver10/network/wsdl">'
        "<s:Header>"
        '<a:Action s:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe'
        "</a:Action>"
        f"<a:MessageID>{message_id}</a:MessageID>"
        "<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
        "</a:Address></a:ReplyTo>"
        '<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>'
        "</s:Header>"
        "<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body>"
        "</s:Envelope>"
    ).encode()


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _texts(root: etree._Element, name: str) -> list[str]:
    return [(e.text or "").strip() for e in root.iter() if _local(e.tag) == name]


def parse_probe_match(data: bytes, source: str, relates_to: str | None = None
                      ) -> list[DiscoveredDevice]:  # fmt: skip
    """The devices in one ProbeMatches datagram (empty: not an answer to ``relates_to``,
    or not a ProbeMatch at all)."""
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return []
    if root is None:
        return []
    if relates_to is not None and relates_to not in _texts(root, "RelatesTo"):
        return []
    out = []
    for match in (e for e in root.iter() if _local(e.tag) == "ProbeMatch"):
        address = next(iter(_texts(match, "Address")), "")
        xaddrs = tuple(" ".join(_texts(match, "XAddrs")).split())
        scopes = tuple(" ".join(_texts(match, "Scopes")).split())
        types = tuple(" ".join(_texts(match, "Types")).split())
        out.append(
            DiscoveredDevice(
                address or f"unknown:{source}",
                source,
                xaddrs,
                scopes,
                types,
                _scope(scopes, "hardware"),
                _scope(scopes, "name"),
            )
        )
    return out


def _scope(scopes: tuple[str, ...], kind: str) -> str | None:
    prefix = f"onvif://www.onvif.org/{kind}/"
    values = [unquote(s[len(prefix) :]) for s in scopes if s.startswith(prefix)]
    return " ".join(values) if values else None


def interface_ipv4(interface: str) -> str:
    """The IPv4 address of ``interface``; :class:`DiscoveryError` if it has none."""
    try:
        socket.if_nametoindex(interface)
    except OSError:
        names = ", ".join(n for _, n in socket.if_nameindex())
        raise DiscoveryError(f"no network interface {interface!r} (there are: {names})") from None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), SIOCGIFADDR,
                                 struct.pack("256s", interface.encode()[:15]))  # fmt: skip
        except OSError:
            raise DiscoveryError(f"interface {interface!r} has no IPv4 address") from None
    return socket.inet_ntoa(packed[20:24])


def discover(interface: str, timeout_s: float = 3.0, probes: int = 2) -> list[DiscoveredDevice]:
    """Probe through ``interface`` only; the devices that answered (one per endpoint)."""
    if not interface:
        raise DiscoveryError("name the interface to probe on (--interface)")
    local = interface_ipv4(interface)
    index = socket.if_nametoindex(interface)
    message_id = f"urn:uuid:{uuid.uuid4()}"
    found: dict[str, DiscoveredDevice] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP) as sock:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode())
        except PermissionError:
            log.info("SO_BINDTODEVICE not permitted; relying on IP_MULTICAST_IF (%s)", interface)
        # ip_mreqn: no group, no address, the interface index: multicast leaves by it only.
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                        struct.pack("4s4si", b"\0" * 4, b"\0" * 4, index))  # fmt: skip
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        sock.bind((local, 0))
        message = probe_message(message_id)
        deadline = time.monotonic() + timeout_s
        for i in range(probes):  # UDP: a second Probe in case the first was lost
            sock.sendto(message, MULTICAST)
            end = deadline if i == probes - 1 else time.monotonic() + timeout_s / (2 * probes)
            while (left := end - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    data, (source, _port) = sock.recvfrom(65535)
                except TimeoutError:
                    break
                for device in parse_probe_match(data, source, relates_to=message_id):
                    found.setdefault(device.endpoint, device)
    return sorted(found.values(), key=lambda d: (d.address, d.endpoint))
