"""Play audio on an IP speaker or intercom: a SIP call over UDP with auto-answer
headers, G.711 over RTP, then BYE (RFC 3261 user agent client, the part a speaker
needs: INVITE with retransmission, provisional answers, digest authentication,
ACK, BYE; the speaker hanging up first is honoured).

Blocking, one call per :meth:`SipSpeakerClient.play`; every wait is bounded, so a
speaker that never answers ends in :class:`~linkage.ports.ActionFailed` with the
reason. Credentials never appear in an error.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import struct
import threading
import time
from dataclasses import dataclass

import numpy as np

from linkage.g711 import ENCODERS, PAYLOAD_TYPES, RATE
from linkage.ports import ActionFailed

FRAME = 160  # samples per 20 ms packet at 8 kHz
CODEC_OF_PT = {v: k for k, v in PAYLOAD_TYPES.items()}
_URI = re.compile(r"^sip:(?:(?P<user>[^@;:]+)@)?(?P<host>[\w.\-]+)(?::(?P<port>\d+))?(?:;.*)?$")


@dataclass(frozen=True)
class CallReport:
    status: int
    codec: str
    packets: int
    seconds: float  # audio sent
    remote_rtp: tuple[str, int]
    hung_up_by_speaker: bool = False
    cancelled: bool = False  # cut short: the hub was stopping


@dataclass
class _Response:
    status: int
    reason: str
    headers: dict[str, list[str]]
    body: str

    def header(self, name: str) -> str:
        return (self.headers.get(name.lower()) or [""])[0]


def parse_uri(uri: str) -> tuple[str | None, str, int]:
    m = _URI.match(uri)
    if not m:
        raise ActionFailed(f"not a SIP URI: {uri!r} (sip:user@host[:port])")
    return m.group("user"), m.group("host"), int(m.group("port") or 5060)


def parse_message(data: bytes) -> _Response | None:
    """A SIP response (None for a request or garbage)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    m = re.match(r"^SIP/2\.0 (\d{3}) ?(.*)$", lines[0])
    if not m:
        return None
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return _Response(int(m.group(1)), m.group(2), headers, body)


def parse_sdp(body: str) -> tuple[str, int, list[int]]:
    """(address, audio port, payload types) of an SDP answer."""
    address, port, payloads = "", 0, []
    for line in body.splitlines():
        if line.startswith("c=IN IP4 "):
            address = line.split()[2]
        elif line.startswith("m=audio "):
            parts = line.split()
            port, payloads = int(parts[1]), [int(p) for p in parts[3:] if p.isdigit()]
    if not address or not port:
        raise ActionFailed("the speaker's answer has no usable SDP (c= and m=audio)")
    return address, port, payloads


