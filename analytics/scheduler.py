"""Analysis workers: frames from many cameras → detector → per-camera tracking and rules.

Readers hand in sampled frames; each camera keeps at most ``depth`` pending
frames (the oldest is dropped and counted when analysis falls behind, so a
slow detector never grows memory or latency). A camera is analysed by one
worker at a time, in frame order; cameras take turns on the workers.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from analytics.activity import moving_objects
from analytics.detectors.base import Detector
from analytics.motion import GateResult
from analytics.pipeline import CameraAnalytics
from analytics.types import Detections, Event
from camera_registry.status import RateMeter, StatusBoard
from core import metrics
from ingest.reader import SampledFrame

log = logging.getLogger(__name__)

EventHandler = Callable[[Event, SampledFrame, CameraAnalytics], None]
#: Each analysed frame's tracked boxes (the track index); must return at once.
TrackedHandler = Callable[[str, SampledFrame, Detections], None]
#: One camera's analysed frames with their tracked boxes and its analysis (a patrol visit
#: keeps what it saw, shaobing/patrol.py); runs on the analysis thread: must be cheap.
FrameObserver = Callable[[SampledFrame, Detections, CameraAnalytics], None]


class ActivitySink(Protocol):
    """Told what moved in each camera's analysed frames, at wall time ``t`` (the recorder:
    its motion and objects modes, and each segment's seconds with activity). Called on the
    analysis threads: must return at once."""

    def motion(self, camera_id: str, t: float) -> None:
        """Motion anywhere in the frame (the motion gate's grey difference and thresholds)."""

    def wants_objects(self, camera_id: str, t: float) -> bool:
        """Whether to look for moving tracked objects in this camera's frame now."""

    def objects(self, camera_id: str, t: float) -> None:
        """Moving people or vehicles among the tracks (analytics/activity.py)."""


@dataclass
class CameraSlot:
    camera_id: str
    analytics: CameraAnalytics
    depth: int = 2
    pending: deque[SampledFrame] = field(default_factory=deque)
    scheduled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    latest: SampledFrame | None = None
    last_tracked: Detections | None = None
    meter: RateMeter = field(default_factory=RateMeter)
    observer: FrameObserver | None = None


class AnalysisPool:
    def __init__(
        self,
        detector: Detector,
        status: StatusBoard,
        on_event: EventHandler,
        *,
        workers: int = 2,
        batch_size: int = 1,
        batch_timeout_s: float = 0.0,
        on_tracked: TrackedHandler | None = None,
    ) -> None:
        self.detector = detector
        self.status = status
        self.on_event = on_event
        self.on_tracked = on_tracked
        #: Told of the motion and moving objects of each analysed frame (the recorder).
        self.activity: ActivitySink | None = None
        self.slots: dict[str, CameraSlot] = {}
        self.batch_size = batch_size
        self.batch_timeout_s = batch_timeout_s

        self._ready: queue.Queue[CameraSlot | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._work, name=f"analysis-{i}", daemon=True)
            for i in range(workers)
        ]

    @property
    def threads(self) -> list[threading.Thread]:
        return list(self._threads)

    def add_camera(self, analytics: CameraAnalytics, observer: FrameObserver | None = None) -> None:
        """Analyse a camera; ``observer`` sees each of its analysed frames."""
        camera_id = analytics.cfg.camera_id
        self.slots[camera_id] = CameraSlot(camera_id, analytics, observer=observer)

    def replace_analytics(self, analytics: CameraAnalytics) -> None:
        """New zones/rules for a running camera: its next frame is analysed with them
        (tracks and rule clocks start afresh)."""
        slot = self.slots[analytics.cfg.camera_id]
        with slot.lock:
            slot.analytics = analytics
            slot.last_tracked = None

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        for _ in self._threads:
            self._ready.put(None)
        for t in self._threads:
            t.join(timeout=5)

    def submit(self, frame: SampledFrame) -> None:
        """Called by a reader thread for each sampled frame."""
        slot = self.slots[frame.camera_id]
        with slot.lock:
            slot.latest = frame
            if len(slot.pending) >= slot.depth:
                slot.pending.popleft()
                st = self.status.get(slot.camera_id)
                st.frames_dropped += 1
            slot.pending.append(frame)
            if slot.scheduled:
                return
            slot.scheduled = True
        self._ready.put(slot)

    def _work(self) -> None:
        while True:
            first = self._ready.get()
            if first is None:
                return
            batch = self._fill_batch(first)
            jobs = []
            for slot in batch:
                with slot.lock:
                    frame = slot.pending.popleft() if slot.pending else None
                if frame is not None:
                    jobs.append((slot, frame))
            self._analyse(jobs)
            for slot in batch:
                with slot.lock:
                    requeue = bool(slot.pending)
                    if not requeue:
                        slot.scheduled = False
                if requeue:
                    self._ready.put(slot)  # behind the other cameras: take turns

    def _fill_batch(self, first: CameraSlot) -> list[CameraSlot]:
        """Up to ``batch_size`` cameras with frames, waiting at most ``batch_timeout_s``."""
        batch = [first]
        deadline = time.monotonic() + self.batch_timeout_s
        while len(batch) < self.batch_size:
            remaining = deadline - time.monotonic()
            try:
                slot = (
                    self._ready.get(timeout=remaining)
                    if remaining > 0
                    else self._ready.get_nowait()
                )
            except queue.Empty:
                break
            if slot is None:  # stopping: hand the sentinel back to the other workers
                self._ready.put(None)
                break
            batch.append(slot)
        return batch

    def _analyse(self, jobs: list[tuple[CameraSlot, SampledFrame]]) -> None:
        gated = []
        try:
            for slot, frame in jobs:
                gated.append(slot.analytics.check_motion(frame.image, frame.t, frame.source_size))
            to_detect = [frame.image for (_, frame), g in zip(jobs, gated, strict=True) if g.detect]
            started = time.perf_counter()
            found = iter(self.detector.detect(to_detect) if to_detect else [])
            if to_detect:
                per_frame = (time.perf_counter() - started) / len(to_detect)
                metrics.INFERENCE_SECONDS.observe(per_frame)
                metrics.INFERENCE_BATCH.observe(len(to_detect))
        except Exception as exc:  # noqa: BLE001 - a bad batch must not stop analysis
            log.exception("analysis batch failed")
            for slot, _ in jobs:
                self.status.update(slot.camera_id, last_error=f"analysis: {exc}",
                                   last_error_at=time.time())  # fmt: skip
            return
        for (slot, frame), gate in zip(jobs, gated, strict=True):
            detections = next(found) if gate.detect else None
            self._process(slot, frame, detections, gate)

    def _process(
        self, slot: CameraSlot, frame: SampledFrame, detections: Detections | None, gate: GateResult
    ) -> None:
        try:
            activity = self.activity
            if gate.frame_motion and activity is not None:
                activity.motion(slot.camera_id, frame.wall_ts)
            if detections is not None and slot.analytics.wants_regions:
                detections = slot.analytics.detect_regions(
                    self.detector, detections, frame.source_bgr, gate,
                    frame.source_size, frame.frame_size,
                )  # fmt: skip
            tracked, events = slot.analytics.process(
                detections,
                t=frame.t,
                pts=frame.pts,
                wall_ts=frame.wall_ts,
                source_size=frame.source_size,
                frame_size=frame.frame_size,
                gate=gate,
                image=frame.image,  # colours: id-switch bridges (analytics/history)
            )
            slot.last_tracked = tracked
            if (
                activity is not None and len(tracked)
                and activity.wants_objects(slot.camera_id, frame.wall_ts)
                and moving_objects(tracked, slot.analytics.history, frame.t,
                                   slot.analytics.class_names, first=True)
            ):  # fmt: skip
                activity.objects(slot.camera_id, frame.wall_ts)
            for event in events:
                self.on_event(event, frame, slot.analytics)
            if self.on_tracked is not None:
                self.on_tracked(slot.camera_id, frame, tracked)
            if slot.observer is not None:
                slot.observer(frame, tracked, slot.analytics)
        except Exception as exc:  # noqa: BLE001 - one bad frame must not stop analysis
            log.exception("camera %s: analysis failed", slot.camera_id)
            self.status.update(
                slot.camera_id, last_error=f"analysis: {exc}", last_error_at=time.time()
            )
            return
        st = self.status.get(slot.camera_id)
        faults = slot.analytics.faults()
        if faults != st.faults:
            self.status.update(slot.camera_id, faults=faults)
        st.frames_analysed += 1
        if detections is None:
            st.frames_gated += 1
        st.analysed_fps = round(slot.meter.tick(), 2)
