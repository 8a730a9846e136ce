"""The evaluation harness runs end to end on real transformed footage (a regression guard
for the wrong-way rule: silent on forward traffic, firing on reversed traffic)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from eval import transforms

ROOT = Path(__file__).resolve().parents[2]


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


def test_fault_transform_makes_a_real_clip_faulty_in_place(
    tmp_path: Path, videos_dir: Path
) -> None:
    """The picture-fault transforms (blur, cover, cast, noise, turn) filter a segment of the
    clip in place: the clip keeps its length, frames outside the segment are untouched."""
    spec = {"fault": {"kind": "cover", "at": 2, "duration": 3}}
    assert transforms.describe(spec) == "cover 3 s at 2 s"
    with pytest.raises(transforms.TransformError, match="kind"):
        transforms.normalize({"fault": {"kind": "smoke", "at": 1, "duration": 1}})
    src = videos_dir / "highway_divided.mp4"
    out = transforms.build(src, spec, tmp_path)
    info, built = transforms.probe(src), transforms.probe(out)
    assert abs(built.duration - info.duration) < 0.2

    def grey_at(path: Path, t: float) -> np.ndarray:
        cap = cv2.VideoCapture(str(path))
        cap.set(cv2.CAP_PROP_POS_MSEC, t * 1000)
        ok, img = cap.read()
        cap.release()
        assert ok
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)

    covered, before = grey_at(out, 3.5), grey_at(out, 1.0)
    h, w = covered.shape
    assert covered[: int(h * 0.85), : int(w * 0.85)].std() < 3  # an even dark patch
    assert before.std() > 20 and abs(before - grey_at(src, 1.0)).mean() < 4
