"""Region detection (as Frigate does): small, far or crowded objects at native resolution.

The whole-frame pass sees the frame scaled down to the model's input (416 px): a car
10x8 px at the edge of an expressway view, or a packed crowd, falls below what the model
can see. Region detection also runs the detector on crops of the *native* frame (on by
default where it matters: ``detect.regions: auto``, see analytics/pipeline.py):

* over each watched zone small enough to fit in one crop (a far lane, a gate), on every
  detection frame including keep-alives, zoomed in up to 2x;
* around the small objects the tracker follows (``track``), zoomed in 2x, once a second;
* around motion the whole-frame pass does not explain, largest first; at most
  ``max_regions`` crops per frame for these two;
* one window of a slow ``scan`` of the frame (or of the watched zones' extent), zoomed in
  2x, which finds small objects that never moved;
* over a grid of overlapping ``tiles``: a fixed grid on every detection frame, or (for a
  crowd rule) :func:`auto_tiles` every ``crowd_tiles_s``.

Boxes come back in analysed-frame pixels. A crop's box touching an edge of the crop
that is not an edge of the frame is cut: it is dropped where a whole box of the same
object from another pass (the whole frame, another crop, an overlapping tile) covers it,
and kept where nothing else sees that object. Everything is then merged with class-aware
non-maximum suppression (and car/bus/truck as one group), keeping the best-scored box.

Pure functions; the detector is passed in (its batch may be fixed at 1: one call per crop).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.detectors.base import VEHICLE_GROUP, Detector, merge_class_group, nms_per_class
from analytics.types import Detections

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 in native (source) pixels

EDGE_PX = 3.0  # a box within this many crop pixels of a crop edge touches it
TILE_OVERLAP = 0.2


@dataclass(frozen=True)
class Crop:
    rect: Rect
    kind: str  # "motion", "track", "zone", "scan" or "tile"


def window_around(cx: float, cy: float, size: tuple[int, int], source: tuple[int, int]) -> Rect:
    """A ``size`` window centred on (cx, cy), shifted to lie inside the source frame."""
    sw, sh = source
    w, h = min(size[0], sw), min(size[1], sh)
    x1 = int(round(min(max(cx - w / 2, 0), sw - w)))
    y1 = int(round(min(max(cy - h / 2, 0), sh - h)))
    return x1, y1, x1 + w, y1 + h


def contains(outer: Rect, inner: np.ndarray) -> bool:
    return bool(
        inner[0] >= outer[0]
        and inner[1] >= outer[1]
        and inner[2] <= outer[2]
        and inner[3] <= outer[3]
    )


def auto_tiles(source_size: tuple[int, int], input_size: tuple[int, int]) -> tuple[int, int]:
    """The tile grid that covers the native frame with model-sized tiles at about native
    resolution, at most 2x2: 640x360 → 2x1, a 360x640 portrait → 1x2, 1080p → 2x2 (each
    tile then still 2.3x finer than the whole-frame pass)."""
    cols = int(min(2, max(1, np.ceil(source_size[0] / input_size[0] - 0.15))))
    rows = int(min(2, max(1, np.ceil(source_size[1] / input_size[1] - 0.15))))
    return cols, rows


def tile_rects(source_size: tuple[int, int], tiles: tuple[int, int]) -> list[Crop]:
    """An overlapping grid of ``tiles`` ([columns, rows]) over the native frame."""
    sw, sh = source_size
    cols, rows = tiles
    tw = min(sw, int(np.ceil(sw / (cols - (cols - 1) * TILE_OVERLAP))))
    th = min(sh, int(np.ceil(sh / (rows - (rows - 1) * TILE_OVERLAP))))
    out = []
    for r in range(rows):
        for c in range(cols):
            x1 = 0 if cols == 1 else int(round(c * (sw - tw) / (cols - 1)))
            y1 = 0 if rows == 1 else int(round(r * (sh - th) / (rows - 1)))
            out.append(Crop((x1, y1, x1 + tw, y1 + th), "tile"))
    return out


def scan_grid(
    source_size: tuple[int, int], input_size: tuple[int, int], area: Rect | None = None
) -> list[Crop]:
    """Windows of half the model's input at native resolution (zoomed in 2x: a car of 20x12
    native pixels is seen at 40x24), overlapping, covering ``area`` (native pixels; default
    the whole frame), for the slow scan that finds small objects that never moved."""
    sw, sh = source_size
    ax1, ay1, ax2, ay2 = area if area is not None else (0, 0, sw, sh)
    w, h = min(sw, int(input_size[0]) // 2), min(sh, int(input_size[1]) // 2)
    aw, ah = max(ax2 - ax1, w), max(ay2 - ay1, h)
    cols = max(1, int(np.ceil((aw - w) / (0.85 * w) - 1e-9)) + 1)
    rows = max(1, int(np.ceil((ah - h) / (0.85 * h) - 1e-9)) + 1)
    out = []
    for r in range(rows):
        for c in range(cols):
            cx = ax1 + w / 2 + (0 if cols == 1 else c * (aw - w) / (cols - 1))
            cy = ay1 + h / 2 + (0 if rows == 1 else r * (ah - h) / (rows - 1))
            out.append(Crop(window_around(cx, cy, (w, h), source_size), "scan"))
    return out


def explained(blobs: np.ndarray, whole: np.ndarray, min_height: float) -> np.ndarray:
    """Which motion blobs (analysed px) a whole-frame detection at least ``min_height`` tall
    covers by half their area: the whole-frame pass already sees that moving object well."""
    out = np.zeros(len(blobs), dtype=bool)
    big = whole[(whole[:, 3] - whole[:, 1]) >= min_height] if len(whole) else whole
    if not len(blobs) or not len(big):
        return out
    a, b = blobs[:, None, :], big[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    area = np.maximum((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]), 1e-6)
    return (iw * ih / area >= 0.5).any(axis=1)


def zoomed_window(g: np.ndarray, win: tuple[int, int], source_size: tuple[int, int]) -> Rect:
    """A window over the native box ``g`` (a zone or a group of small objects) with some
    context, zoomed in up to 2x where ``g`` is small (the detector upscales the crop to its
    input): a far car of 15x10 native pixels is seen at 30x20."""
    side = max(g[2] - g[0], g[3] - g[1]) * 1.25
    size = (int(min(win[0], max(side, win[0] / 2))), int(min(win[1], max(side, win[1] / 2))))
    return window_around((g[0] + g[2]) / 2, (g[1] + g[3]) / 2, size, source_size)


def plan_crops(
    *,
    source_size: tuple[int, int],
    frame_size: tuple[int, int],
    input_size: tuple[int, int],
    motion_boxes: np.ndarray,
    zone_boxes: np.ndarray,
    max_regions: int,
    tiles: tuple[int, int] | None,
    track_boxes: np.ndarray | None = None,
    track_offset: int = 0,
) -> list[Crop]:
    """The crops to detect on, in native pixels.

    ``motion_boxes``, ``zone_boxes`` and ``track_boxes`` (small tracked objects) are
    (N, 4) xyxy in analysed-frame pixels. Crops only help where the native frame is larger
    than the analysed one; a motion blob too large for a crop is left to the whole-frame
    pass. At most ``max_regions`` crops around tracked objects and motion, the tracked
    objects first (they are known to be there; a stopped car makes no motion), their groups
    taken in turn from ``track_offset`` when there are more than that.
    """
    sw, sh = source_size
    scale = sw / frame_size[0]
    crops: list[Crop] = tile_rects(source_size, tiles) if tiles is not None else []
    if scale < 1.2:
        return crops  # native is about the analysed size: crops would see nothing new
    win = (int(input_size[0]), int(input_size[1]))
    for g in group_boxes(zone_boxes * scale, win):
        crops.append(Crop(zoomed_window(g, win, source_size), "zone"))
    n = 0
    if track_boxes is not None and len(track_boxes):
        # Zoomed in 2x, as the scan that found them: a window of half the input per group.
        half = (win[0] // 2, win[1] // 2)
        groups = group_boxes(track_boxes * scale, half)
        for g in groups[track_offset % len(groups) :] + groups[: track_offset % len(groups)]:
            if n >= max_regions:
                break
            crops.append(Crop(window_around((g[0] + g[2]) / 2, (g[1] + g[3]) / 2, half,
                                            source_size), "track"))  # fmt: skip
            n += 1
    order = np.argsort(
        -(motion_boxes[:, 2] - motion_boxes[:, 0]) * (motion_boxes[:, 3] - motion_boxes[:, 1])
    )
    for m in motion_boxes[order] * scale:
        if n >= max_regions:
            break
        if m[2] - m[0] > win[0] or m[3] - m[1] > win[1]:
            continue  # big: the whole-frame pass sees it well
        if any(contains(c.rect, m) for c in crops):
            continue  # already inside a zone crop, a tile or an earlier crop
        crops.append(Crop(zoomed_window(m, win, source_size), "motion"))
        n += 1
    return crops


def group_boxes(boxes: np.ndarray, win: tuple[int, int]) -> list[np.ndarray]:
    """Boxes that fit in a ``win`` window, grouped greedily (left to right) so that each
    group's union still fits: one crop for several small zones close together."""
    groups: list[np.ndarray] = []
    for b in boxes[np.argsort(boxes[:, 0])] if len(boxes) else []:
        if b[2] - b[0] > win[0] or b[3] - b[1] > win[1]:
            continue  # too large for a crop: the whole-frame pass sees it at its scale
        for i, g in enumerate(groups):
            u = np.array([min(g[0], b[0]), min(g[1], b[1]), max(g[2], b[2]), max(g[3], b[3])])
            if u[2] - u[0] <= win[0] and u[3] - u[1] <= win[1]:
                groups[i] = u
                break
        else:
            groups.append(np.asarray(b, dtype=np.float64))
    return groups


