"""Which tracked objects are active: moving now, not parked or standing still.

The recorder's ``objects`` mode records around them, and every recorded segment counts the
seconds that had any (the recording timeline's activity marks). A parked car or a person
waiting at a stop is tracked all day; it is not activity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from analytics.config import VEHICLES
from analytics.history import TrackHistory
from analytics.types import Detections

#: What counts as activity: people, and what people ride or drive.
ACTIVE_CLASSES = frozenset(["person", "bicycle", *VEHICLES])

#: Seconds of a track's history looked at.
WINDOW_S = 3.0
#: An object moved when its anchor went this many of its box heights within the window.
MIN_SHIFT = 0.3


def moving_objects(
    tracked: Detections, history: TrackHistory, t: float, class_names: Sequence[str],
    window_s: float = WINDOW_S, min_shift: float = MIN_SHIFT,
) -> int:  # fmt: skip
    """How many of ``tracked`` (the tracks the rules see) are people or vehicles
    (:data:`ACTIVE_CLASSES`) that moved at least ``min_shift`` of their box height during
    the last ``window_s`` seconds (the farthest any sample of the window is from the
    latest: a walker who turned back still moved)."""
    active = [i for i, name in enumerate(class_names) if name in ACTIVE_CLASSES]
    moving = 0
    for tid in tracked.tracker_id[np.isin(tracked.class_id, active)].tolist():
        s = history.samples(int(tid), since=t - window_s)
        if len(s) < 2:
            continue
        x, y, h = s[-1, 1], s[-1, 2], max(float(s[-1, 4]), 1.0)
        far = max(math.hypot(float(px) - x, float(py) - y) for px, py in s[:-1, 1:3])
        if far >= min_shift * h:
            moving += 1
    return moving
