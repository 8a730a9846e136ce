"""The recording component of a hub or worker: the recorder, its retention and its
metrics, made from the config (``recording:`` and each camera's ``record:``).

``start()``, ``stop()``, ``health()``: the composition root builds one, hands it the
cameras it reads and their live feeds, and starts it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from camera_registry.config import CameraBase, IngestConfig, RecordConfig
from core.storage import EvidenceStorage
from core.storage_directory import SharedDirectory
from ingest.live import LiveFeed
from ingest.substream import SubSource, SubStreams
from recording.config import RecordingConfig
from recording.recorder import Recorder
from recording.retention import RecordingRetention

log = logging.getLogger(__name__)


#: Segment keys in the evidence storage (``recording.storage: evidence``) start with it.
EVIDENCE_PREFIX = "recordings/"


def recording_storage(directory: Path) -> SharedDirectory:
    """Where segments live: a folder beside the evidence (``recording.dir``), written
    through the evidence storage port's directory adapter (temporary name, rename)."""
    return SharedDirectory(directory)


class RecordingService:
    """Recorder + retention + /metrics for the cameras of one process."""

    def __init__(
        self,
        cfg: RecordingConfig,
        directory: Path,
        spool: Path,
        sessions: sessionmaker[Session],
        evidence: EvidenceStorage | None = None,
        *,
        sub_streams: SubStreams | None = None,
        ingest: IngestConfig | None = None,
    ) -> None:
        """``evidence``: the evidence storage (``recording.storage: evidence``: segments
        there, keys under ``recordings/``; the free-space floor applies where it is a
        directory of this host, a bucket has the quota only). ``sub_streams``: where the
        sub streams of ``record.stream: sub`` cameras are opened (the embedded hub shares
        the wall's, so a camera's sub stream is pulled once); without it the service opens
        its own (a distributed worker), with ``ingest``'s timeouts."""
        self.cfg = cfg
        self._own_subs = sub_streams is None
        self.sub_streams = sub_streams or SubStreams(ingest or IngestConfig())
        self._feeds: dict[str, LiveFeed] = {}  # the feed each camera is recorded from
        self._warned_sub: set[str] = set()
        self.storage: EvidenceStorage
        if cfg.storage == "evidence":
            if evidence is None:
                raise ValueError("recording.storage is evidence but no evidence storage given")
            self.storage, prefix = evidence, EVIDENCE_PREFIX
            local = evidence.local_path(EVIDENCE_PREFIX + "x")
            disk = local.parent if local is not None else None
        else:
            self.storage, prefix, disk = recording_storage(directory), "", directory
        self.records: dict[str, RecordConfig] = {}
        self.recorder = Recorder(self.storage, sessions, spool, prefix=prefix)
        self.retention = RecordingRetention(cfg, self.storage, sessions, self.keep_days,
                                            disk=disk)  # fmt: skip
        self._collector: Collector | None = None
        self._cameras: Callable[[], Iterable[CameraBase]] | None = None
        self._live_feed: Callable[[str], LiveFeed] | None = None

    def keep_days(self, camera_id: str, mode: str) -> float:
        record = self.records.get(camera_id)
        if record is not None and record.retain_days is not None:
            return record.retain_days
        if mode in ("events", "objects"):
            return self.cfg.events_days
        return self.cfg.continuous_days  # continuous and motion

    def follow(
        self, cameras: Callable[[], Iterable[CameraBase]], live_feed: Callable[[str], LiveFeed]
    ) -> None:
        """Record the cameras ``cameras()`` returns (those read in this process now: every
        enabled one embedded, the leased ones on a worker), each from ``live_feed(id)``;
        checked at start and every few seconds, so a camera that arrives (a lease taken) is
        recorded and one that leaves has its open segment closed."""
        self._cameras = cameras
        self._live_feed = live_feed
        self.recorder.tick = self.reconcile

    def reconcile(self) -> None:
        if self._cameras is None or self._live_feed is None:
            return
        wanted = {c.id: c for c in list(self._cameras()) if c.enabled and c.record.mode != "off"}
        followed = self.recorder.records
        for camera_id in [c for c in followed if c not in wanted]:  # first: segments closed
            log.info("camera %s: no longer recorded here", camera_id)
            self.recorder.remove_camera(camera_id)
            self._feeds.pop(camera_id, None)
        for camera_id, cam in wanted.items():
            self.records[camera_id] = cam.record
            feed = self._feed_of(cam)
            if followed.get(camera_id) == cam.record and self._feeds.get(camera_id) is feed:
                continue
            if camera_id in followed:
                self.recorder.remove_camera(camera_id)
            self.recorder.add_camera(camera_id, cam.record, feed)
            self._feeds[camera_id] = feed
            log.info("camera %s: recording (%s, %s stream)", camera_id, cam.record.mode,
                     "sub" if feed is not self._live_feed(camera_id) else "main")  # fmt: skip
        self._warned_sub &= set(wanted)

    def _feed_of(self, cam: CameraBase) -> LiveFeed:
        """Where ``cam`` is recorded from: its sub stream (``record.stream: sub``, opened
        here and kept open while recorded: the recorder is its viewer; a stream that
        stopped is opened again at the next check), else the main stream read here."""
        assert self._live_feed is not None
        if cam.record.stream == "sub":
            sub = SubSource.of(cam.id, cam.source)
            if sub is not None:
                try:
                    return self.sub_streams.open(sub).feed
                except RuntimeError:  # the process is stopping: keep what is followed
                    return self._feeds.get(cam.id) or self._live_feed(cam.id)
            if cam.id not in self._warned_sub:
                self._warned_sub.add(cam.id)
                log.warning("camera %s: record.stream is sub but the camera has no "
                            "source.sub_url: its main stream is recorded", cam.id)  # fmt: skip
        return self._live_feed(cam.id)

    @property
    def threads(self) -> list[Any]:
        return [*self.recorder.threads, *self.retention.threads]

    @property
    def thread(self) -> Any:
        """The recorder's thread (the retention thread is in ``threads``)."""
        return self.recorder.threads[0]

    def start(self) -> None:
        self.reconcile()
        self.recorder.start()
        self.retention.start()
        self._collector = _Metrics(self)
        try:
            REGISTRY.register(self._collector)
        except ValueError:  # another service of this process registered first (tests)
            self._collector = None

    def stop(self) -> None:
        self.recorder.stop()
        self.retention.stop()
        if self._own_subs:
            self.sub_streams.close()
        if self._collector is not None:
            REGISTRY.unregister(self._collector)
            self._collector = None

    def health(self) -> dict[str, Any]:
        health = self.recorder.health()
        health["retention"] = self.retention.health()
        if not self.retention.threads[0].is_alive() and self.recorder.threads[0].is_alive():
            health["status"] = "degraded"
        return health


class _Metrics(Collector):
    """Read at scrape time: nothing to keep in step."""

    def __init__(self, service: RecordingService) -> None:
        self.service = service

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        health = self.service.recorder.health()
        ok = GaugeMetricFamily("shaobing_recording_storage_ok",
                               "1 when the last segment was stored, 0 when the recording "
                               "storage failed (disk full, unwritable)")  # fmt: skip
        ok.add_metric([], 1.0 if health["storage_ok"] else 0.0)
        yield ok
        segs = CounterMetricFamily("shaobing_recording_segments", "Segments stored, per camera",
                                   labels=["camera"])  # fmt: skip
        failed = CounterMetricFamily("shaobing_recording_segments_failed",
                                     "Segments lost because the storage failed, per camera",
                                     labels=["camera"])  # fmt: skip
        for camera_id, cam in health["cameras"].items():
            segs.add_metric([camera_id], cam["segments"])
            failed.add_metric([camera_id], cam["failed"])
        yield segs
        yield failed
        free = self.service.retention.free_bytes
        if free is not None:
            gauge = GaugeMetricFamily("shaobing_recording_disk_free_bytes",
                                      "Free space on the recording disk")  # fmt: skip
            gauge.add_metric([], float(free))
            yield gauge
