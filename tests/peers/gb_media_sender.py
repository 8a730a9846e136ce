"""A GB/T 28181 device's media: a real clip as MPEG-PS over RTP (PT 96, 90 kHz).

    python -m tests.peers.gb_media_sender CLIP HOST PORT SSRC [--tcp] [--seconds N]
        [--reorder] [--wrong-ssrc-every N] [--garbage] [--listen-port N]

The H.264 of the clip is taken without re-encoding (mp4 → Annex B), muxed into PS
packs as devices write them (gb28181/ps.py), cut into RTP packets and sent at the
clip's pace (looping) to HOST:PORT over UDP, or over TCP with RFC 4571 framing.
SIPp device scenarios start it from their INVITE answer (``exec``).
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sys
import time
from collections.abc import Iterator
from fractions import Fraction

import av

from gb28181.ps import mux_access_unit
from gb28181.rtp import frame_4571, packetize


def access_units(clip: str) -> Iterator[tuple[bytes, int, bool]]:
    """(Annex B bytes, pts at 90 kHz, keyframe) of the clip's video, forever (looped)."""
    offset = 0
    while True:
        with av.open(clip) as container:
            stream = container.streams.video[0]
            bsf = av.bitstream.BitStreamFilterContext("h264_mp4toannexb", stream)
            tb = stream.time_base or Fraction(1, 90000)
            last = 0
            for packet in container.demux(stream):
                for out in bsf.filter(packet):
                    if out.pts is None:
                        continue
                    pts = offset + int(out.pts * tb * 90000)
                    last = max(last, pts)
                    yield bytes(out), pts, bool(out.is_keyframe)
            offset = last + 3600


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("clip")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("ssrc", type=int)
    p.add_argument("--tcp", action="store_true")
    p.add_argument("--listen-port", type=int, default=0,
                   help="TCP active: listen on this port (the device's answered one) and send "
                   "to the platform that connects, instead of connecting to HOST PORT")  # fmt: skip
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--reorder", action="store_true", help="swap neighbouring packets")
    p.add_argument("--garbage", action="store_true",
                   help="send random bytes as the RTP payload instead of PS (bad media)")
    p.add_argument("--wrong-ssrc-every", type=int, default=0,
                   help="also send every Nth packet again under another SSRC")
    args = p.parse_args(argv)
    if args.listen_port:
        args.tcp = True
        server = socket.create_server(("127.0.0.1", args.listen_port))
        server.settimeout(10)
        sock, _ = server.accept()
        server.close()
    elif args.tcp:
        sock = socket.create_connection((args.host, args.port), timeout=5)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(data: bytes) -> None:
        if args.tcp:
            sock.sendall(frame_4571(data))
        else:
            sock.sendto(data, (args.host, args.port))
    seq = random.randint(0, 65535)
    start = time.monotonic()
    first_pts: int | None = None
    n = 0
    try:
        for au, pts, key in access_units(args.clip):
            if first_pts is None:
                first_pts = pts
            due = start + (pts - first_pts) / 90000
            if due - start > args.seconds:
                break
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ps = os.urandom(len(au)) if args.garbage else mux_access_unit(au, pts, keyframe=key)
            packets = packetize(ps, seq=seq, timestamp=pts, ssrc=args.ssrc)
            seq = (seq + len(packets)) & 0xFFFF
            if args.reorder:
                for i in range(0, len(packets) - 1, 2):
                    packets[i], packets[i + 1] = packets[i + 1], packets[i]
            for pkt in packets:
                send(pkt)
                n += 1
                if args.wrong_ssrc_every and n % args.wrong_ssrc_every == 0:
                    send(pkt[:8] + (args.ssrc ^ 0x5A5A).to_bytes(4, "big") + pkt[12:])
    except (BrokenPipeError, ConnectionError):
        return 0
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
