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

from camera_registry.store import invalid_config_error
from shaobing.patrol import Patroller
from shaobing.store import Store
from shaobing.worker import Worker

log = logging.getLogger(__name__)


class RegistryFollower:
    """Start the cameras enabled in the registry and stop the disabled or deleted ones."""

    #: Seconds between reads of the changed rows.
    INTERVAL_S = 2.0
    #: Rows changed this long before the last read are read again (late commits).
    MARGIN_S = 5.0
    #: Seconds between full reads of the ids (deletions leave no changed row).
    SWEEP_S = 60.0

    def __init__(self, worker: Worker, patrol: Patroller, store: Store,
                 interval_s: float | None = None) -> None:  # fmt: skip
        self.worker = worker
        self.patrol = patrol
        self.store = store
        self.interval_s = self.INTERVAL_S if interval_s is None else interval_s
        self._read_at = time.time()
        self._swept = time.monotonic()
        self._invalid: dict[str, float] = {}  # camera id -> updated_at of the unusable row
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

    def _running(self, camera_id: str) -> bool:
        return camera_id in self.worker.readers or camera_id in self.patrol

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
            if enabled and not self._running(camera_id):
                self._take(camera_id, at)
            elif not enabled and self._running(camera_id):
                self._drop(camera_id, "disabled")
        if time.monotonic() - self._swept > self.SWEEP_S:
            self._swept = time.monotonic()
            known = {cid for cid, _, _ in self.store.camera_index()}
            for camera_id in [c for c in list(self.worker.readers) if c not in known]:
                self._drop(camera_id, "deleted")

    def _take(self, camera_id: str, at: float) -> None:
        if self._invalid.get(camera_id) == at:
            return
        try:
            cam = self.store.load_camera(camera_id)
        except ValueError as exc:
            error = invalid_config_error(exc)
            log.error("camera %s: stored config cannot be used, skipped: %s", camera_id, error)
            self.worker.report_invalid(camera_id, error)
            self._invalid[camera_id] = at
            return
        self._invalid.pop(camera_id, None)
        if cam is None or not cam.enabled:
            return
        if cam.analysis == "patrol":
            self.patrol.add(cam)
        else:
            self.worker.add_camera(cam)
        self.started.append(camera_id)
        log.info("camera %s enabled in the registry: started", camera_id)

    def _drop(self, camera_id: str, why: str) -> None:
        if camera_id in self.patrol:
            self.patrol.remove(camera_id)
        self.worker.stop_camera(camera_id, state="disabled")
        self.stopped.append(camera_id)
        log.info("camera %s %s in the registry: stopped", camera_id, why)
