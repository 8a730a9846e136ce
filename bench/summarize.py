"""One table from the JSON files of bench/matrix.sh: python bench/summarize.py DIR"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(directory: str) -> int:
    rows = []
    machine = None
    for path in sorted(Path(directory).glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        machine = machine or data["machine"]
        s = data["settings"]
        for r in data["runs"]:
            rows.append((Path(s["clip"]).name, s["motion"], s["batch"], r))
    if not rows:
        print(f"no results in {directory}")
        return 1
    print(f"machine: {json.dumps(machine, ensure_ascii=False)}")
    print(
        f"{'clip':24} {'gate':4} {'batch':5} {'cams':>4} {'fps/cam':>7} {'min':>5} "
        f"{'det %':>5} {'drop':>5} {'hub CPU':>8} {'RSS MiB':>8} {'eff':>5}"
    )
    for clip, motion, batch, r in rows:
        det = 100 * r["frames_detected"] / max(1, r["frames_analysed"])
        eff = f"{r['efficiency']:.2f}" if r["efficiency"] is not None else "-"
        print(
            f"{clip:24} {motion:4} {batch:5} {r['cameras']:4d} {r['analysed_fps_mean']:7.2f} "
            f"{r['analysed_fps_min']:5.2f} {det:5.0f} {r['frames_dropped']:5d} "
            f"{r['hub_cpu_pct_core']:7.0f}% {r['hub_peak_rss_mib']:8.0f} {eff:>5}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/shaobing-bench"))