def cut_by_crop(xyxy: np.ndarray, rect: Rect, source_size: tuple[int, int]) -> np.ndarray:
    """Which boxes (native pixels) touch an edge of the crop that is not a frame edge."""
    x1, y1, x2, y2 = rect
    sw, sh = source_size
    cut = np.zeros(len(xyxy), dtype=bool)
    if x1 > 0:
        cut |= xyxy[:, 0] <= x1 + EDGE_PX
    if y1 > 0:
        cut |= xyxy[:, 1] <= y1 + EDGE_PX
    if x2 < sw:
        cut |= xyxy[:, 2] >= x2 - EDGE_PX
    if y2 < sh:
        cut |= xyxy[:, 3] >= y2 - EDGE_PX
    return cut


def detect_crops(
    detector: Detector,
    native: np.ndarray,
    crops: list[Crop],
    frame_size: tuple[int, int],
) -> tuple[Detections, np.ndarray]:
    """Detections on each crop of the native BGR frame, in analysed-frame pixels, and which
    of them are cut by an inner crop edge (for :func:`merge`)."""
    if not crops:
        return Detections.empty(), np.zeros(0, dtype=bool)
    sh, sw = native.shape[:2]
    to_frame = frame_size[0] / sw
    found = detector.detect(
        [np.ascontiguousarray(native[y1:y2, x1:x2]) for x1, y1, x2, y2 in (c.rect for c in crops)]
    )
    parts, cuts = [], []
    for crop, det in zip(crops, found, strict=True):
        if not len(det):
            continue
        x1, y1 = crop.rect[:2]
        boxes = det.xyxy + np.array([x1, y1, x1, y1], dtype=np.float32)
        cuts.append(cut_by_crop(boxes, crop.rect, (sw, sh)))
        parts.append(Detections(boxes * to_frame, det.confidence, det.class_id))
    if not parts:
        return Detections.empty(), np.zeros(0, dtype=bool)
    return Detections.merge(parts), np.concatenate(cuts)


