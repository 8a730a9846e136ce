"""`shaobing replay`: deterministic, faster than real time, honest about bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, models_dir: Path) -> Path:
    config = {
        "data_dir": str(tmp_path / "data"),
        "detector": {"model": str(models_dir / "yolox_nano.onnx")},
        "alerts": {"cooldown_s": 60},
        "cameras": [{
            "id": "clip",
            "source": {"url": "rtsp://127.0.0.1:1/unused"},
            "detect_fps": 5,
            "zones": [{"name": "road", "points": [[0.05, 0.35], [0.95, 0.35], [0.95, 0.98],
                                                  [0.05, 0.98]]}],
            "rules": [
                {"name": "road-loitering", "type": "loitering", "zone": "road",
                 "min_duration_s": 8},
                {"name": "road-car", "type": "intrusion", "zone": "road", "classes": ["car"],
                 "min_duration_s": 1},
            ],
        }],
    }  # fmt: skip
    path = tmp_path / "replay.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_replay(
    config: Path, clip: Path, out: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "shaobing.cli",
            "replay",
            "--config",
            str(config),
            "--camera",
            "clip",
            "--source",
            str(clip),
            "--output",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def test_replay_twice_gives_identical_alerts_faster_than_real_time(
    tmp_path: Path, models_dir: Path, videos_dir: Path
) -> None:
    config = write_config(tmp_path, models_dir)
    clip = videos_dir / "crosswalk_people.mp4"
    outputs = []
    for n in (1, 2):
        out = tmp_path / f"alerts{n}.jsonl"
        proc = run_replay(config, clip, out)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        assert summary["clip_seconds"] > 25
        assert summary["wall_seconds"] < summary["clip_seconds"]  # faster than real time
        outputs.append(out.read_text(encoding="utf-8"))
    assert outputs[0] == outputs[1]
    alerts = [json.loads(line) for line in outputs[0].splitlines()]
    assert alerts, "people stand at this crossing for more than 8 s"
    assert {a["type"] for a in alerts} == {"loitering"}  # no cars on the crossing clip
    for a in alerts:
        # Timed on the clip's own timestamps: 8 s of dwell cannot end before 8 s.
        assert a["created_at"] >= 8.0 and a["trace"]["measured"] >= 8.0
        assert a["camera"]["id"] == "clip" and a["rule"] == "road-loitering"


def test_replay_saves_evidence_with_hashes(
    tmp_path: Path, models_dir: Path, videos_dir: Path
) -> None:
    config = write_config(tmp_path, models_dir)
    out = tmp_path / "a.jsonl"
    proc = run_replay(config, videos_dir / "crosswalk_people.mp4", out,
                      "--evidence-dir", str(tmp_path / "ev"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    import hashlib

    alerts = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    files = {p.name: p for p in (tmp_path / "ev").rglob("*.jpg")}
    for a in alerts:
        raw = files[f"{a['id']}.jpg"]
        assert hashlib.sha256(raw.read_bytes()).hexdigest() == a["evidence"]["snapshot"]["sha256"]
        assert f"{a['id']}.annotated.jpg" in files


def test_replay_reports_the_corrupt_tail(
    tmp_path: Path, models_dir: Path, videos_dir: Path
) -> None:
    config = write_config(tmp_path, models_dir)
    proc = run_replay(config, videos_dir / "street_parked_cars.mp4", tmp_path / "s.jsonl")
    assert proc.returncode == 0
    assert "street_parked_cars.mp4" in proc.stderr and "did not decode" in proc.stderr
    alerts = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    # The parked cars sit in the lower part of the frame: intrusion of cars fires.
    assert any(a["type"] == "intrusion" and a["object_class"] == "car" for a in alerts)


def test_replay_errors_name_the_thing(tmp_path: Path, models_dir: Path, videos_dir: Path) -> None:
    config = write_config(tmp_path, models_dir)
    proc = run_replay(config, tmp_path / "nope.mp4", tmp_path / "x.jsonl")
    assert proc.returncode == 2 and "clip not found" in proc.stderr and "nope.mp4" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "shaobing.cli", "replay", "--config", str(config), "--camera",
         "other", "--source", str(videos_dir / "crosswalk_people.mp4"), "--output",
         str(tmp_path / "y.jsonl")],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2 and "camera 'other'" in proc.stderr
