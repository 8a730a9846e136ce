"""SDP offers and answers for GB/T 28181 live play (§9.2, Annex F). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass


def ssrc_for(domain: str, seq: int, *, live: bool = True) -> str:
    """The 10-digit y= SSRC: 0 live / 1 playback, digits 4-8 of the domain, a sequence."""
    return f"{0 if live else 1}{domain[3:8]}{seq % 10000:04d}"


def offer(*, session_id: str, channel_id: str, host: str, port: int, ssrc: str,
          transport: str = "udp", playback: tuple[int, int] | None = None) -> bytes:  # fmt: skip
    """INVITE body: receive PS/90000 on ``host:port`` (UDP, or TCP passive: we listen; TCP
    active: we connect to the device's answered port).
    ``playback``: (start, end) in epoch seconds of the device's recording (§9.8:
    ``s=Playback``, ``u=<channel>:0``, ``t=start end``); None: live (``s=Play``)."""
    proto = "TCP/RTP/AVP" if transport.startswith("tcp") else "RTP/AVP"
    lines = [
        "v=0",
        f"o={channel_id} 0 0 IN IP4 {host}",
        "s=Playback" if playback else "s=Play",
        *([f"u={channel_id}:0"] if playback else []),
        f"c=IN IP4 {host}",
        f"t={playback[0]} {playback[1]}" if playback else "t=0 0",
        f"m=video {port} {proto} 96 97 98",
        "a=recvonly",
        "a=rtpmap:96 PS/90000",
        "a=rtpmap:97 MPEG4/90000",
        "a=rtpmap:98 H264/90000",
    ]
    if transport == "tcp_passive":
        lines += ["a=setup:passive", "a=connection:new"]
    elif transport == "tcp_active":  # the hub connects to the port the device answers with
        lines += ["a=setup:active", "a=connection:new"]
    lines.append(f"y={ssrc}")
    _ = session_id
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


@dataclass
class Answer:
    host: str | None
    port: int | None
    transport: str
    ssrc: int | None  # as an int (the y= line is decimal)
    payload_types: list[int]


def parse_answer(body: bytes) -> Answer:
    text = body.decode("utf-8", errors="replace")
    host = port = ssrc = None
    transport = "udp"
    pts: list[int] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("c="):
            host = line.split()[-1]
        elif line.startswith("m=video"):
            parts = line.split()
            if len(parts) >= 3 and parts[1].isdigit():
                port = int(parts[1])
                transport = "tcp" if "TCP" in parts[2].upper() else "udp"
                pts = [int(p) for p in parts[3:] if p.isdigit()]
        elif line.startswith("y="):
            m = re.match(r"y=(\d+)", line)
            ssrc = int(m.group(1)) if m else None
    return Answer(host, port, transport, ssrc, pts)
