#!/usr/bin/env python
"""Alert latency: from the frame on which a rule's condition became true to the
moment the dispatch target received the alert (aim: p99 ≤ 2 s).

A hub runs in this process on N live RTSP cameras (the GStreamer test peer looping the
crosswalk clip, one mount each) with a loitering rule (``--min-duration`` s) and a
webhook target: a real HTTP receiver on 127.0.0.1 that stamps each request when it
arrives. The hub's producer is wrapped so that each alert id is paired with the wall
time of the frame that fired it (``Event.ts``, stamped when the frame was decoded):
latency = receiver time − frame time, split into frame → rule fired (analysis queue and
inference) and rule fired → received (evidence, bus, SQL commit, outbox, HTTP).

Run from the repository root::

    .venv/bin/python bench/bench_latency.py --cameras 4 --duration 60

The machine is shared and noisy: the figures are this run's, printed with the machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.machine import machine_line  # noqa: E402

ASSETS = REPO.parent / "shared" / "assets"
WHOLE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cameras", type=int, default=4)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of alerts measured")
    p.add_argument("--min-duration", type=float, default=1.0, help="loitering threshold, s")
    p.add_argument("--clip", type=Path, default=ASSETS / "videos" / "crosswalk_people.mp4")
    p.add_argument("--model", type=Path, default=ASSETS / "models" / "yolox_nano.onnx")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    from shaobing.bootstrap import Hub
    from shaobing.cli import setup_logging
    from shaobing.config import parse_config
    from tests.peers.procs import RtspServer
    from tests.peers.receiver import Receiver

    print(machine_line())
    setup_logging("WARNING")
    work = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    arrived: dict[str, float] = {}
    lock = threading.Lock()

    def on_request(headers: dict[str, str], body: bytes, path: str, method: str) -> None:
        now = time.time()
        try:
            alert_id = json.loads(body)["alert"]["id"]
        except (ValueError, KeyError):
            return
        with lock:
            arrived.setdefault(alert_id, now)

    rx = Receiver(on_request=on_request).start()
    server = RtspServer({f"c{i}": args.clip for i in range(args.cameras)})
    server.start()
    hub: Any = None
    try:
        cameras = [{
            "id": f"lat-{i}", "source": {"url": server.url(f"c{i}")}, "detect_fps": 5,
            "zones": [{"name": "all", "points": WHOLE}],
            "rules": [{"name": "loiter", "type": "loitering", "zone": "all",
                       "min_duration_s": args.min_duration}],
        } for i in range(args.cameras)]  # fmt: skip
        config = {
            "data_dir": str(work / "data"), "api": {"enabled": False},
            "detector": {"model": str(args.model)},
            "alerts": {"cooldown_s": 600, "clips_enabled": False},
            "cameras": cameras,
            "dispatch": [{"name": "rx", "url": f"{rx.url}/alerts", "unsigned": True}],
        }  # fmt: skip
        hub = Hub(parse_config(config, "latency.yaml", work))
        fired: dict[str, tuple[float, float]] = {}  # alert id -> (frame ts, rule fired)
        original = hub.producer.on_event

        def on_event(event: Any, frame: Any, polygon: Any, *, t: float | None = None) -> Any:
            fired_at = time.time()
            alert_id = original(event, frame, polygon, t=t)
            if alert_id is not None and frame is not None:
                fired[alert_id] = (event.ts, fired_at)
            return alert_id

        hub.producer.on_event = on_event
        hub.start()
        print(f"{args.cameras} camera(s), loitering ≥ {args.min_duration:g} s; measuring "
              f"{args.duration:g} s ...", flush=True)  # fmt: skip
        time.sleep(args.duration)
        time.sleep(5)  # the last alerts reach the receiver
        with lock:
            got = dict(arrived)
        pairs = [(fired[a], got[a]) for a in fired if a in got]
        missing = [a for a in fired if a not in got]
        if not pairs:
            print("no alert reached the receiver", file=sys.stderr)
            return 1
        total = [recv - frame_ts for (frame_ts, _), recv in pairs]
        analysis = [fired_at - frame_ts for (frame_ts, fired_at), _ in pairs]
        delivery = [recv - fired_at for (_, fired_at), recv in pairs]
        figures = {"alerts": len(pairs), "not_received": len(missing)}
        for name, values in (("frame_to_receiver", total), ("frame_to_rule", analysis),
                             ("rule_to_receiver", delivery)):  # fmt: skip
            figures[f"{name}_p50_s"] = round(percentile(values, 50), 3)
            figures[f"{name}_p99_s"] = round(percentile(values, 99), 3)
            figures[f"{name}_max_s"] = round(max(values), 3)
        print(f"{len(pairs)} alerts received ({len(missing)} not yet)")
        print(
            f"frame → receiver: p50 {figures['frame_to_receiver_p50_s']:.3f} s, p99 "
            f"{figures['frame_to_receiver_p99_s']:.3f} s, max "
            f"{figures['frame_to_receiver_max_s']:.3f} s — "
            f"{'ok' if figures['frame_to_receiver_p99_s'] <= 2 else 'OVER the 2 s aim'}"
        )
        print(
            f"  frame → rule fired: p50 {figures['frame_to_rule_p50_s']:.3f} s, p99 "
            f"{figures['frame_to_rule_p99_s']:.3f} s"
        )
        print(f"  rule fired → receiver: p50 {figures['rule_to_receiver_p50_s']:.3f} s, p99 "
              f"{figures['rule_to_receiver_p99_s']:.3f} s")  # fmt: skip
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        if hub is not None:
            hub.stop()
        server.stop()
        rx.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
