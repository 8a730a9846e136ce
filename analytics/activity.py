"""Which tracked objects are active: moving now, not parked or standing still.

The recorder's ``objects`` mode records around them, and every recorded segment counts the
seconds that had any (the recording timeline's activity marks). A parked car or a person
waiting at a stop is tracked all day; it is not activity.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analytics.config import VEHICLES
from analytics.history import TrackHistory
from analytics.types import Detections, class_ids

#: What counts as activity: people, and what people ride or drive.
ACTIVE_CLASSES = frozenset(["person", "bicycle", *VEHICLES])

#: Seconds of a track's history looked at.
WINDOW_S = 3.0
#: An object moved when its anchor went this many of its box heights within the window.
MIN_SHIFT = 0.3


def moving_objects(
    tracked: Detections, history: TrackHistory, t: float, class_names: Sequence[str],
    window_s: float = WINDOW_S, min_shift: float = MIN_SHIFT, *, first: bool = False,
) -> int:  # fmt: skip
    """How many of ``tracked`` (the tracks the rules see) are people or vehicles
    (:data:`ACTIVE_CLASSES`) that moved at least ``min_shift`` of their box height during
    the last ``window_s`` seconds (the farthest any sample of the window is from the
    latest, as |dx| + |dy|: a walker who turned back still moved). ``first``: stop at the
    first one (whether any moved)."""
    active = class_ids(class_names, ACTIVE_CLASSES)
    moving = 0
    for tid in tracked.tracker_id[np.isin(tracked.class_id, active)].tolist():
        far = history.moved(int(tid), t - window_s)
        if far is not None and far >= min_shift:
            moving += 1
            if first:
                break
    return moving
