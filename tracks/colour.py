"""The dominant colour of an object, as one name of a fixed palette.

Computed on the central part of the object's crop (the borders are mostly
background: road, wall, sky) in HSV. Each pixel is named: dark pixels black,
unsaturated ones white or grey, the others by hue. Colourful pixels decide when
there are enough of them (a red car is red even though its windows, tyres and
shadow are dark), else the most common of black, grey and white.
"""

from __future__ import annotations

from typing import Literal, get_args

import cv2
import numpy as np

Colour = Literal[
    "red", "orange", "yellow", "green", "cyan", "blue", "purple", "white", "grey", "black"
]
COLOURS: tuple[Colour, ...] = get_args(Colour)
CHROMATIC: tuple[Colour, ...] = COLOURS[:7]
ACHROMATIC: tuple[Colour, ...] = COLOURS[7:]

#: Upper hue bound (OpenCV hue, 0-180) of each chromatic colour, in order; red wraps.
_HUE_BOUNDS: tuple[tuple[int, Colour], ...] = (
    (8, "red"), (20, "orange"), (33, "yellow"), (80, "green"), (100, "cyan"),
    (128, "blue"), (165, "purple"), (180, "red"),
)  # fmt: skip
_CHROMA = 32  # max - min of a pixel's RGB below which it has no colour to speak of
_DARK_V = 70  # an uncoloured pixel darker than this is black
_WHITE_V = 185  # an uncoloured pixel brighter than this is white
#: Share of colourful pixels from which a colour wins over black/grey/white.
CHROMATIC_SHARE = 0.2
#: The central part of the crop kept: this fraction of its width and height.
CENTRE = 0.6


def _hue_lut() -> np.ndarray:
    lut = np.zeros(181, dtype=np.uint8)
    low = 0
    for high, name in _HUE_BOUNDS:
        lut[low:high] = COLOURS.index(name)
        low = high
    lut[180] = COLOURS.index("red")
    return lut


_LUT = _hue_lut()


def central_region(crop: np.ndarray, fraction: float = CENTRE) -> np.ndarray:
    """The middle ``fraction`` of a crop's width and height (at least one pixel)."""
    h, w = crop.shape[:2]
    dh, dw = int(h * (1 - fraction) / 2), int(w * (1 - fraction) / 2)
    return crop[dh : max(dh + 1, h - dh), dw : max(dw + 1, w - dw)]


def pixel_colours(bgr: np.ndarray) -> np.ndarray:
    """The palette index of every pixel of a BGR image (flattened)."""
    hsv = cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2HSV).reshape(-1, 3)
    h, s, v = hsv[:, 0], hsv[:, 1].astype(np.int32), hsv[:, 2].astype(np.int32)
    # Chroma (max - min), not saturation: a dark pixel's saturation is noise (the blue
    # cast of a camera's shadows), its chroma small.
    plain = s * v < _CHROMA * 255
    achromatic = np.where(
        v >= _WHITE_V,
        COLOURS.index("white"),
        np.where(v < _DARK_V, COLOURS.index("black"), COLOURS.index("grey")),
    )
    out = np.where(plain, achromatic, _LUT[h])
    return out.astype(np.uint8)


def colour_shares(crop: np.ndarray) -> dict[Colour, float]:
    """The share of each palette colour in the crop's central region."""
    if crop.size == 0:
        return {}
    counts = np.bincount(pixel_colours(central_region(crop)), minlength=len(COLOURS))
    total = counts.sum()
    return {name: float(counts[i] / total) for i, name in enumerate(COLOURS) if counts[i]}


def dominant_colour(crop: np.ndarray) -> Colour | None:
    """The colour name of an object from its BGR crop; None for an empty crop."""
    shares = colour_shares(crop)
    if not shares:
        return None
    chromatic = {c: shares.get(c, 0.0) for c in CHROMATIC}
    if sum(chromatic.values()) >= CHROMATIC_SHARE:
        return max(chromatic, key=lambda c: chromatic[c])
    achromatic = {c: shares.get(c, 0.0) for c in ACHROMATIC}
    return max(achromatic, key=lambda c: achromatic[c])
