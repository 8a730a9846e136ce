"""ONNX Runtime detector for YOLOX-format and Ultralytics YOLOv8/11-format exports.

The output layout tells the format apart:

* YOLOX ``[B, anchors, 5 + C]`` raw head (grid offsets, log sizes, objectness,
  class scores): BGR input, 0-255, padded at the bottom/right with 114.
* Ultralytics ``[B, 4 + C, anchors]`` (cx, cy, w, h in input pixels, class
  scores, no objectness): RGB input scaled to 0-1, centred padding with 114.
* Ultralytics with NMS built in ``[B, K, 6]`` (x1, y1, x2, y2, score, class).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from analytics.detectors.base import DetectorError, merge_class_group, nms_per_class
from analytics.types import COCO_CLASSES, Detections

log = logging.getLogger(__name__)

PAD_VALUE = 114
#: The largest stride of the supported heads (YOLOX, YOLOv8/11): canvas sides are multiples.
STRIDE = 32


class OnnxDetector:
    """A detector running an ONNX model with onnxruntime (CPU or CUDA)."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        confidence: float = 0.3,
        weak_confidence: float | None = None,
        nms_iou: float = 0.45,
        input_size: tuple[int, int] | None = None,
        device: str = "cpu",
        threads: int = 1,
        class_names: tuple[str, ...] = COCO_CLASSES,
        rect: bool = True,
    ) -> None:
        import onnxruntime as ort

        path = Path(model_path)
        if not path.is_file():
            raise DetectorError(f"model file not found: {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise DetectorError(f"cannot load ONNX model {path}: {exc}") from exc
        out_shape = self.session.get_outputs()[0].shape
        self.format = _guess_format(out_shape, len(class_names))
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = inp.shape  # [B, 3, H, W], dims may be symbolic
        self.dynamic_batch = not isinstance(shape[0], int)
        model_hw = (shape[2], shape[3]) if all(isinstance(s, int) for s in shape[2:]) else None
        if input_size is not None:
            self.input_size = (int(input_size[0]), int(input_size[1]))
        elif model_hw is not None:
            self.input_size = (int(model_hw[1]), int(model_hw[0]))
        else:
            self.input_size = (640, 640)
        #: letterbox to the frame's own aspect (sides a multiple of STRIDE) inside
        #: input_size, not to the whole square: 16:9 frames cost about 40 % less
        self.rect = False
        if rect and model_hw is not None and input_size is None:
            dynamic = _with_dynamic_size(path) if self.format != "ultralytics_nms" else None
            if dynamic is not None:
                try:
                    session = ort.InferenceSession(dynamic, options, providers=providers)
                    self.rect = _runs_smaller(session)
                except Exception as exc:  # noqa: BLE001 - keep the square input then
                    log.info("%s: no rectangular inference (%s)", path.name, exc)
                if self.rect:
                    self.session = session
        self.confidence = confidence
        #: boxes from here up to ``confidence`` come back as ``Detections.weak`` (the same
        #: NMS over all: a weaker box never suppresses a stronger one, so the strong set is
        #: what ``confidence`` alone gives)
        self.floor = min(confidence, weak_confidence if weak_confidence else confidence)
        self.nms_iou = nms_iou
        self.class_names = class_names
        self.name = f"onnx:{path.name}"
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        log.info(
            "loaded %s (%s format, input %dx%d%s, providers %s)",
            path.name,
            self.format,
            *self.input_size,
            " at most, rectangular" if self.rect else "",
            self.session.get_providers(),
        )

    # -- public ---------------------------------------------------------------

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        """Detect objects in each BGR image; boxes come back in that image's pixels."""
        if not images:
            return []
        prepared = [self._preprocess(img) for img in images]
        tensors = [p[0] for p in prepared]
        if self.dynamic_batch and len(tensors) > 1 and len({t.shape for t in tensors}) == 1:
            outputs = self.session.run(None, {self.input_name: np.concatenate(tensors)})[0]
            raw = [outputs[i : i + 1] for i in range(len(tensors))]
        else:
            raw = [self.session.run(None, {self.input_name: t})[0] for t in tensors]
        return [
            self._postprocess(out[0], ratio, pad, img.shape[1], img.shape[0], tensor.shape)
            for out, (tensor, ratio, pad), img in zip(raw, prepared, images, strict=True)
        ]

    # -- pre/post-processing --------------------------------------------------

    def _preprocess(self, img: np.ndarray) -> tuple[np.ndarray, float, tuple[float, float]]:
        in_w, in_h = self.input_size
        h, w = img.shape[:2]
        ratio = min(in_w / w, in_h / h)
        if ratio < 1.0 or (w != in_w and h != in_h):
            nw, nh = int(round(w * ratio)), int(round(h * ratio))
            img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
        else:
            ratio = 1.0
        nh, nw = img.shape[:2]
        if self.rect:  # the smallest canvas the model takes: 416x234 → 416x256, not 416x416
            in_w = min(in_w, -(-nw // STRIDE) * STRIDE)
            in_h = min(in_h, -(-nh // STRIDE) * STRIDE)
        if self.format == "yolox":
            pad_x, pad_y = 0, 0
        else:
            pad_x, pad_y = (in_w - nw) // 2, (in_h - nh) // 2
        canvas = np.full((in_h, in_w, 3), PAD_VALUE, dtype=np.uint8)
        canvas[pad_y : pad_y + nh, pad_x : pad_x + nw] = img
        if self.format == "yolox":
            tensor = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        else:
            tensor = canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        return np.ascontiguousarray(tensor), ratio, (float(pad_x), float(pad_y))

    def _postprocess(
        self,
        out: np.ndarray,
        ratio: float,
        pad: tuple[float, float],
        img_w: int,
        img_h: int,
        tensor_shape: tuple[int, ...] | None = None,
    ) -> Detections:
        """``tensor_shape``: the input that gave ``out`` (default: ``input_size``)."""
        if self.format == "yolox":
            size = (tensor_shape[3], tensor_shape[2]) if tensor_shape else self.input_size
            boxes, scores, classes = self._decode_yolox(out, size)
        elif self.format == "ultralytics":
            boxes, scores, classes = self._decode_ultralytics(out)
        else:
            keep = out[:, 4] >= self.floor
            sel = out[keep]
            boxes, scores, classes = sel[:, :4], sel[:, 4], sel[:, 5].astype(np.int64)
        if self.format != "ultralytics_nms" and len(boxes):
            keep_idx = nms_per_class(boxes, scores, classes, self.nms_iou)
            boxes, scores, classes = boxes[keep_idx], scores[keep_idx], classes[keep_idx]
        boxes = boxes.copy()
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - pad[0]) / ratio
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - pad[1]) / ratio
        boxes = np.clip(boxes, 0, None)
        boxes[:, [0, 2]] = np.minimum(boxes[:, [0, 2]], img_w)
        boxes[:, [1, 3]] = np.minimum(boxes[:, [1, 3]], img_h)
        return merge_class_group(Detections(boxes, scores, classes)).split(self.confidence)

    def _decode_yolox(
        self, out: np.ndarray, size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Filter on objectness first: decoding every anchor costs 6x more.
        objectness = out[:, 4]
        idx = np.nonzero(objectness >= self.floor)[0]
        if len(idx) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
        cls_scores = out[idx, 5:]
        classes = cls_scores.argmax(axis=1)
        scores = objectness[idx] * cls_scores[np.arange(len(idx)), classes]
        ok = scores >= self.floor
        idx, classes, scores = idx[ok], classes[ok], scores[ok]
        grid, strides = self._yolox_grid(len(out), size)
        xy = (out[idx, :2] + grid[idx]) * strides[idx]
        wh = np.exp(out[idx, 2:4]) * strides[idx]
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
        return boxes.astype(np.float32), scores.astype(np.float32), classes.astype(np.int64)

    def _yolox_grid(self, n_anchors: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        key = size
        if key not in self._grids:
            in_w, in_h = size
            grids, strides = [], []
            for stride in (8, 16, 32):
                gw, gh = in_w // stride, in_h // stride
                xv, yv = np.meshgrid(np.arange(gw), np.arange(gh))
                grids.append(np.stack([xv, yv], axis=2).reshape(-1, 2))
                strides.append(np.full((gw * gh, 1), stride))
            grid = np.concatenate(grids).astype(np.float32)
            stride_arr = np.concatenate(strides).astype(np.float32)
            if len(grid) != n_anchors:
                raise DetectorError(
                    f"{self.name}: output has {n_anchors} anchors but input "
                    f"{in_w}x{in_h} implies {len(grid)}; set detector.input_size to the "
                    "size the model was exported with"
                )
            self._grids[key] = (grid, stride_arr)
        return self._grids[key]

    def _decode_ultralytics(self, out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        preds = out.T  # [anchors, 4 + C]
        cls_scores = preds[:, 4:]
        classes = cls_scores.argmax(axis=1)
        scores = cls_scores[np.arange(len(preds)), classes]
        keep = scores >= self.floor
        preds, classes, scores = preds[keep], classes[keep], scores[keep]
        xy, wh = preds[:, :2], preds[:, 2:4]
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
        return boxes.astype(np.float32), scores.astype(np.float32), classes.astype(np.int64)


def _with_dynamic_size(path: Path) -> bytes | None:
    """The model with its input height and width (and the anchor count of its output)
    made dynamic, for rectangular letterboxing; None when the ``onnx`` package is missing
    or the input is not [batch, 3, H, W] with fixed H and W."""
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not all(d.HasField("dim_value") for d in dims[2:]):
        return None
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in model.graph.output:
        out_dims = output.type.tensor_type.shape.dim
        if len(out_dims) == 3 and all(d.HasField("dim_value") for d in out_dims[1:]):
            anchors = max(out_dims[1:], key=lambda d: d.dim_value)
            anchors.dim_param = "anchors"
    data: bytes = model.SerializeToString()
    return data


def _runs_smaller(session: object) -> bool:
    """Whether the model gives one output row per anchor of a smaller input (a model
    with sizes baked into its graph fails or answers the square's count)."""
    inp = session.get_inputs()[0]  # type: ignore[attr-defined]
    w, h = 4 * STRIDE, 2 * STRIDE
    out = session.run(None, {inp.name: np.zeros((1, 3, h, w), np.float32)})[0]  # type: ignore[attr-defined]
    anchors = sum((w // s) * (h // s) for s in (8, 16, 32))
    return anchors in out.shape[1:]


def _guess_format(out_shape: list[object], n_classes: int) -> str:
    dims = [d if isinstance(d, int) else -1 for d in out_shape]
    if len(dims) != 3:
        raise DetectorError(f"unsupported ONNX output shape {out_shape}: expected 3 dimensions")
    _, a, b = dims
    if b == 6:
        return "ultralytics_nms"
    if b == 5 + n_classes or (b > 5 and a > b):
        return "yolox"
    if a == 4 + n_classes or (a > 4 and b > a):
        return "ultralytics"
    raise DetectorError(f"cannot tell the format of ONNX output shape {out_shape}")


def default_threads() -> int:
    """One intra-op thread per session: cameras run in parallel sessions instead."""
    return int(os.environ.get("SHAOBING_ORT_THREADS", "1"))
