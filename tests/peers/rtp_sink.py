"""A device's audio output for a GB/T 28181 voice broadcast: receives RTP on a UDP port
and writes what came as JSON once the sender has been quiet for a moment.

    python -m tests.peers.rtp_sink OUT.json PORT
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    out, port = args[0], int(args[1])
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
            packets, size = packets + 1, size + len(data) - 12
            pts.add(second & 0x7F)
            ssrcs.add(ssrc)
            seqs.append(seq)
            sock.settimeout(1.5)  # then: the end of the broadcast
    finally:
        sock.close()
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
