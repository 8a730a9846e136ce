"""What an object looks like: a colour histogram of its box, to tell people apart.

The track history (analytics/history.py) bridges an id switch only between boxes that look
alike: a person in a red coat lost behind a pillar is not continued by a person in a black
one who appears there. The signature is a hue/saturation/value histogram (8 x 4 x 4 bins)
of the box's inner part (the sides trimmed, where the background shows), normalised to sum
1 and smoothed over neighbouring bins; two signatures are compared by correlation
(OpenCV's ``HISTCMP_CORREL``: 1 the same, around 0 unrelated). Boxes too small to carry
colour (under ``MIN_PX`` either way once trimmed) have no signature (a row of NaN): the
history then refuses to bridge them.

Pure functions of the analysed frame and the boxes; cost: one HSV conversion of the frame
and one ``np.bincount`` per tracked box (bench/bench_identity.py).
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
    # Bin indices of the whole frame once (hue 0-179 in 8 bins, saturation and value in 4).
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    hb = np.minimum(hsv[..., 0].astype(np.int32) * BINS[0] // 180, BINS[0] - 1)
    sb = hsv[..., 1].astype(np.int32) * BINS[1] // 256
    vb = hsv[..., 2].astype(np.int32) * BINS[2] // 256
    bins = (hb * BINS[1] + sb) * BINS[2] + vb
    rows = []
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(xyxy, dtype=np.float64).tolist()):
        dx, dy = (x2 - x1) * TRIM_X, (y2 - y1) * TRIM_Y
        a, b = max(0, int(round(x1 + dx))), min(w_img, int(round(x2 - dx)))
        c, d = max(0, int(round(y1 + dy))), min(h_img, int(round(y2 - dy)))
        if b - a < MIN_PX or d - c < MIN_PX:
            continue
        out[i] = np.bincount(bins[c:d, a:b].ravel(), minlength=SIZE) / float((b - a) * (d - c))
        rows.append(i)
    if rows:
        out[rows] = _smooth(out[rows].reshape(-1, *BINS)).reshape(len(rows), SIZE)
    return out


def _smooth(hist: np.ndarray) -> np.ndarray:
    """Spread each bin a quarter into its neighbours (hue wraps round), for (N, 8, 4, 4)
    histograms: a colour near a bin edge, a little lighter in the next frame, still matches
    itself."""
    out = hist
    for axis in (1, 2, 3):
        prev = np.roll(out, 1, axis=axis)
        nxt = np.roll(out, -1, axis=axis)
        if axis > 1:  # saturation and value do not wrap: the edge bins keep their share
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
