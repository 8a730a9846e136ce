"""Analysis pool: batching across cameras, motion gating, per-camera order."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import numpy as np

from analytics.config import IntrusionRule, MotionConfig
from analytics.detectors.onnx import OnnxDetector
from analytics.motion import MotionGate
from analytics.pipeline import CameraAnalytics, CameraRulesConfig
from analytics.scheduler import AnalysisPool
from analytics.types import Detections
from camera_registry.status import StatusBoard
from ingest.reader import SampledFrame


class CountingDetector:
    """The real detector, recording the size of every call."""

    def __init__(self, inner: OnnxDetector) -> None:
        self.inner = inner
        self.name, self.input_size, self.class_names = (
            inner.name,
            inner.input_size,
            inner.class_names,
        )
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        with self.lock:
            self.calls.append(len(images))
        time.sleep(0.02)  # a slower model: lets frames of other cameras queue up
        return self.inner.detect(images)


def frames(clip: Path, n: int) -> list[av.VideoFrame]:
    out = []
    with av.open(str(clip)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % 5 == 0:
                out.append(f)
            if len(out) == n:
                break
    return out


def sampled(cam: str, f: av.VideoFrame, seq: int) -> SampledFrame:
    image = f.to_ndarray(width=416, height=234, format="bgr24")
    return SampledFrame(cam, image, f, (f.width, f.height), seq * 0.2, seq * 0.2, seq * 0.2, seq)


def test_frames_of_several_cameras_share_detector_calls(models_dir: Path, videos_dir: Path) -> None:
    det = CountingDetector(OnnxDetector(models_dir / "yolox_nano.onnx"))
    status = StatusBoard()
    pool = AnalysisPool(det, status, lambda *a: None, workers=1, batch_size=4,
                        batch_timeout_s=0.05)  # fmt: skip
    rule = IntrusionRule(name="i", type="intrusion")
    cams = [f"cam{i}" for i in range(4)]
    for cam in cams:
        pool.add_camera(
            CameraAnalytics(
                CameraRulesConfig(cam, 5, [], [rule], MotionConfig(enabled=False)), det.class_names
            )
        )
        pool.slots[cam].depth = 100  # keep every frame: this test counts them
    clip = frames(videos_dir / "crosswalk_people.mp4", 10)
    pool.start()
    try:
        for seq, f in enumerate(clip):
            for cam in cams:
                pool.submit(sampled(cam, f, seq))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(status.get(c).frames_analysed == len(clip) for c in cams):
                break
            time.sleep(0.05)
    finally:
        pool.stop()
    assert all(status.get(c).frames_analysed == len(clip) for c in cams)
    assert sum(det.calls) == 4 * len(clip)  # every frame detected once
    assert max(det.calls) > 1  # and cameras shared calls
    assert len(det.calls) < 4 * len(clip)


def test_motion_gate_skips_still_frames_with_keepalive() -> None:
    gate = MotionGate(MotionConfig(keepalive_s=2.0))
    gate.set_watched([np.array([[0, 0], [200, 0], [200, 100], [0, 100]], np.float32)], (416, 234))
    still = np.full((234, 416, 3), 90, np.uint8)
    decisions = [gate.check(still, t / 5).detect for t in range(25)]  # 5 s at 5 fps
    assert decisions[0]  # the first frame is always detected
    assert sum(decisions) == 3  # t = 0, 2, 4 s: keep-alive only
    moved = still.copy()
    moved[20:80, 40:120] = 200  # something appears inside the watched zone
    result = gate.check(moved, 5.2)
    assert result.detect and result.motion and result.changed > 0.1
    outside = moved.copy()
    outside[150:230, 300:400] = 10  # motion outside the watched zone
    assert not gate.check(outside, 5.4).detect
    assert 0.7 < gate.gated_share < 0.9