def _group(class_id: np.ndarray) -> np.ndarray:
    return np.where(np.isin(class_id, VEHICLE_GROUP), VEHICLE_GROUP[0], class_id)


def drop_cut(det: Detections, cut: np.ndarray, min_cover: float = 0.5) -> Detections:
    """Drop the boxes cut by a crop edge that another, whole box of the same object class
    (car/bus/truck as one) covers by ``min_cover`` of their area: that box sees the whole
    object. A cut box nothing else sees is kept (part of an object beats none)."""
    if not cut.any():
        return det
    whole = np.flatnonzero(~cut)
    keep = np.ones(len(det), dtype=bool)
    groups = _group(det.class_id)
    for i in np.flatnonzero(cut):
        same = whole[groups[whole] == groups[i]]
        if not len(same):
            continue
        a, b = det.xyxy[i], det.xyxy[same]
        iw = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
        ih = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
        area = max(float((a[2] - a[0]) * (a[3] - a[1])), 1e-6)
        keep[i] = not bool((iw * ih / area >= min_cover).any())
    return det[keep]


def merge(
    whole: Detections, regions: Detections, iou: float, cut: np.ndarray | None = None
) -> Detections:
    """The whole-frame pass and the crops' detections as one set: cut boxes another box
    covers dropped (:func:`drop_cut`), then class-aware NMS (best score kept; car/bus/truck
    suppress each other)."""
    if not len(regions):
        return whole
    both = Detections.merge([whole, regions])
    if cut is not None:
        both = drop_cut(both, np.concatenate([np.zeros(len(whole), dtype=bool), cut]))
    keep = nms_per_class(both.xyxy, both.confidence, both.class_id, iou)
    return merge_class_group(both[np.sort(keep)])
