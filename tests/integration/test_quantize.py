"""INT8 quantisation of the detector: the calibration list, the CLI that writes the
model and its record, the config that selects it, and its detections against FP32's
on real frames the calibration did not see."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import av
import numpy as np
import onnx
import pytest
import yaml
from pydantic import ValidationError

from analytics.config import DetectorConfig
from analytics.detectors import DetectorError, create_detector
from analytics.detectors.onnx import OnnxDetector
from analytics.detectors.quantize import (
    CALIBRATION_LIST,
    depthwise_nodes,
    head_nodes,
    int8_name,
    load_calibration_list,
    match_detections,
    read_frames,
)
from analytics.types import Detections
from shaobing.cli import main

# -- the calibration list ------------------------------------------------------------


def test_committed_calibration_list_names_real_frames(videos_dir: Path) -> None:
    frames = load_calibration_list()
    assert len(frames) >= 40
    assert {f.clip for f in frames} == {p.name for p in videos_dir.glob("*.mp4")}
    # the accuracy check below uses frames with index % 10 == 5: none is calibrated on
    assert not [f for f in frames if f.index % 10 == 5]


def test_calibration_list_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "frames.txt"
    bad.write_text("# comment\ncrosswalk_people.mp4 12\ncrosswalk_people.mp4 twelve\n")
    with pytest.raises(DetectorError, match=r"frames.txt:3: expected '<clip> <frame index>'"):
        load_calibration_list(bad)
    bad.write_text("# nothing\n\n")
    with pytest.raises(DetectorError, match="no calibration frames"):
        load_calibration_list(bad)


def test_a_frame_past_the_clip_end_is_an_error(tmp_path: Path, videos_dir: Path) -> None:
    lst = tmp_path / "frames.txt"
    lst.write_text("highway_receding_720p.mp4 3\nhighway_receding_720p.mp4 99999\n")
    with pytest.raises(DetectorError, match="only 1 of 2 listed frames decode"):
        list(read_frames(videos_dir, load_calibration_list(lst)))


# -- graph selection -----------------------------------------------------------------


def test_head_and_depthwise_nodes_of_yolox_nano(models_dir: Path) -> None:
    model = onnx.load(str(models_dir / "yolox_nano.onnx"))
    head = head_nodes(model)
    by_name = {n.name: n for n in model.graph.node}
    # the 9 prediction convs (cls/reg/obj at 3 strides) and the tail after them
    pred = [n for n in head if by_name[n].op_type == "Conv"]
    assert len(pred) == 9
    assert all("_preds" in by_name[n].input[1] for n in pred)
    assert by_name[head[-1]].op_type in {"Transpose", "Sigmoid", "Reshape", "Concat"}
    assert model.graph.node[-1].name in head
    dw = depthwise_nodes(model)
    grouped = [n for n in model.graph.node if n.op_type == "Conv"
               and any(a.name == "group" and a.i > 1 for a in n.attribute)]  # fmt: skip
    assert {n.name for n in grouped} < set(dw)
    assert len(dw) == 2 * len(grouped)  # each depthwise conv feeds one pointwise conv


def test_match_detections_same_class_iou() -> None:
    ref = Detections(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), np.array([0.9, 0.8]),
                     np.array([0, 2]))  # fmt: skip
    same = Detections(ref.xyxy + 1, np.array([0.5, 0.5]), np.array([0, 2]))
    other_class = Detections(ref.xyxy, np.array([0.5, 0.5]), np.array([0, 7]))
    assert match_detections(ref, same) == 2
    assert match_detections(ref, other_class) == 1
    assert match_detections(ref, Detections.empty()) == 0
    # one candidate box cannot match two reference boxes
    twin = Detections(np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float), np.array([0.9, 0.8]),
                      np.array([0, 0]))  # fmt: skip
    assert match_detections(twin, Detections(twin.xyxy[:1], np.array([0.9]), np.array([0]))) == 1


def test_precision_int8_needs_the_onnx_backend() -> None:
    with pytest.raises(ValidationError, match="precision: int8 needs backend onnx"):
        DetectorConfig(backend="ultralytics", model="yolo11n.pt", precision="int8")
    assert DetectorConfig().precision == "fp32"


def test_int8_model_missing_says_how_to_make_it(tmp_path: Path) -> None:
    cfg = DetectorConfig(model="yolox_nano.onnx", precision="int8")
    with pytest.raises(DetectorError, match="shaobing models quantize"):
        create_detector(cfg, tmp_path, None)


# -- the CLI, the model, its accuracy --------------------------------------------------


@pytest.fixture(scope="module")
def quantised(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, videos_dir: Path
              ) -> tuple[Path, dict[str, object]]:  # fmt: skip
    """`shaobing models quantize` on every 3rd calibration frame, into data_dir/models."""
    root = tmp_path_factory.mktemp("quant")
    frames = root / "frames.txt"
    listed = [line for line in CALIBRATION_LIST.read_text().splitlines()
              if line and not line.startswith("#")]  # fmt: skip
    frames.write_text("\n".join(listed[::3]) + "\n")
    config = root / "hub.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(root / "data"),
        "detector": {"model": str(models_dir / "yolox_nano.onnx")},
    }))  # fmt: skip
    rc = main(["models", "quantize", "--config", str(config), "--frames", str(frames),
               "--videos", str(videos_dir)])  # fmt: skip
    assert rc == 0
    out = root / "data" / "models" / "yolox_nano.int8.onnx"
    record = json.loads(out.with_name(out.name + ".json").read_text())
    return out, record


def test_cli_writes_the_model_and_its_sha256(quantised: tuple[Path, dict[str, object]],
                                             models_dir: Path) -> None:  # fmt: skip
    path, record = quantised
    assert path.name == int8_name("yolox_nano.onnx")
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["source_sha256"] == hashlib.sha256(
        (models_dir / "yolox_nano.onnx").read_bytes()).hexdigest()  # fmt: skip
    assert record["frames"] == len(load_calibration_list()[::3])
    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # declared like the FP32 model (416x416), so the detector makes it dynamic the same way
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 416, 416]


def test_config_selects_int8_and_checks_its_record(quantised: tuple[Path, dict[str, object]],
                                                    tmp_path: Path) -> None:  # fmt: skip
    path, record = quantised
    models = path.parent
    det = create_detector(DetectorConfig(model="yolox_nano.onnx", precision="int8"), models, None)
    assert isinstance(det, OnnxDetector)
    assert det.name == "onnx:yolox_nano.int8.onnx"
    assert det.rect  # rectangular inference as with FP32
    # a wrong sha256 in the config, and a file that no longer matches its record
    with pytest.raises(DetectorError, match="SHA-256"):
        create_detector(DetectorConfig(model="yolox_nano.onnx", precision="int8",
                                       sha256="0" * 64), models, None)  # fmt: skip
    copy = tmp_path / "models"
    copy.mkdir()
    (copy / path.name).write_bytes(path.read_bytes() + b"\0")
    (copy / (path.name + ".json")).write_text(json.dumps(record))
    with pytest.raises(DetectorError, match="recorded"):
        create_detector(DetectorConfig(model="yolox_nano.onnx", precision="int8"), copy, None)
    # from a mirror directory: copied into the models dir with its record
    fresh = tmp_path / "fresh"
    det = create_detector(DetectorConfig(model="yolox_nano.onnx", precision="int8"), fresh,
                          models)  # fmt: skip
    assert (fresh / path.name).is_file() and (fresh / (path.name + ".json")).is_file()


def test_int8_detections_against_fp32_on_unseen_frames(
    quantised: tuple[Path, dict[str, object]], models_dir: Path, videos_dir: Path
) -> None:
    """The floor below is what yolox_nano reaches (about 0.5 of FP32's boxes found, 0.9 of
    INT8's boxes right; bench/bench_detector.py prints the figures): far from enough to
    replace FP32, which stays the default. The test holds the floor so that a change that
    breaks the quantised model (wrong scales, a lost head exclusion) is seen."""
    fp32 = OnnxDetector(models_dir / "yolox_nano.onnx")
    int8 = OnnxDetector(quantised[0])
    matched = n_ref = n_int8 = 0
    for clip in sorted(videos_dir.glob("*.mp4")):
        with av.open(str(clip)) as container:
            try:
                for i, frame in enumerate(container.decode(video=0)):
                    if i % 60 != 5:
                        continue
                    img = frame.to_ndarray(format="bgr24")
                    (a,), (b,) = fp32.detect([img]), int8.detect([img])
                    matched += match_detections(a, b)
                    n_ref += len(a)
                    n_int8 += len(b)
                    if i > 400:
                        break
            except av.error.InvalidDataError:
                pass
    assert n_ref > 100
    recall, precision = matched / n_ref, matched / max(n_int8, 1)
    print(f"INT8 vs FP32: {matched}/{n_ref} FP32 boxes found ({recall:.2f}), "
          f"{matched}/{n_int8} INT8 boxes matched ({precision:.2f})")  # fmt: skip
    assert recall >= 0.35
    assert precision >= 0.75
