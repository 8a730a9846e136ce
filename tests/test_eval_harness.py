"""The evaluation harness runs end to end on real transformed footage (a regression guard
for the wrong-way rule: silent on forward traffic, firing on reversed traffic)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_eval_wrong_way_forward_silent_reversed_fires(tmp_path: Path, videos_dir: Path) -> None:
    out = tmp_path / "eval.json"
    proc = subprocess.run(
        [sys.executable, "-m", "eval.run", "--scenario", "highway_forward", "highway_reversed",
         "--only", "wrong_way", "--json", str(out)],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 pass, 0 fail" in proc.stdout, proc.stdout
    metrics = json.loads(out.read_text(encoding="utf-8"))["metrics"]["wrong_way"]
    assert metrics["recall"] == 1.0 and metrics["precision"] == 1.0
    assert metrics["normal_false_alarms"] == 0 and metrics["alerts"] >= 2
