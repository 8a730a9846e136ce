"""INT8 static quantisation of an ONNX detector, calibrated on real frames.

``quantize_detector`` takes an FP32 YOLOX/Ultralytics ONNX model and writes a QDQ
INT8 copy (onnxruntime's ``quantize_static``: per-channel INT8 weights, UINT8
activations with ranges measured on calibration frames). The frames are listed, not
stored: ``calibration_frames.txt`` beside this module names a clip and a frame index
a line; the clips are read from ``<assets>/videos``.

Calibration runs on the model made dynamic in height and width, with each frame
letterboxed exactly as :class:`~analytics.detectors.onnx.OnnxDetector` does at run
time (16:9 frames at 416x256), so the activation ranges are those of the rectangular
inference. The saved model keeps the source's fixed input declaration, so the
detector loads it like the FP32 model and makes it dynamic again.

Only convolutions are quantised (their SiLU activations stay in FP32: quantised
Sigmoid/Mul pairs lost almost every detection). By default these convolutions stay in
FP32 too: the detection head's prediction convolutions and everything after them, the
depthwise convolutions and the pointwise convolutions they feed. A depthwise layer's
output channels span ranges 100x apart, and one scale per activation tensor (all that
onnxruntime's static quantisation offers for activations) crushes the small ones.

Measured on yolox_nano (bench/bench_detector.py, docs in bench/README.md): even so the
INT8 copy finds only about half of the FP32 model's detections and is not faster on an
AVX-512 CPU, so FP32 stays the default; the tooling is here for models that quantise
well (standard convolutions, ReLU) and for a GPU/NPU path.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from analytics.detectors.base import DetectorError
from analytics.types import Detections

log = logging.getLogger(__name__)

CALIBRATION_LIST = Path(__file__).with_name("calibration_frames.txt")
#: suffix of the INT8 copy of ``<stem>.onnx``: ``<stem>.int8.onnx``
INT8_SUFFIX = ".int8.onnx"
#: the opset the quantised model is written in (per-channel QDQ needs 13)
MIN_OPSET = 13


@dataclass(frozen=True)
class CalibrationFrame:
    clip: str
    index: int


@dataclass
class QuantizeResult:
    path: str
    sha256: str
    source: str
    source_sha256: str
    frames: int
    per_channel: bool
    method: str
    exclude_head: bool = True
    exclude_depthwise: bool = True
    excluded_nodes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)


def int8_name(model_name: str) -> str:
    """``yolox_nano.onnx`` → ``yolox_nano.int8.onnx``."""
    stem = model_name[: -len(".onnx")] if model_name.endswith(".onnx") else model_name
    return stem + INT8_SUFFIX


def resolve_int8(
    spec: str, models_dir: Path, *, mirror_dir: Path | None = None, sha256: str | None = None
) -> Path:
    """The INT8 copy of model ``spec`` (``<stem>.int8.onnx`` beside a given path, in
    ``models_dir`` or in ``mirror_dir``), checked against ``sha256`` or, without one,
    against the SHA-256 its ``.json`` record holds."""
    import shutil

    from analytics.models import resolve_model, sha256_file

    given = Path(spec).expanduser()
    name = given.name if given.name.endswith(INT8_SUFFIX) else int8_name(given.name)
    local = given.parent / name if given.is_absolute() or len(given.parts) > 1 else Path(name)
    try:
        path = resolve_model(
            str(local), models_dir, mirror_dir=mirror_dir, sha256=sha256, allow_download=False
        )
    except DetectorError as exc:
        if "not found" not in str(exc):
            raise
        raise DetectorError(
            f"INT8 model {name} not found ({exc}); make it with `shaobing models quantize "
            "--config <this config>`, or copy it with its .json into detector.mirror_dir"
        ) from None
    record = path.with_name(path.name + ".json")
    if mirror_dir is not None and not record.is_file() and (mirror_dir / record.name).is_file():
        shutil.copy2(mirror_dir / record.name, record)
    if sha256 is None and record.is_file():
        try:
            recorded = json.loads(record.read_text(encoding="utf-8"))["sha256"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DetectorError(f"{record}: unreadable quantisation record: {exc}") from exc
        actual = sha256_file(path)
        if actual != recorded:
            raise DetectorError(
                f"INT8 model {path} has SHA-256 {actual}, but {record.name} recorded "
                f"{recorded}: the file is corrupt or was replaced; quantise it again"
            )
    return path


def load_calibration_list(path: Path = CALIBRATION_LIST) -> list[CalibrationFrame]:
    """Parse ``<clip> <frame index>`` lines (``#`` comments, blank lines ignored)."""
    frames: list[CalibrationFrame] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DetectorError(f"{path}: cannot read the calibration list: {exc}") from exc
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise DetectorError(
                f"{path}:{lineno}: expected '<clip> <frame index>', got {raw.strip()!r}"
            )
        frames.append(CalibrationFrame(parts[0], int(parts[1])))
    if not frames:
        raise DetectorError(f"{path}: no calibration frames listed")
    return frames


def read_frames(
    videos_dir: Path, frames: Sequence[CalibrationFrame]
) -> Iterator[tuple[CalibrationFrame, np.ndarray]]:
    """Decode each listed frame (BGR uint8) from its clip, in the list's clip order.

    The index counts the frames PyAV decodes (a clip's undecodable head is not counted).
    """
    import av

    by_clip: dict[str, list[CalibrationFrame]] = {}
    for f in frames:
        by_clip.setdefault(f.clip, []).append(f)
    for clip, wanted in by_clip.items():
        path = videos_dir / clip
        if not path.is_file():
            raise DetectorError(f"calibration clip {path} not found")
        targets = {f.index: f for f in wanted}
        last = max(targets)
        found = 0
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                for i, frame in enumerate(container.decode(stream)):
                    if i in targets:
                        found += 1
                        yield targets[i], frame.to_ndarray(format="bgr24")
                    if i >= last:
                        break
        except av.error.InvalidDataError:  # a truncated tail: keep what was decoded
            pass
        if found != len(targets):
            missing = sorted(set(targets) - set(range(last + 1)))[:5] or sorted(targets)[-1:]
            raise DetectorError(
                f"calibration clip {clip}: only {found} of {len(targets)} listed frames "
                f"decode (e.g. index {missing[0]})"
            )


def head_nodes(model: object) -> list[str]:
    """Names of the prediction convolutions (the Conv nodes feeding nothing but the
    output tail) and every node downstream of them."""
    graph = model.graph  # type: ignore[attr-defined]
    consumers: dict[str, list[object]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    initializers = {i.name for i in graph.initializer}
    # A prediction conv: its weight is named like a head prediction (YOLOX export:
    # head.cls_preds.N / reg_preds.N / obj_preds.N), or, for unnamed exports, a Conv
    # whose output reaches the graph output through no other Conv.
    seeds = [
        n
        for n in graph.node
        if n.op_type == "Conv" and any(w in initializers and "_preds" in w for w in n.input[1:2])
    ]
    if not seeds:
        seeds = _last_convs(graph, consumers)
    out: list[str] = []
    seen: set[str] = set()
    stack = list(seeds)
    while stack:
        node = stack.pop()
        if node.name in seen:  # type: ignore[attr-defined]
            continue
        seen.add(node.name)  # type: ignore[attr-defined]
        out.append(node.name)  # type: ignore[attr-defined]
        for name in node.output:  # type: ignore[attr-defined]
            stack.extend(consumers.get(name, []))
    return sorted(out)


def depthwise_nodes(model: object) -> list[str]:
    """Names of the depthwise convolutions (group > 1) and of the convolutions fed by one
    (through its activation: Sigmoid, Mul)."""
    graph = model.graph  # type: ignore[attr-defined]
    producer = {out: node for node in graph.node for out in node.output}

    def grouped(node: object) -> bool:
        return node.op_type == "Conv" and any(  # type: ignore[attr-defined]
            a.name == "group" and a.i > 1
            for a in node.attribute  # type: ignore[attr-defined]
        )

    def source(name: str) -> object | None:
        node = producer.get(name)
        for _ in range(4):
            if node is None or node.op_type not in ("Sigmoid", "Mul", "Relu", "Clip"):
                break
            node = producer.get(node.input[0])
        return node

    out = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        feeder = source(node.input[0])
        if grouped(node) or (feeder is not None and grouped(feeder)):
            out.append(node.name)
    return sorted(out)


def _last_convs(graph: object, consumers: dict[str, list[object]]) -> list[object]:
    """Conv nodes from which the graph output is reached without another Conv."""
    convs = []
    for node in graph.node:  # type: ignore[attr-defined]
        if node.op_type != "Conv":
            continue
        stack, ok, seen = list(node.output), True, set()
        while stack and ok:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            for c in consumers.get(name, []):
                if c.op_type == "Conv":  # type: ignore[attr-defined]
                    ok = False
                    break
                stack.extend(c.output)  # type: ignore[attr-defined]
        if ok:
            convs.append(node)
    return convs


def quantize_detector(
    source: Path,
    target: Path,
    videos_dir: Path,
    frames: Sequence[CalibrationFrame] | None = None,
    *,
    per_channel: bool = True,
    exclude_head: bool = True,
    exclude_depthwise: bool = True,
    method: str = "percentile",
) -> QuantizeResult:
    """Write the INT8 (QDQ) copy of ``source`` to ``target`` and ``target.json``
    (its SHA-256, the source's, the settings, the frame count)."""
    import onnx
    import onnx.version_converter
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from analytics.detectors.onnx import OnnxDetector, _with_dynamic_size
    from analytics.models import sha256_file

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    if method not in methods:
        raise DetectorError(f"calibration method {method!r}: one of {', '.join(methods)}")
    frames = list(frames) if frames is not None else load_calibration_list()
    if not source.is_file():
        raise DetectorError(f"model file not found: {source}")
    fp32 = OnnxDetector(source, rect=True)
    if not fp32.rect:
        raise DetectorError(f"{source}: the model cannot run at a rectangular input")
    tensors = [fp32._preprocess(img)[0] for _, img in read_frames(videos_dir, frames)]
    input_name = fp32.input_name

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it = iter(tensors)

        def get_next(self) -> dict[str, np.ndarray] | None:
            t = next(self._it, None)
            return None if t is None else {input_name: t}

    ort.set_default_logger_severity(3)  # calibration runs warn that shapes differ
    original = onnx.load(str(source))
    dynamic = _with_dynamic_size(source)
    if dynamic is None:
        raise DetectorError(f"{source}: cannot make the input dynamic (needs the onnx package)")
    excluded = sorted(
        set(head_nodes(original) if exclude_head else [])
        | set(depthwise_nodes(original) if exclude_depthwise else [])
    )
    with tempfile.TemporaryDirectory(prefix="shaobing-quant-") as tmp:
        dyn_path = Path(tmp) / "dynamic.onnx"
        dyn_model = onnx.load_from_string(dynamic)
        if _opset(dyn_model) < MIN_OPSET:  # per-channel DequantizeLinear (axis) needs 13
            dyn_model = onnx.version_converter.convert_version(dyn_model, MIN_OPSET)
        onnx.save(dyn_model, str(dyn_path))
        pre_path = Path(tmp) / "pre.onnx"
        # shape inference + graph clean-up before quantisation (onnxruntime's advice);
        # node names survive it, so the head exclusion still applies
        quant_pre_process(str(dyn_path), str(pre_path), skip_symbolic_shape=True)
        q_path = Path(tmp) / "int8.onnx"
        quantize_static(
            str(pre_path),
            str(q_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            op_types_to_quantize=["Conv"],
            nodes_to_exclude=excluded,
        )
        model = onnx.load(str(q_path))
    _restore_io_shapes(model, original)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    onnx.save(model, str(partial))
    partial.replace(target)
    result = QuantizeResult(
        path=str(target),
        sha256=sha256_file(target),
        source=str(source),
        source_sha256=sha256_file(source),
        frames=len(tensors),
        per_channel=per_channel,
        method=method,
        exclude_head=exclude_head,
        exclude_depthwise=exclude_depthwise,
        excluded_nodes=excluded,
    )
    target.with_name(target.name + ".json").write_text(result.to_json() + "\n", encoding="utf-8")
    log.info("quantised %s → %s (sha256 %s)", source.name, target, result.sha256)
    return result


def _opset(model: object) -> int:
    for imp in model.opset_import:  # type: ignore[attr-defined]
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 0


def _restore_io_shapes(model: object, original: object) -> None:
    """Give the quantised model the source's declared input/output shapes (fixed H, W)
    and drop intermediate shapes, which were inferred for the dynamic copy."""
    graph, orig = model.graph, original.graph  # type: ignore[attr-defined]
    for new, old in ((graph.input, orig.input), (graph.output, orig.output)):
        by_name = {v.name: v for v in old}
        for v in new:
            if v.name in by_name:
                v.type.CopyFrom(by_name[v.name].type)
    del graph.value_info[:]


def match_detections(reference: Detections, candidate: Detections, iou: float = 0.5) -> int:
    """How many boxes of ``reference`` have a box of ``candidate`` of the same class with
    IoU ≥ ``iou`` (greedy, best reference score first, each candidate used once)."""
    if not len(reference) or not len(candidate):
        return 0
    a, b = reference.xyxy[:, None, :], candidate.xyxy[None, :, :]
    wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    overlap = inter / np.maximum(area_a + area_b - inter, 1e-9)
    overlap[reference.class_id[:, None] != candidate.class_id[None, :]] = 0.0
    matched = 0
    for r in np.argsort(-reference.confidence):
        j = int(np.argmax(overlap[r]))
        if overlap[r, j] >= iou:
            matched += 1
            overlap[:, j] = 0.0
    return matched
