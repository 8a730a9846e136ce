"""Cooldown: at most one alert per (camera, rule, subject) within the cooldown."""

from __future__ import annotations

import threading

from analytics.types import Event


class CooldownGate:
    """At most one alert per (camera, rule, track or key) within the cooldown, on the
    caller's clock. Thread-safe: analysis workers and the watchdog share one gate."""

    MAX_KEYS = 10_000

    def __init__(self) -> None:
        self._last: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def allow(self, event: Event, t: float, cooldown_s: float) -> bool:
        subject = event.key or str(event.track_ids[0] if event.track_ids else -1)
        key = (event.camera_id, event.rule, subject)
        with self._lock:
            last = self._last.get(key)
            if last is not None and t - last < cooldown_s:
                return False
            self._last[key] = t
            if len(self._last) > self.MAX_KEYS:  # forget expired keys on very busy hubs
                horizon = t - cooldown_s
                self._last = {k: v for k, v in self._last.items() if v >= horizon}
            return True
