"""What an object looks like: a colour histogram of its box, to tell people apart.

The track history (analytics/history.py) bridges an id switch only between boxes that look
alike: a person in a red coat lost behind a pillar is not continued by a person in a black
one who appears there. The signature is a hue/saturation/value histogram (8 x 4 x 4 bins)
of the box's inner part (the sides trimmed, where the background shows), normalised to sum
1 and smoothed over neighbouring bins; two signatures are compared by correlation
(OpenCV's ``HISTCMP_CORREL``: 1 the same, around 0 unrelated). Boxes too small to carry
colour (under ``MIN_PX`` either way once trimmed) have no signature (a row of NaN): the
history then refuses to bridge them.

Pure functions of the analysed frame and the boxes; cost: one ``cv2.calcHist`` per tracked
box on detection frames (tens of microseconds each).
"""

from __future__ import annotations

import cv2
import numpy as np

BINS = (8, 4, 4)
SIZE = BINS[0] * BINS[1] * BINS[2]
MIN_PX = 6
#: Trimmed from each side of the box (fractions of its width, height) before the histogram.
TRIM_X, TRIM_Y = 0.2, 0.1


def signatures(image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """(N, SIZE) float32 colour signatures of the boxes (analysed px) in the BGR ``image``;
    a row of NaN where the box is too small or outside the image."""
    out = np.full((len(xyxy), SIZE), np.nan, dtype=np.float32)
    if not len(xyxy):
        return out
    h_img, w_img = image.shape[:2]
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(xyxy, dtype=np.float64).tolist()):
        dx, dy = (x2 - x1) * TRIM_X, (y2 - y1) * TRIM_Y
        a, b = max(0, int(round(x1 + dx))), min(w_img, int(round(x2 - dx)))
        c, d = max(0, int(round(y1 + dy))), min(h_img, int(round(y2 - dy)))
        if b - a < MIN_PX or d - c < MIN_PX:
            continue
        hsv = cv2.cvtColor(np.ascontiguousarray(image[c:d, a:b]), cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, list(BINS), [0, 180, 0, 256, 0, 256])
        total = float(hist.sum())
        if total > 0:
            out[i] = _smooth(hist / total).reshape(-1)
    return out


def _smooth(hist: np.ndarray) -> np.ndarray:
    """Spread each bin a quarter into its neighbours (hue wraps round): a colour near a bin
    edge, a little lighter in the next frame, still matches itself."""
    out = hist
    for axis in range(3):
        prev = np.roll(out, 1, axis=axis)
        nxt = np.roll(out, -1, axis=axis)
        if axis > 0:  # saturation and value do not wrap: the edge bins keep their share
            first = np.take(out, [0], axis=axis)
            last = np.take(out, [-1], axis=axis)
            np.put_along_axis(prev, np.zeros_like(first, dtype=np.intp), first, axis=axis)
            end = np.full_like(last, out.shape[axis] - 1, dtype=np.intp)
            np.put_along_axis(nxt, end, last, axis=axis)
        out = 0.5 * out + 0.25 * prev + 0.25 * nxt
    return out


def similarity(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Correlation of two signatures (1: the same colours); None when either is unknown."""
    if a is None or b is None or np.isnan(a).any() or np.isnan(b).any():
        return None
    return float(cv2.compareHist(a.astype(np.float32), b.astype(np.float32), cv2.HISTCMP_CORREL))
