"""What an object looks like: a colour histogram of its box, to tell people apart.

The track history (analytics/history.py) bridges an id switch only between boxes that look
alike: a person in a red coat lost behind a pillar is not continued by a person in a black
one who appears there. The signature is a hue/saturation/value histogram (8 x 4 x 4 bins)
of the box's inner part (the sides trimmed, where the background shows), normalised to sum
1 and smoothed over neighbouring bins; two signatures are compared by correlation
(OpenCV's ``HISTCMP_CORREL``: 1 the same, around 0 unrelated). Boxes too small to carry
colour (under ``MIN_PX`` either way once trimmed) have no signature (a row of NaN): the
history then refuses to bridge them.

Pure functions of the analysed frame and the boxes; cost: one HSV conversion of the
rectangle around the tracked boxes and one ``cv2.calcHist`` per box (bench/bench_identity.py).
"""

from __future__ import annotations

import cv2
import numpy as np

BINS = (8, 4, 4)
SIZE = BINS[0] * BINS[1] * BINS[2]
MIN_PX = 6
#: Trimmed from each side of the box (fractions of its width, height) before the histogram.
TRIM_X, TRIM_Y = 0.2, 0.1


#: The histogram's ranges for ``cv2.calcHist``: hue 0-179 in 8 bins, S and V 0-255 in 4.
_RANGES = [0, 180, 0, 256, 0, 256]
#: Bin of each hue, saturation and value level, weighted so that their sum is the joint bin:
#: what ``cv2.calcHist`` does with ``_RANGES`` (the tests check it level by level).
_LUT_H = np.minimum(np.arange(256) * BINS[0] // 180, BINS[0] - 1) * BINS[1] * BINS[2]
_LUT_S = np.arange(256) * BINS[1] // 256 * BINS[2]
_LUT_V = np.arange(256) * BINS[2] // 256


def signatures(image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """(N, SIZE) float32 colour signatures of the boxes (analysed px) in the BGR ``image``;
    a row of NaN where the box is too small or outside the image."""
    out = np.full((len(xyxy), SIZE), np.nan, dtype=np.float32)
    if not len(xyxy):
        return out
    h_img, w_img = image.shape[:2]
    boxes = []
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(xyxy, dtype=np.float64).tolist()):
        dx, dy = (x2 - x1) * TRIM_X, (y2 - y1) * TRIM_Y
        a, b = max(0, int(round(x1 + dx))), min(w_img, int(round(x2 - dx)))
        c, d = max(0, int(round(y1 + dy))), min(h_img, int(round(y2 - dy)))
        if b - a >= MIN_PX and d - c >= MIN_PX:
            boxes.append((i, a, b, c, d))
    if not boxes:
        return out
    # Only the rectangle around the boxes is converted (HSV is per pixel: the same values
    # as converting the whole frame), then each box counted by OpenCV's 3-D histogram: its
    # uniform bins over ``_RANGES`` put every 8-bit level in the bin of ``_LUT_H``, ``_LUT_S``
    # and ``_LUT_V`` (checked level by level in the tests), counted exactly in float32.
    left, right = min(x[1] for x in boxes), max(x[2] for x in boxes)
    top, bottom = min(x[3] for x in boxes), max(x[4] for x in boxes)
    hsv = cv2.cvtColor(np.ascontiguousarray(image[top:bottom, left:right]), cv2.COLOR_BGR2HSV)
    rows = []
    for i, a, b, c, d in boxes:
        crop = hsv[c - top : d - top, a - left : b - left]
        counts = cv2.calcHist([crop], [0, 1, 2], None, list(BINS), _RANGES).reshape(SIZE)
        out[i] = counts.astype(np.float64) / float((b - a) * (d - c))
        rows.append(i)
    out[rows] = _smooth(out[rows].reshape(-1, *BINS)).reshape(len(rows), SIZE)
    return out


def _smooth(hist: np.ndarray) -> np.ndarray:
    """Spread each bin a quarter into its neighbours (hue wraps round), for (N, 8, 4, 4)
    histograms: a colour near a bin edge, a little lighter in the next frame, still matches
    itself. The neighbours come from index tables built once (``np.roll`` and
    ``put_along_axis`` per call cost more than the arithmetic)."""
    out = hist
    for axis, (prev, nxt) in enumerate(_NEIGHBOURS, start=1):
        out = 0.5 * out + 0.25 * np.take(out, prev, axis=axis) + 0.25 * np.take(out, nxt, axis=axis)
    return out


def _neighbours(n: int, wrap: bool) -> tuple[np.ndarray, np.ndarray]:
    """Index of each bin's previous and next neighbour along an axis of ``n`` bins; at the
    edges of an axis that does not wrap, the bin itself."""
    idx = np.arange(n)
    if wrap:
        return np.roll(idx, 1), np.roll(idx, -1)
    return np.maximum(idx - 1, 0), np.minimum(idx + 1, n - 1)


_NEIGHBOURS = [_neighbours(BINS[0], True), _neighbours(BINS[1], False), _neighbours(BINS[2], False)]


def similarity(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Correlation of two signatures (1: the same colours); None when either is unknown."""
    if a is None or b is None or np.isnan(a).any() or np.isnan(b).any():
        return None
    return float(cv2.compareHist(a.astype(np.float32), b.astype(np.float32), cv2.HISTCMP_CORREL))
