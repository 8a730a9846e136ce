"""The worker: ingest + analytics + evidence for a set of cameras.

It reads the cameras it is given (every enabled camera in the embedded hub; the ones it
holds a lease on in distributed mode, ``shaobing/distributed.py``), analyses them in one
pool, renders the evidence of what the rules noticed and publishes it on the event bus it
is given (the in-process bus behind a spool, or Redis Streams behind a spool with fencing
tokens). It stores no alert and delivers nothing: the alerts and dispatcher roles do.
What it knows of its cameras (counters, overlay, latest frame, live packets) it offers
to the API as :class:`CameraLive`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from alerts.export import open_evidence_paths
from alerts.ports import EventBus
from alerts.producer import AlertProducer, CameraInfo
from analytics.config import CameraConfig, CameraFaultRule
from analytics.detectors import Detector
from analytics.pipeline import CameraAnalytics, CameraRulesConfig
from analytics.pose import shared_pose_model, wants_pose
from analytics.scheduler import AnalysisPool, FrameObserver
from analytics.types import Event
from analytics.vqd import QualityBaseline
from camera_registry.status import DOWN_STATES, CameraStatus, StatusBoard
from camera_registry.store import set_resolved_url
from camera_registry.urls import mask_url, with_credentials
from core.storage import EvidenceStorage
from ingest.live import LiveFeed, TeeSink
from ingest.reader import SampledFrame, StreamReader
from shaobing import metrics
from shaobing.config import LoadedConfig
from shaobing.store import Store
from tracks.service import CameraPlace, TrackIndex

log = logging.getLogger(__name__)

#: ``publish_state(camera_id, state)``: a camera's new state to the targets that publish
#: states (MQTT, retained); never waits.
StatePublisher = Callable[[str, dict[str, object]], None]


def camera_secrets(cam: CameraConfig) -> tuple[str, ...]:
    secrets = [cam.source.password or ""]
    if cam.source.onvif is not None:
        secrets.append(cam.source.onvif.password or "")
    return tuple(s for s in secrets if s)


class UrlResolver:
    """The URL to open for a camera, credentials added at the last moment.

    ONVIF cameras are probed for their stream URI (re-probed after a failed
    connection, since a rebooted device may hand out another URI).
    """

    def __init__(
        self,
        loaded: LoadedConfig,
        cam: CameraConfig,
        on_resolved: Callable[[str, str], None] | None = None,
    ) -> None:
        self.loaded = loaded
        self.cam = cam
        self.on_resolved = on_resolved
        self._probed: str | None = None

    def __call__(self) -> str:
        src = self.cam.source
        if src.onvif is None:
            url = self.loaded.source_url(self.cam)
            assert url is not None
            return with_credentials(url, src.username, src.password) if src.username else url
        from camera_registry.onvif_probe import probe_onvif_sync

        onvif = src.onvif
        result = probe_onvif_sync(
            onvif.host,
            onvif.port,
            onvif.username,
            onvif.password,
            profile=onvif.profile,
            timeout=self.loaded.config.ingest.open_timeout_s,
        )
        uri = result.sub_uri if onvif.stream == "sub" and result.sub_uri else result.main_uri
        if not uri:
            raise RuntimeError(f"ONVIF device {onvif.host}:{onvif.port} reported no stream URI")
        if uri != self._probed:
            log.info("camera %s: ONVIF stream URI %s", self.cam.id, mask_url(uri))
            self._probed = uri
            if self.on_resolved is not None:
                self.on_resolved(self.cam.id, uri)
        user = src.username or onvif.username
        password = src.password or onvif.password
        return with_credentials(uri, user, password) if user else uri


def offline_event(st: CameraStatus, now: float, limit: float) -> Event:
    down = now - st.since
    return Event(
        camera_id=st.camera_id, rule="camera-offline", type="camera_fault", ts=now, pts=0.0,
        track_ids=[], object_class="", zone="frame", severity="medium",
        measured=round(down, 1), threshold=limit, unit="s",
        explanation=f"camera offline for {down:.0f} s ≥ {limit:g} s (last error: {st.last_error})",
        confidence=1.0, started_pts=-down, key=f"offline-{st.since:.0f}",
        extra={"fault": st.state},  # offline, or auth_failed (a wrong password)
    )  # fmt: skip


def camera_analytics(
    loaded: LoadedConfig, cam: CameraConfig, class_names: tuple[str, ...],
    detect_objects: bool = True, quality_baseline: QualityBaseline | None = None,
) -> CameraAnalytics:  # fmt: skip
    """A camera's zones and rules as the analysis runs them: with the implicit
    video-quality rule (``alerts.video_quality``) when the camera has no camera_fault rule."""
    rules = list(cam.rules)
    if loaded.config.alerts.video_quality and not any(r.type == "camera_fault" for r in rules):
        rules.append(CameraFaultRule(name="video-quality", type="camera_fault"))
    return CameraAnalytics(
        CameraRulesConfig(cam.id, cam.detect_fps, cam.zones, rules, cam.motion, cam.detect),
        class_names,
        timezone=loaded.config.timezone,
        detect_objects=detect_objects,
        quality_baseline=quality_baseline,
        # person_down's pose model (analytics/pose.py); missing: by the box alone, said once.
        pose=shared_pose_model(loaded.models_dir) if wants_pose(rules) else None,
    )


#: What a camera's analysis may change without its stream restarting.
_ANALYSIS_ONLY = set({"name", "area", "lat", "lon", "programme", "gb28181_id", "zones",
                            "rules", "motion", "detect"})  # fmt: skip


def same_stream(old: CameraConfig, new: CameraConfig) -> bool:
    """Whether two configs of a camera read the same stream the same way (only their
    analysis or their place differ)."""
    return old.model_dump(exclude=_ANALYSIS_ONLY) == new.model_dump(exclude=_ANALYSIS_ONLY)


class Worker:
    """Ingest, analysis and evidence of the cameras given to :meth:`start_camera`."""

    def __init__(
        self,
        loaded: LoadedConfig,
        store: Store,
        *,
        detector: Detector,
        bus: EventBus,
        status: StatusBoard,
        evidence: EvidenceStorage,
        publish_state: StatePublisher | None = None,
    ) -> None:
        cfg = loaded.config
        self.loaded = loaded
        self.store = store
        self.detector = detector
        self.bus = bus
        self.status = status
        self.evidence = evidence
        self.publish_state = publish_state
        self.cameras: dict[str, CameraConfig] = {}
        self.producer = AlertProducer(
            bus, cfg.alerts, evidence, protected=lambda: open_evidence_paths(store.sessions)
        )
        # The investigator search index: confirmed tracks, their clips cut from the ring.
        self.tracks = TrackIndex(cfg.tracks, store.sessions, evidence, detector.class_names,
                                 self._camera_place, self.producer.clips)  # fmt: skip
        self.pool = AnalysisPool(
            detector,
            status,
            self._on_event,
            workers=cfg.detector.workers,
            batch_size=cfg.detector.batch_size,
            batch_timeout_s=cfg.detector.batch_timeout_ms / 1000,
            on_tracked=self.tracks.submit if cfg.tracks.enabled else None,
        )
        self.readers: dict[str, StreamReader] = {}
        self.live: dict[str, LiveFeed] = {}  # the cameras' packets for live view
        self.events: dict[str, int] = {}  # events raised per camera (patrol visits count them)
        self._stop = threading.Event()
        self._offline_alerted: set[str] = set()
        self._published_states: dict[str, str] = {}
        self._watchdog = threading.Thread(target=self._watch_cameras, name="watchdog", daemon=True)
        self.started = False

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the analysis; cameras come with :meth:`start_camera`."""
        self.producer.start()
        self.tracks.start()
        self.pool.start()
        self._watchdog.start()
        self.started = True

    def stop(self) -> None:
        self._stop.set()
        for reader in self.readers.values():
            reader.stop()
        for reader in self.readers.values():
            reader.join(timeout=5)
            self.status.update(reader.camera_id, state="stopped")
        self.pool.stop()
        self.tracks.stop()  # index the open tracks; their clips are cut next
        self.producer.stop()  # render and publish what is queued

    @property
    def running(self) -> bool:
        """Started and not stopping: cameras may be started."""
        return self.started and not self._stop.is_set()

    @property
    def threads(self) -> list[threading.Thread]:
        """The long-lived threads (camera readers report through camera status)."""
        return [*self.pool.threads, *self.producer.threads, *self.tracks.threads,
                self._watchdog]  # fmt: skip

    def backlog(self) -> int:
        """Events whose evidence is not yet rendered and published."""
        return self.producer.backlog()

    # -- cameras -----------------------------------------------------------------------

    def report_invalid(self, camera_id: str, error: str) -> None:
        self.status.update(camera_id, state="invalid_config", last_error=error,
                           last_error_at=time.time())  # fmt: skip

    def add_camera(self, cam: CameraConfig) -> None:
        """Know a camera (name and area on its alerts) and read it when enabled."""
        self.cameras[cam.id] = cam
        self.producer.cameras[cam.id] = CameraInfo(cam.name or cam.id, cam.area, cam.gb28181_id)
        if not cam.enabled:
            self.status.update(cam.id, state="disabled")
            return
        self.start_camera(cam)

    def start_camera(
        self, cam: CameraConfig, *, detect_objects: bool = True,
        quality_baseline: QualityBaseline | None = None, observer: FrameObserver | None = None,
    ) -> None:  # fmt: skip
        """Read and analyse a camera. ``detect_objects=False`` (a patrol visit): the
        detector runs only if a rule needs objects (no track index). ``quality_baseline``:
        the picture learned on the previous visit (a view turned since is found).
        ``observer``: sees each analysed frame and its tracked boxes (what a patrol visit
        saw, compared with on the next visit)."""
        self.cameras[cam.id] = cam
        self.producer.cameras[cam.id] = CameraInfo(cam.name or cam.id, cam.area, cam.gb28181_id)
        self.pool.add_camera(camera_analytics(self.loaded, cam, self.detector.class_names,
                                              detect_objects, quality_baseline),
                             observer)  # fmt: skip
        self.status.get(cam.id)
        reader = StreamReader(
            cam.id,
            UrlResolver(self.loaded, cam, self._record_resolved),
            cam.source,
            self.loaded.config.ingest,
            detect_fps=cam.detect_fps,
            box=self.detector.input_size,
            on_frame=self.pool.submit,
            status=self.status,
            secrets=camera_secrets(cam),
            # evidence clips (the ring; None when clips are off) and live view
            packet_sink=TeeSink(self.producer.clips.ring(cam.id), self.live_feed(cam.id)),
        )
        self.status.update(cam.id, stream_url=self._display_url(cam))
        self.readers[cam.id] = reader
        reader.start()

    def stop_camera(
        self, camera_id: str, *, state: str | None = "stopped", wait: bool = True
    ) -> None:
        """Stop reading and analysing a camera (its lease is gone or given up); its state
        becomes ``state`` (None: the caller sets it). ``wait=False`` does not wait for the
        reader thread to end: one stuck in a hung handshake ends when FFmpeg's open
        timeout returns, and writes nothing after being stopped (a patrol visit's slot
        is free at once)."""
        reader = self.readers.pop(camera_id, None)
        if reader is not None:
            reader.stop()
            if wait:
                reader.join(timeout=5)
        slot = self.pool.slots.pop(camera_id, None)
        if slot is not None:
            with slot.lock:
                slot.pending.clear()
        feed = self.live.get(camera_id)
        if feed is not None:
            feed.end()  # its viewers reconnect (through an API node: to the new holder)
        if state is not None:
            self.status.update(camera_id, state=state)
        log.debug("camera %s stopped", camera_id)

    def apply_analytics(self, cam: CameraConfig) -> None:
        """New zones and rules of a camera: its analysis restarts with them, the stream
        does not."""
        previous = self.cameras.get(cam.id)
        self.cameras[cam.id] = cam
        if previous is not None and cam.id in self.pool.slots:
            self.pool.replace_analytics(camera_analytics(self.loaded, cam,
                                                         self.detector.class_names))  # fmt: skip
            log.info("camera %s: new zones and rules applied", cam.id)

    def reconfigure(self, cam: CameraConfig) -> None:
        """A camera changed in the registry (console, API): applied now. Only its zones,
        rules, name or place changed: its analysis takes them, the stream goes on; its
        source, rate or mode changed: it restarts; disabled: it stops; new: it starts."""
        previous = self.cameras.get(cam.id)
        running = cam.id in self.readers
        if running and previous is not None and cam.enabled and same_stream(previous, cam):
            self.producer.cameras[cam.id] = CameraInfo(cam.name or cam.id, cam.area,
                                                       cam.gb28181_id)  # fmt: skip
            self.apply_analytics(cam)
            return
        if running:
            self.stop_camera(cam.id, state=None)
        self.add_camera(cam)
        log.info("camera %s: %s", cam.id, "restarted with its new config" if running and
                 cam.enabled else "started" if cam.enabled else "disabled")  # fmt: skip

    def forget_camera(self, camera_id: str) -> None:
        """A camera deleted from the registry: stopped, and its status gone."""
        self.stop_camera(camera_id, state=None)
        self.cameras.pop(camera_id, None)
        self.producer.cameras.pop(camera_id, None)
        self.status.remove(camera_id)
        log.info("camera %s: deleted from the registry, stopped", camera_id)

    def _display_url(self, cam: CameraConfig) -> str:
        if cam.source.onvif is not None:
            return f"onvif://{cam.source.onvif.host}:{cam.source.onvif.port}"
        return mask_url(self.loaded.source_url(cam) or "")

    def _record_resolved(self, camera_id: str, uri: str) -> None:
        self.status.update(camera_id, stream_url=mask_url(uri))
        with self.store.sessions.begin() as session:
            set_resolved_url(session, camera_id, uri)

    # -- events ------------------------------------------------------------------------

    def _camera_place(self, camera_id: str) -> CameraPlace | None:
        cam = self.cameras.get(camera_id)
        return None if cam is None else CameraPlace(cam.name or cam.id, cam.area)

    def _on_event(self, event: Event, frame: SampledFrame, analytics: CameraAnalytics) -> None:
        """Called by an analysis worker: hand over and return at once."""
        self.raise_event(event, frame, analytics)

    def raise_event(self, event: Event, frame: SampledFrame, analytics: CameraAnalytics) -> None:
        """An event of a camera's rules, with the frame it was seen on: its zone drawn,
        cooldown, evidence and publishing as for every rule (the analysis workers, and the
        patrol for what two visits found)."""
        polygon = analytics.zones_for_drawing().get(event.rule)
        self.events[event.camera_id] = self.events.get(event.camera_id, 0) + 1
        self.producer.on_event(event, frame, polygon, t=frame.t)

    def _watch_cameras(self) -> None:
        """Raise a camera_fault alert when a camera stays offline (a dead camera sends
        no picture for the frame-based rules to look at), and publish state changes.
        Never dies: a failed pass is logged and the next one runs."""
        limit = self.loaded.config.alerts.camera_offline_s
        while not self._stop.wait(1.0):
            try:
                statuses = self.status.all()
                if limit is not None:
                    self._check_offline(statuses, limit)
                self._publish_states(statuses)
            except Exception:  # noqa: BLE001 - the watchdog must outlive any error
                log.exception("watchdog pass failed; retrying")

    def _publish_states(self, statuses: list[CameraStatus]) -> None:
        if self.publish_state is None:
            return
        for st in statuses:
            if self._published_states.get(st.camera_id) == st.state:
                continue
            self._published_states[st.camera_id] = st.state
            self.publish_state(st.camera_id, {
                "state": st.state, "since": st.since, "last_error": st.last_error,
                "reported_at": time.time(),
            })  # fmt: skip

    def _check_offline(self, statuses: list[CameraStatus], limit: float) -> None:
        now = time.time()
        for st in statuses:
            if st.state not in DOWN_STATES:
                self._offline_alerted.discard(st.camera_id)
                continue
            if st.camera_id in self._offline_alerted or now - st.since < limit:
                continue
            self.producer.on_event(offline_event(st, now, limit), None, None)
            self._offline_alerted.add(st.camera_id)

    # -- CameraLive: what the API reads of the cameras read here ----------------------

    def counters(self, camera_id: str) -> dict[str, dict[str, int]]:
        slot = self.pool.slots.get(camera_id)
        return {} if slot is None else slot.analytics.counters()

    def live_feed(self, camera_id: str) -> LiveFeed:
        feed = self.live.get(camera_id)
        if feed is None:
            feed = self.live[camera_id] = LiveFeed()
        return feed

    def held_feed(self, camera_id: str) -> LiveFeed | None:
        """The live feed of a camera read here now (None: not read here)."""
        return self.live.get(camera_id) if camera_id in self.readers else None

    def remote_live_url(self, camera_id: str) -> str | None:
        return None  # this process reads its cameras: live_feed() has the packets

    def media_stats(self, camera_id: str) -> dict[str, object]:
        """What a camera's video costs in memory: the clip ring, the live viewers."""
        ring = self.producer.clips.rings.get(camera_id)
        live = self.live.get(camera_id)
        return {
            "ring_bytes": ring.bytes_held if ring is not None else 0,
            "ring_seconds": round(ring.span_s(), 1) if ring is not None else 0.0,
            "live_viewers": live.viewers if live is not None else 0,
        }

    def overlay(self, camera_id: str) -> dict[str, object] | None:
        """The latest tracked boxes and the zones of a camera, in analysed-frame pixels."""
        slot = self.pool.slots.get(camera_id)
        if slot is None or slot.latest is None:
            return None
        frame, tracked = slot.latest, slot.last_tracked
        names = self.detector.class_names
        boxes = []
        if tracked is not None:
            for i in range(len(tracked)):
                cls = int(tracked.class_id[i])
                boxes.append({
                    "x1": float(tracked.xyxy[i, 0]), "y1": float(tracked.xyxy[i, 1]),
                    "x2": float(tracked.xyxy[i, 2]), "y2": float(tracked.xyxy[i, 3]),
                    "cls": names[cls] if 0 <= cls < len(names) else str(cls),
                    "track_id": int(tracked.tracker_id[i]),
                    "score": round(float(tracked.confidence[i]), 3),
                })  # fmt: skip
        zones = [
            {"name": name, "kind": "line" if len(points) == 2 else "polygon",
             "points": [[float(x), float(y)] for x, y in points]}
            for name, points in slot.analytics.zones_for_drawing().items()
        ]  # fmt: skip
        width, height = frame.frame_size
        return {"width": width, "height": height, "ts": frame.wall_ts, "boxes": boxes,
                "zones": zones}  # fmt: skip

    def latest_frame(self, camera_id: str) -> SampledFrame | None:
        slot = self.pool.slots.get(camera_id)
        return None if slot is None else slot.latest

    # -- metrics -------------------------------------------------------------------------

    def collector(
        self, role: str, leases: Callable[[], dict[str, str]] | None = None,
        events: Callable[[], int] | None = None,
    ) -> metrics.HubCollector:  # fmt: skip
        """Scrape-time values of this worker's cameras and queues."""

        def queues() -> dict[str, int]:
            return {
                "analysis": sum(len(s.pending) for s in list(self.pool.slots.values())),
                "evidence": self.producer.backlog(),
                "events": events() if events is not None else 0,
            }

        return metrics.HubCollector(
            role=role,
            statuses=lambda: [s for s in self.status.all() if s.camera_id in self.readers],
            queues=queues,
            leases=leases,
        )
