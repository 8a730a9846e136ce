"""Evidence: the snapshot of the frame that fired, and an annotated copy.

Rendered next to the frames (the frame never leaves the process that decoded it)
by :class:`alerts.producer.AlertProducer`'s own thread, never by an analysis worker, and
written through the evidence storage port (:mod:`core.storage`) under the key
``<camera>/<YYYYMMDD>/<alert>.jpg`` (and ``.annotated.jpg``).
"""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from alerts.domain.model import EvidenceRef
from alerts.fonts import cjk_font_path
from alerts.labels import TYPE_ZH, UNIT_ZH, class_zh
from analytics.types import Event
from core.storage import EvidenceStorage, as_storage

BOX_COLOUR = (0, 0, 255)  # BGR red
ZONE_COLOUR = (0, 215, 255)  # BGR amber


@dataclass
class Snapshot:
    """A written evidence file: its reference in the storage and its SHA-256."""

    ref: str
    sha256: str

    @property
    def path(self) -> str:
        """The reference (the name older callers used)."""
        return self.ref


def evidence_key(camera_id: str, created_at: float, name: str) -> str:
    """``<camera>/<YYYYMMDD>/<name>`` (the UTC day of ``created_at``)."""
    return f"{camera_id}/{time.strftime('%Y%m%d', time.gmtime(created_at))}/{name}"


class EvidenceFrame(Protocol):
    """What evidence needs of a frame (``ingest.reader.SampledFrame`` is one)."""

    @property
    def frame_size(self) -> tuple[int, int]: ...

    def source_bgr(self) -> np.ndarray: ...


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def annotate(
    image: np.ndarray,
    event: Event,
    zone_polygon: np.ndarray | None,
    analysed_size: tuple[int, int],
) -> np.ndarray:
    """Draw the zone and the object's box (given in analysed-frame pixels) on a copy."""
    out = image.copy()
    h, w = out.shape[:2]
    sx, sy = w / analysed_size[0], h / analysed_size[1]
    thickness = max(2, int(round(min(w, h) / 240)))
    if zone_polygon is not None and len(zone_polygon):
        pts = (zone_polygon * np.array([sx, sy])).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [pts], True, ZONE_COLOUR, thickness)
    if event.box is not None:
        x1, y1, x2, y2 = event.box
        p1 = (int(x1 * sx), int(y1 * sy))
        p2 = (int(x2 * sx), int(y2 * sy))
        cv2.rectangle(out, p1, p2, BOX_COLOUR, thickness)
        if draw_label_zh(out, event, p1):
            return out
        label = f"{event.type} {event.object_class} {event.measured:g}{event.unit}"
        scale = max(0.5, min(w, h) / 720)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = max(th + 4, p1[1] - 4)
        cv2.rectangle(out, (p1[0], ty - th - 4), (p1[0] + tw + 4, ty + 2), BOX_COLOUR, -1)
        cv2.putText(
            out,
            label,
            (p1[0] + 2, ty - 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return out


def label_zh(event: Event) -> str:
    """The label of an annotated snapshot: type, class and measured value, in Chinese."""
    unit = UNIT_ZH.get(event.unit, event.unit)
    what = TYPE_ZH.get(event.type, event.type)
    cls = class_zh(event.object_class) if event.object_class else ""
    value = f"{event.measured:.1f}".rstrip("0").rstrip(".")
    return " ".join(p for p in (what, cls, f"{value}{unit}") if p)


def draw_label_zh(image: np.ndarray, event: Event, corner: tuple[int, int]) -> bool:
    """Draw the Chinese label above the box at ``corner``, kept inside the picture;
    False when no CJK font is installed (the caller draws a Latin one)."""
    font_path = cjk_font_path()
    if font_path is None:
        return False
    h, w = image.shape[:2]
    size = max(14, int(min(w, h) / 30))
    font = _font(str(font_path), size)
    text = label_zh(event)
    left, top, right, bottom = (int(v) for v in font.getbbox(text))
    tw, th = right - left + 8, bottom - top + 6
    x = min(max(0, corner[0]), max(0, w - tw))  # inside the picture, left and right
    y = corner[1] - th - 2 if corner[1] - th - 2 >= 0 else min(corner[1] + 2, max(0, h - th))
    cv2.rectangle(image, (x, y), (min(w - 1, x + tw), min(h - 1, y + th)), BOX_COLOUR, -1)
    region = image[y : min(h, y + th), x : min(w, x + tw)]
    pil = Image.fromarray(cv2.cvtColor(region, cv2.COLOR_BGR2RGB))
    ImageDraw.Draw(pil).text((4 - left, 3 - top), text, font=font, fill=(255, 255, 255))
    image[y : y + region.shape[0], x : x + region.shape[1]] = cv2.cvtColor(
        np.asarray(pil), cv2.COLOR_RGB2BGR
    )
    return True


@functools.cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def write_evidence(storage: EvidenceStorage | Path, key: str, data: bytes) -> Snapshot:
    """Store bytes atomically under ``key`` and return the reference and SHA-256 (given a
    plain folder, the reference is the file's absolute path)."""
    ref = as_storage(storage).put(key, data)
    return Snapshot(ref, hashlib.sha256(data).hexdigest())


def render_snapshots(
    alert_id: str,
    camera_id: str,
    created_at: float,
    event: Event,
    frame: EvidenceFrame,
    zone_polygon: np.ndarray | None,
    storage: EvidenceStorage | Path,
    quality: int,
) -> dict[str, EvidenceRef]:
    """Save the full-resolution snapshot and an annotated copy, with their SHA-256."""
    image = frame.source_bgr()
    raw = write_evidence(storage, evidence_key(camera_id, created_at, f"{alert_id}.jpg"),
                         encode_jpeg(image, quality))  # fmt: skip
    marked = annotate(image, event, zone_polygon, frame.frame_size)
    ann = write_evidence(storage, evidence_key(camera_id, created_at, f"{alert_id}.annotated.jpg"),
                         encode_jpeg(marked, quality))  # fmt: skip
    return {
        "snapshot": EvidenceRef(raw.ref, raw.sha256),
        "annotated_snapshot": EvidenceRef(ann.ref, ann.sha256),
    }
