"""A device's audio output for a GB/T 28181 voice broadcast: receives RTP on a UDP port
and writes what came as JSON once the sender has been quiet for a moment.

    python -m tests.peers.rtp_sink OUT.json [--save PAYLOADS] PORT

``--save``: the payloads (a forwarded channel's PS) written to PAYLOADS in arrival order.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("port", type=int)
    p.add_argument("--save")
    args = p.parse_args(argv)
    out, port = args.out, args.port
    saved = open(args.save, "wb") if args.save else None  # noqa: SIM115 - closed below
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    packets, size, pts, ssrcs, seqs = 0, 0, set(), set(), []
    sock.settimeout(20.0)  # the first packet
    try:
        while True:
            try:
                data = sock.recv(2048)
            except TimeoutError:
                break
            if len(data) < 12:
                continue
            _, second, seq, _, ssrc = struct.unpack("!BBHII", data[:12])
            if saved is not None:
                saved.write(data[12:])
            packets, size = packets + 1, size + len(data) - 12
            pts.add(second & 0x7F)
            ssrcs.add(ssrc)
            seqs.append(seq)
            sock.settimeout(1.5)  # then: the end of the broadcast
    finally:
        sock.close()
        if saved is not None:
            saved.close()
    in_order = all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    tmp = f"{out}.tmp"
    with open(tmp, "w") as fh:
        report = {
            "packets": packets,
            "bytes": size,
            "payload_types": sorted(pts),
            "ssrcs": sorted(ssrcs),
            "in_order": in_order,
            "at": time.time(),
        }
        json.dump(report, fh)
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
