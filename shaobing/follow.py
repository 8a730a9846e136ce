"""The embedded hub follows the camera registry: a camera enabled or disabled after the
start (an imported GB/T 28181 channel enabled through the API, an import, an SQL edit)
starts or stops without a restart.

The same change feed the distributed workers plan their leases on
(:meth:`shaobing.store.Store.camera_index`: the rows whose ``updated_at`` moved since the
last read, with a margin), applied to the one worker of the embedded hub. A round costs
one indexed query of the changed rows; every :attr:`SWEEP_S` the whole id list is read
again to notice deleted cameras.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from shaobing.store import Store

log = logging.getLogger(__name__)


class RegistryFollower:
    """Apply the registry's enable/disable/delete changes that did not come through the
    API (which applies its own at once): ``apply(camera_id)`` is the worker role's one
    way of taking a registry row into account (start, stop, patrol, report unusable)."""

    #: Seconds between reads of the changed rows.
    INTERVAL_S = 2.0
    #: Rows changed this long before the last read are read again (late commits).
    MARGIN_S = 5.0
    #: Seconds between full reads of the ids (deletions leave no changed row).
    SWEEP_S = 60.0

    def __init__(
        self,
        apply: Callable[[str], None],
        running: Callable[[str], bool],
        known: Callable[[], list[str]],
        store: Store,
        interval_s: float | None = None,
    ) -> None:
        self.apply = apply
        self.running = running
        self.known = known  # the cameras this worker runs now
        self.store = store
        self.interval_s = self.INTERVAL_S if interval_s is None else interval_s
        self._read_at = time.time()
        self._swept = time.monotonic()
        # camera id -> (updated_at, enabled) of the row last applied: a row seen again
        # (the margin) or one that cannot be used is not applied over and over
        self._applied: dict[str, tuple[float, bool]] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="registry-follow", daemon=True)
        self.started: list[str] = []  # what it did (logged, and read by tests)
        self.stopped: list[str] = []

    def mark(self) -> None:
        """Read changes from now on (call before the worker loads its cameras)."""
        self._read_at = time.time()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.round()
            except Exception:  # noqa: BLE001 - the follower must outlive any error
                log.exception("camera registry follow round failed; retrying")

    def round(self) -> None:
        asked = time.time()
        rows = self.store.camera_index(since=self._read_at - self.MARGIN_S)
        self._read_at = asked
        for camera_id, enabled, at in rows:
            if enabled == self.running(camera_id) or self._applied.get(camera_id) == (at, enabled):
                continue
            self._applied[camera_id] = (at, enabled)
            self.apply(camera_id)
            (self.started if enabled else self.stopped).append(camera_id)
            log.info("camera %s %s in the registry: applied", camera_id,
                     "enabled" if enabled else "disabled")  # fmt: skip
        if time.monotonic() - self._swept > self.SWEEP_S:
            self._swept = time.monotonic()
            ids = {cid for cid, _, _ in self.store.camera_index()}
            for camera_id in [c for c in self.known() if c not in ids]:
                self._applied.pop(camera_id, None)
                self.apply(camera_id)  # gone from the registry: forgotten
                self.stopped.append(camera_id)
                log.info("camera %s deleted from the registry: stopped", camera_id)