def digest(method: str, uri: str, challenge: str, username: str, password: str,
           header: str) -> str:  # fmt: skip
    """An Authorization/Proxy-Authorization value answering ``challenge`` (RFC 2617)."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    ha1 = hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    value = (f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
             'algorithm=MD5')  # fmt: skip
    if "auth" in params.get("qop", "").split(","):
        cnonce, nc = secrets.token_hex(8), "00000001"
        response = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        value += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    if "opaque" in params:
        value += f', opaque="{params["opaque"]}"'
    return f'{header}: {value}, response="{response}"'


class SipSpeakerClient:
    def __init__(
        self,
        uri: str,
        *,
        local_ip: str = "127.0.0.1",
        codec: str = "pcma",
        timeout_s: float = 5.0,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.uri = uri
        self.user, self.host, self.port = parse_uri(uri)
        self.local_ip = local_ip
        self.codec = codec
        self.timeout_s = timeout_s
        self.username, self.password = username, password
        self.cancel = threading.Event()  # set: a call in progress stops sending and hangs up

    # -- the call -------------------------------------------------------------------

    def play(self, pcm: np.ndarray, repeat: int = 1, gap_s: float = 1.0) -> CallReport:
        """Call, play ``pcm`` (8 kHz int16) ``repeat`` times with ``gap_s`` of silence
        between, hang up. Raises :class:`ActionFailed` when the speaker does not answer
        or refuses."""
        sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sip.bind((self.local_ip, 0))
            rtp.bind((self.local_ip, 0))
            self._sip, self._rtp = sip, rtp
            self._lport, self._rtp_port = sip.getsockname()[1], rtp.getsockname()[1]
            self._call_id = f"{secrets.token_hex(8)}@{self.local_ip}"
            self._tag = secrets.token_hex(4)
            self._cseq = 0
            answer, to_header, target = self._invite()
            address, port, payloads = parse_sdp(answer.body)
            codec = self._choose(payloads)
            self._ack(to_header, target)
            sent, seconds, hung_up = self._stream(pcm, codec, (address, port), repeat, gap_s,
                                                  to_header, target)  # fmt: skip
            if not hung_up:
                self._bye(to_header, target)
            return CallReport(answer.status, codec, sent, seconds, (address, port), hung_up,
                              self.cancel.is_set())  # fmt: skip
        except OSError as exc:
            raise ActionFailed(f"speaker {self.host}:{self.port}: {exc}") from exc
        finally:
            sip.close()
            rtp.close()

    def _choose(self, payloads: list[int]) -> str:
        preferred = [PAYLOAD_TYPES[self.codec], *PAYLOAD_TYPES.values()]
        for pt in preferred:
            if pt in payloads:
                return CODEC_OF_PT[pt]
        raise ActionFailed(f"the speaker accepts none of G.711 (it offered payloads {payloads})")

    def _request_uri(self) -> str:
        return f"sip:{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    def _headers(self, method: str, branch: str, to: str, cseq: int) -> str:
        return (
            f"Via: SIP/2.0/UDP {self.local_ip}:{self._lport};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:shaobing@{self.local_ip}>;tag={self._tag}\r\n"
            f"To: {to}\r\n"
            f"Call-ID: {self._call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            "User-Agent: Shaobing\r\n"
        )

    def _sdp(self) -> str:
        order = [PAYLOAD_TYPES[self.codec]] + [p for p in PAYLOAD_TYPES.values()
                                               if p != PAYLOAD_TYPES[self.codec]]  # fmt: skip
        session = secrets.randbelow(2**31)
        lines = ["v=0", f"o=shaobing {session} {session} IN IP4 {self.local_ip}",
                 "s=Shaobing warning", f"c=IN IP4 {self.local_ip}", "t=0 0",
                 f"m=audio {self._rtp_port} RTP/AVP {' '.join(map(str, order))}",
                 *(f"a=rtpmap:{p} {CODEC_OF_PT[p].upper()}/8000" for p in order),
                 "a=ptime:20", "a=sendonly"]  # fmt: skip
        return "\r\n".join(lines) + "\r\n"

    def _send(self, text: str, to: tuple[str, int] | None = None) -> None:
        self._sip.sendto(text.encode("utf-8"), to or (self.host, self.port))

    def _invite(self) -> tuple[_Response, str, str]:
        to = f"<{self._request_uri()}>"
        auth = ""
        for _round in range(2):  # once more with credentials after a 401/407
            self._cseq += 1
            branch = f"z9hG4bK{secrets.token_hex(8)}"
            sdp = self._sdp()
            message = (
                f"INVITE {self._request_uri()} SIP/2.0\r\n"
                + self._headers("INVITE", branch, to, self._cseq)
                + f"Contact: <sip:shaobing@{self.local_ip}:{self._lport}>\r\n"
                # auto-answer: the common forms (RFC 5373 P-Auto-Answer is not used by
                # IP speakers; these two are)
                + f"Call-Info: <sip:{self.local_ip}>;answer-after=0\r\n"
                + "Alert-Info: <http://127.0.0.1/>;info=alert-autoanswer;delay=0\r\n"
                + auth
                + "Content-Type: application/sdp\r\n"
                + f"Content-Length: {len(sdp.encode())}\r\n\r\n{sdp}"
            )
            response = self._transact(message, "INVITE")
            if response.status in (401, 407) and not auth:
                self._ack_failure(response, branch)
                if not (self.username and self.password):
                    raise ActionFailed(f"speaker {self.host}:{self.port} wants authentication "
                                       "and no SIP user/password is configured")  # fmt: skip
                field = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
                header = "Authorization" if response.status == 401 else "Proxy-Authorization"
                auth = digest("INVITE", self._request_uri(), response.header(field),
                              self.username, self.password, header) + "\r\n"  # fmt: skip
                continue
            if response.status >= 300:
                self._ack_failure(response, branch)
                rejected = response.status in (401, 407) or (auth and response.status == 403)
                why = "authentication failed" if rejected else "refused"
                raise ActionFailed(f"speaker {self.host}:{self.port} {why}: "
                                   f"{response.status} {response.reason}")  # fmt: skip
            contact = re.search(r"<([^>]+)>", response.header("contact"))
            return (
                response,
                response.header("to"),
                contact.group(1) if contact else self._request_uri(),
            )
        raise ActionFailed(f"speaker {self.host}:{self.port}: authentication failed")

    def _transact(self, message: str, method: str) -> _Response:
        """Send with retransmission (500 ms doubling) until a final response or timeout;
        provisional responses stop the retransmission (INVITE) and extend the wait."""
        deadline = time.monotonic() + self.timeout_s
        interval, next_send, provisional = 0.5, time.monotonic(), False
        while True:
            now = time.monotonic()
            if now >= deadline:
                state = "rang but did not answer" if provisional else "did not answer"
                raise ActionFailed(f"speaker {self.host}:{self.port} {state} within "
                                   f"{self.timeout_s:g} s ({method})")  # fmt: skip
            if now >= next_send and not provisional:
                self._send(message)
                next_send, interval = now + interval, min(interval * 2, 4.0)
            self._sip.settimeout(max(0.01, min(deadline, next_send) - now if not provisional
                                     else deadline - now))  # fmt: skip
            try:
                data, _ = self._sip.recvfrom(65535)
            except TimeoutError:
                continue
            except ConnectionRefusedError:  # ICMP port unreachable: nothing listens
                raise ActionFailed(f"speaker {self.host}:{self.port} did not answer "
                                   "(port unreachable)") from None  # fmt: skip
            response = parse_message(data)
            if response is None or method not in response.header("cseq"):
                continue
            if response.status < 200:
                provisional = True
                continue
            return response

    def _ack_failure(self, response: _Response, branch: str) -> None:
        self._send(f"ACK {self._request_uri()} SIP/2.0\r\n"
                   + self._headers("ACK", branch, response.header("to"), self._cseq)
                   + "Content-Length: 0\r\n\r\n")  # fmt: skip

    def _ack(self, to: str, target: str) -> None:
        branch = f"z9hG4bK{secrets.token_hex(8)}"
        self._send(f"ACK {target} SIP/2.0\r\n" + self._headers("ACK", branch, to, self._cseq)
                   + "Content-Length: 0\r\n\r\n")  # fmt: skip

    def _bye(self, to: str, target: str) -> None:
        self._cseq += 1
        branch = f"z9hG4bK{secrets.token_hex(8)}"
        message = (f"BYE {target} SIP/2.0\r\n" + self._headers("BYE", branch, to, self._cseq)
                   + "Content-Length: 0\r\n\r\n")  # fmt: skip
        try:
            self._transact(message, "BYE")
        except ActionFailed:
            pass  # the warning was played; a lost BYE answer changes nothing for it

    # -- media ------------------------------------------------------------------------

    def _stream(self, pcm: np.ndarray, codec: str, to: tuple[str, int], repeat: int,
                gap_s: float, to_header: str, target: str) -> tuple[int, float, bool]:  # fmt: skip
        """Send the packets in real time (20 ms each); (packets, seconds, hung up)."""
        silence = np.zeros(int(gap_s * RATE), dtype=np.int16)
        parts = []
        for i in range(repeat):
            if i:
                parts.append(silence)
            parts.append(pcm)
        audio = np.concatenate(parts) if parts else np.zeros(0, np.int16)
        pad = (-len(audio)) % FRAME
        payload = ENCODERS[codec](np.concatenate([audio, np.zeros(pad, np.int16)]))
        pt = PAYLOAD_TYPES[codec]
        ssrc, seq, ts = secrets.randbits(32), secrets.randbits(16), secrets.randbits(32)
        start = time.monotonic()
        self._sip.setblocking(False)
        sent = 0
        for offset in range(0, len(payload), FRAME):
            marker = 0x80 if sent == 0 else 0
            header = struct.pack("!BBHII", 0x80, marker | pt, (seq + sent) & 0xFFFF,
                                 (ts + sent * FRAME) & 0xFFFFFFFF, ssrc)  # fmt: skip
            self._rtp.sendto(header + payload[offset : offset + FRAME], to)
            sent += 1
            if self._hung_up():
                return sent, sent * FRAME / RATE, True
            if self.cancel.is_set():
                break  # the hub is stopping: hang up now
            wait = start + sent * FRAME / RATE - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        self._sip.setblocking(True)
        return sent, sent * FRAME / RATE, False

    def _hung_up(self) -> bool:
        """A BYE from the speaker (answered 200 OK)."""
        try:
            data, source = self._sip.recvfrom(65535)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return False
        text = data.decode("utf-8", "replace")
        if not text.startswith("BYE "):
            return False
        head = text.split("\r\n\r\n", 1)[0].split("\r\n")
        keep = [
            h
            for h in head[1:]
            if h.split(":", 1)[0].lower() in ("via", "from", "to", "call-id", "cseq")
        ]
        self._sip.sendto(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep)
                          + "\r\nContent-Length: 0\r\n\r\n").encode(), source)  # fmt: skip
        return True
