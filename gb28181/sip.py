"""SIP messages (RFC 3261) as GB/T 28181 uses them: parse, build, digest auth.

Pure: bytes in, objects out, no sockets. Only what GB/T 28181 devices and platforms
exchange is covered (REGISTER, MESSAGE, INVITE/ACK/BYE, their responses); a message
this module cannot read raises :class:`SipParseError` with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from email.utils import formatdate

#: The most a message may weigh (a UDP datagram; a TCP message of a huge catalog page).
MAX_MESSAGE_BYTES = 256 * 1024

_COMPACT = {
    "v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
    "l": "content-length", "c": "content-type", "k": "supported", "s": "subject",
}  # fmt: skip


class SipParseError(ValueError):
    """A message that is not SIP, or that lacks what is needed to answer it."""


@dataclass
class SipMessage:
    """A request (``method`` set) or a response (``status`` set)."""

    method: str | None = None
    uri: str | None = None
    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def header(self, name: str) -> str | None:
        """The first value of a header (compact forms understood), or None."""
        key = name.lower()
        for k, v in self.headers:
            if k.lower() == key or _COMPACT.get(k.lower()) == key:
                return v
        return None

    def all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for k, v in self.headers if k.lower() == key or _COMPACT.get(k.lower()) == key]

    def set(self, name: str, value: str) -> None:
        """Replace (or add) a header."""
        key = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != key]
        self.headers.append((name, value))

    @property
    def call_id(self) -> str:
        value = self.header("Call-ID")
        if not value:
            raise SipParseError("no Call-ID header")
        return value

    @property
    def cseq(self) -> tuple[int, str]:
        value = self.header("CSeq") or ""
        m = re.match(r"\s*(\d+)\s+([A-Za-z]+)", value)
        if not m:
            raise SipParseError(f"bad CSeq header {value!r}")
        return int(m.group(1)), m.group(2).upper()

    def encode(self) -> bytes:
        first = (
            f"{self.method} {self.uri} SIP/2.0"
            if self.is_request
            else f"SIP/2.0 {self.status} {self.reason}"
        )
        lines = [first]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() not in ("content-length", "l")]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


def parse_message(data: bytes) -> SipMessage:
    """One SIP message from a datagram (or a TCP frame cut by :func:`split_stream`)."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError(f"message of {len(data)} bytes is over {MAX_MESSAGE_BYTES}")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("gb18030", errors="replace")  # some devices send GBK names
    lines = text.replace("\r\n", "\n").split("\n")
    first = lines[0].strip()
    msg = SipMessage()
    if first.startswith("SIP/2.0 "):
        parts = first.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise SipParseError(f"bad status line {first[:80]!r}")
        msg.status = int(parts[1])
        msg.reason = parts[2] if len(parts) > 2 else ""
    else:
        parts = first.split(" ")
        if len(parts) != 3 or parts[2] != "SIP/2.0" or not parts[0].isalpha():
            raise SipParseError(f"not a SIP request line: {first[:80]!r}")
        msg.method, msg.uri = parts[0].upper(), parts[1]
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and msg.headers:  # folded continuation
            k, v = msg.headers[-1]
            msg.headers[-1] = (k, v + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise SipParseError(f"bad header line {line[:80]!r}")
        msg.headers.append((name.strip(), value.strip()))
    length = msg.header("Content-Length")
    if length is not None:
        if not length.strip().isdigit():
            raise SipParseError(f"bad Content-Length {length!r}")
        n = int(length)
        if n > len(body):
            raise SipParseError(f"body shorter ({len(body)}) than Content-Length {n}")
        body = body[:n]
    msg.body = body
    for needed in ("Via", "From", "To", "Call-ID", "CSeq"):
        if msg.header(needed) is None:
            raise SipParseError(f"no {needed} header")
    msg.cseq  # noqa: B018 - validates
    return msg


def split_stream(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Cut a TCP byte stream into whole messages by Content-Length; (messages, rest).

    Raises :class:`SipParseError` when a header block grows past the size limit.
    """
    out: list[bytes] = []
    while True:
        buffer = buffer.lstrip(b"\r\n")  # keep-alive CRLFs between messages
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_MESSAGE_BYTES:
                raise SipParseError("header block over the size limit")
            return out, buffer
        head = buffer[:end].decode("latin-1")
        m = re.search(r"(?im)^(?:content-length|l)\s*:\s*(\d+)\s*$", head)
        length = int(m.group(1)) if m else 0
        if length > MAX_MESSAGE_BYTES:
            raise SipParseError(f"Content-Length {length} over the size limit")
        total = end + 4 + length
        if len(buffer) < total:
            return out, buffer
        out.append(buffer[:total])
        buffer = buffer[total:]


# -- addresses and tags -------------------------------------------------------------


def new_tag() -> str:
    return secrets.token_hex(5)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def new_call_id() -> str:
    return secrets.token_hex(12)


def user_of(value: str) -> str | None:
    """The user part of a From/To/Contact/request URI: ``<sip:3402...@3402000000>``."""
    m = re.search(r"sips?:([^@;>\s]+)@", value)
    return m.group(1) if m else None


def tag_of(value: str) -> str | None:
    m = re.search(r";\s*tag=([^;>\s]+)", value)
    return m.group(1) if m else None


def param_of(value: str, name: str) -> str | None:
    m = re.search(rf";\s*{name}=([^;>\s,]+)", value, re.IGNORECASE)
    return m.group(1) if m else None


def expires_of(msg: SipMessage, default: int) -> int:
    """The registration's lifetime: the Expires header, else the Contact's parameter."""
    value = msg.header("Expires")
    if value is None and msg.header("Contact"):
        value = param_of(msg.header("Contact") or "", "expires")
    if value is None:
        return default
    try:
        return max(0, int(value.strip()))
    except ValueError:
        raise SipParseError(f"bad Expires {value!r}") from None


# -- building -------------------------------------------------------------------


def response(req: SipMessage, status: int, reason: str, *, to_tag: str | None = None,
             headers: list[tuple[str, str]] | None = None, body: bytes = b"",
             content_type: str | None = None) -> SipMessage:  # fmt: skip
    """A response to ``req``: its Via, From, Call-ID and CSeq; To with our tag."""
    out = SipMessage(status=status, reason=reason)
    out.headers += [("Via", v) for v in req.all("Via")]
    out.headers.append(("From", req.header("From") or ""))
    to = req.header("To") or ""
    if to_tag and tag_of(to) is None and status > 100:
        to = f"{to};tag={to_tag}"
    out.headers.append(("To", to))
    out.headers.append(("Call-ID", req.call_id))
    out.headers.append(("CSeq", req.header("CSeq") or ""))
    out.headers += headers or []
    if body:
        out.headers.append(("Content-Type", content_type or "Application/MANSCDP+xml"))
    out.headers.append(("User-Agent", "Shaobing"))
    out.body = body
    return out


def request(method: str, uri: str, *, via_host: str, via_port: int, transport: str,
            from_uri: str, from_tag: str, to_uri: str, to_tag: str | None = None,
            call_id: str, cseq: int, contact: str | None = None,
            headers: list[tuple[str, str]] | None = None, body: bytes = b"",
            content_type: str = "Application/MANSCDP+xml") -> SipMessage:  # fmt: skip
    """A new request with a fresh branch."""
    msg = SipMessage(method=method, uri=uri)
    msg.headers = [
        ("Via", f"SIP/2.0/{transport.upper()} {via_host}:{via_port};rport;branch={new_branch()}"),
        ("From", f"<{from_uri}>;tag={from_tag}"),
        ("To", f"<{to_uri}>" + (f";tag={to_tag}" if to_tag else "")),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Max-Forwards", "70"),
    ]
    if contact:
        msg.headers.append(("Contact", f"<{contact}>"))
    msg.headers += headers or []
    if body:
        msg.headers.append(("Content-Type", content_type))
    msg.headers.append(("User-Agent", "Shaobing"))
    msg.body = body
    return msg


def sip_date(now: float | None = None) -> str:
    """GB/T 28181's Date for clock sync: local ISO time with milliseconds."""
    t = time.time() if now is None else now
    ms = int((t % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) + f".{ms:03d}"


def http_date(now: float | None = None) -> str:
    return formatdate(now, usegmt=True)


# -- digest (RFC 2617, MD5) ---------------------------------------------------------


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 - SIP digest is MD5


def parse_auth(value: str) -> dict[str, str]:
    """``Digest username="a", realm="b", ...`` → its parameters (lower-case keys)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipParseError(f"unsupported auth scheme {scheme!r}")
    out: dict[str, str] = {}
    for m in re.finditer(r'([A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]+))', rest):
        out[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
    return out


def digest_response(*, username: str, realm: str, password: str, method: str, uri: str,
                    nonce: str, qop: str | None = None, nc: str = "00000001",
                    cnonce: str = "") -> str:  # fmt: skip
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    if qop:
        return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{ha2}")


def authorization(challenge: str, *, username: str, password: str, method: str,
                  uri: str) -> str:  # fmt: skip
    """The Authorization header answering a WWW-Authenticate challenge (client side)."""
    ch = parse_auth(challenge)
    realm, nonce = ch.get("realm", ""), ch.get("nonce", "")
    qop = None
    if "qop" in ch:
        offered = [q.strip() for q in ch["qop"].split(",")]
        qop = "auth" if "auth" in offered else None
    cnonce = secrets.token_hex(8) if qop else ""
    resp = digest_response(username=username, realm=realm, password=password, method=method,
                           uri=uri, nonce=nonce, qop=qop, cnonce=cnonce)  # fmt: skip
    parts = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
             f'response="{resp}"', "algorithm=MD5"]  # fmt: skip
    if qop:
        parts += [f"qop={qop}", "nc=00000001", f'cnonce="{cnonce}"']
    if "opaque" in ch:
        parts.append(f'opaque="{ch["opaque"]}"')
    return "Digest " + ", ".join(parts)


class NonceSource:
    """Stateless nonces: a timestamp signed with a process key, valid ``ttl_s``.

    No table of outstanding nonces to grow when a thousand devices register at once.
    """

    def __init__(self, ttl_s: float = 300.0, key: bytes | None = None) -> None:
        self.ttl_s = ttl_s
        self.key = key or secrets.token_bytes(16)

    def make(self, now: float) -> str:
        stamp = f"{int(now):x}"
        sig = hmac.new(self.key, stamp.encode(), hashlib.sha256).hexdigest()[:16]
        return f"{stamp}{sig}"

    def valid(self, nonce: str, now: float) -> bool:
        stamp, sig = nonce[:-16], nonce[-16:]
        try:
            made = int(stamp, 16)
        except ValueError:
            return False
        good = hmac.new(self.key, stamp.encode(), hashlib.sha256).hexdigest()[:16]
        return hmac.compare_digest(sig, good) and 0 <= now - made <= self.ttl_s


def challenge(realm: str, nonce: str) -> str:
    return f'Digest realm="{realm}", nonce="{nonce}", algorithm=MD5'


def check_authorization(value: str, *, method: str, password: str, realm: str,
                        nonces: NonceSource, now: float) -> str | None:  # fmt: skip
    """Why an Authorization header is refused, or None when it proves the password.

    "stale" means a nonce we no longer accept (the device is challenged again, not refused).
    """
    try:
        auth = parse_auth(value)
    except SipParseError as exc:
        return str(exc)
    for key in ("username", "nonce", "uri", "response"):
        if key not in auth:
            return f"Authorization lacks {key}"
    if auth.get("realm", realm) != realm:
        return "stale"
    if not nonces.valid(auth["nonce"], now):
        return "stale"
    expected = digest_response(
        username=auth["username"], realm=auth.get("realm", realm), password=password,
        method=method, uri=auth["uri"], nonce=auth["nonce"], qop=auth.get("qop"),
        nc=auth.get("nc", ""), cnonce=auth.get("cnonce", ""),
    )  # fmt: skip
    if not hmac.compare_digest(expected, auth["response"].lower()):
        return "wrong password"
    return None
