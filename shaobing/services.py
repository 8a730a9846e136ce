"""What the API serves from (``api.ports.HubServices``), one class for every composition.

The embedded hub and an API node of the distributed mode differ only in the adapters
they hand in: the status board (the worker's own, or the workers' entries in Redis),
:class:`CameraLive` (the worker in this process, or Redis and the worker's signed live
URLs), and what happens when a camera's zones and rules change (the worker here applies
them, or the worker holding the camera is told through Redis).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from alerts.adapters.sql import SqlUnitOfWork
from alerts.config import AreaNode, FeedbackSource
from alerts.domain.routing import Router
from alerts.feed import AlertFeed
from alerts.links import EvidenceLinks
from alerts.service import AlertService
from analytics.config import CameraConfig
from api.ports import LatestFrame
from api.schemas import HealthReport, MediaStats, Overlay
from camera_registry.status import StatusBoard
from camera_registry.store import CameraRecord
from core.secrets import SecretCipher
from core.storage import EvidenceStorage
from ingest.live import LiveFeed
from ingest.substream import SubSource, SubStream, SubStreams
from shaobing.basemap import open_basemap
from shaobing.config import LoadedConfig
from shaobing.store import RoutingCache, Store

log = logging.getLogger(__name__)


class CameraLive(Protocol):
    """What the API reads of a camera while it is analysed somewhere."""

    def counters(self, camera_id: str) -> dict[str, dict[str, int]]: ...

    def latest_frame(self, camera_id: str) -> LatestFrame | None: ...

    def live_feed(self, camera_id: str) -> LiveFeed: ...

    def remote_live_url(self, camera_id: str) -> str | None: ...

    def media_stats(self, camera_id: str) -> dict[str, Any]: ...

    def overlay(self, camera_id: str) -> dict[str, Any] | None: ...


def alert_service(
    loaded: LoadedConfig,
    store: Store,
    links: EvidenceLinks,
    routing: Callable[[], Router],
    feed: AlertFeed,
    on_committed: Callable[..., None] | None = None,
) -> AlertService:
    """The alert service of a process (the alerts role consumes events with it; the API
    handles operators' actions with it)."""
    return AlertService(lambda: SqlUnitOfWork(store.sessions, links=links), routing,
                        timezone=loaded.config.timezone, on_committed=on_committed,
                        feed=feed, incidents=loaded.config.alerts.incidents.policy())  # fmt: skip


class ApiServices:
    """Every port of ``api.ports`` (``HubServices``): the database, the alert service,
    evidence and links, camera state and live video through the adapters handed in."""

    def __init__(
        self,
        loaded: LoadedConfig,
        store: Store,
        *,
        status: StatusBoard,
        alerts: AlertService,
        links: EvidenceLinks,
        feed: AlertFeed,
        evidence: EvidenceStorage,
        routing: RoutingCache,
        live: CameraLive,
        camera_changed: Callable[[CameraConfig], None],
        health: Callable[[], dict[str, Any]],
        registry_changed: Callable[[str], None] | None = None,
        sub_streams: SubStreams | None = None,
    ) -> None:
        self.loaded = loaded
        self.store = store
        self.status = status
        self.alerts = alerts
        self.links = links
        self.feed = feed
        self.evidence = evidence
        self.routing = routing
        self.live = live
        self._camera_changed = camera_changed
        self._health = health
        self._registry_changed = registry_changed
        self.linkage: Any = None  # issue 27: the process's linkage.wiring.Linkage, if it runs one
        self.sip: Any = None  # the GB/T 28181 platform where sip.enabled (api/routers/gb28181.py)
        # cameras' sub streams, opened here while someone watches one (ingest/substream.py)
        self.sub_streams = sub_streams or SubStreams(loaded.config.ingest)
        # the offline base map (map:), checked when the config was loaded
        self.basemap = open_basemap(loaded.config.map,
                                    lambda p: loaded.resolve(p, loaded.base_dir))  # fmt: skip

    @property
    def sessions(self) -> Any:
        return self.store.sessions

    @property
    def snapshot_dir(self) -> Path:
        """``alerts.snapshot_dir`` resolved (the evidence root of ``kind: directory``)."""
        return self.loaded.snapshot_dir

    @property
    def areas(self) -> list[AreaNode]:
        return self.loaded.config.areas

    @property
    def feedback_secrets(self) -> dict[str, str]:
        return {f.name: f.secret for f in self.loaded.config.feedback}

    @property
    def feedback_sources(self) -> dict[str, FeedbackSource]:  # issue 21: their scope
        return {f.name: f for f in self.loaded.config.feedback}

    @property
    def timezone(self) -> str:
        return self.loaded.config.timezone

    @property
    def console_settings(self) -> dict[str, Any]:
        settings = self.loaded.config.api.console.model_dump(exclude={"enabled"})
        return settings | self.basemap.console_settings()

    def map_tile(self, z: int, x: int, y: int) -> tuple[bytes, str] | None:
        tiles = self.basemap.tiles
        data = tiles.tile(z, x, y) if tiles is not None else None
        return None if data is None or tiles is None else (data, tiles.info.media_type)

    @property
    def map_outlines(self) -> dict[str, Any] | None:
        return self.basemap.outlines

    # -- cameras ---------------------------------------------------------------------

    def counters(self, camera_id: str) -> dict[str, dict[str, int]]:
        return self.live.counters(camera_id)

    def latest_frame(self, camera_id: str) -> LatestFrame | None:
        return self.live.latest_frame(camera_id)

    def live_feed(self, camera_id: str) -> LiveFeed:
        return self.live.live_feed(camera_id)

    def remote_live_url(self, camera_id: str) -> str | None:
        """Where another process serves the camera's live video (None: ``live_feed``)."""
        return self.live.remote_live_url(camera_id)

    def media_stats(self, camera_id: str) -> MediaStats:
        stats = MediaStats.model_validate(self.live.media_stats(camera_id))
        stats.live_viewers += self.sub_streams.viewers(camera_id)  # the wall's sub streams
        return stats

    @property
    def live_max_streams(self) -> int:
        return self.loaded.config.api.live_max_streams

    def sub_stream(self, camera_id: str) -> SubStream | None:
        """The camera's sub stream opened for a viewer (None: it has none). Reads the
        camera's config (credentials decrypted): call it from a thread."""
        cam = self.store.load_camera(camera_id)
        sub = SubSource.of(cam.id, cam.source) if cam is not None else None
        return None if sub is None else self.sub_streams.open(sub)

    def live_on_demand(self, camera_id: str) -> None:
        """Before a live view: a camera nobody reads whose source opens on demand (a GB/T
        28181 channel) is opened now (blocks until its first keyframe);
        :class:`~ingest.live.LiveUnavailable` when it cannot be."""
        if self.sip is None or getattr(self.sip, "live", None) is None:
            return
        if self.live.remote_live_url(camera_id) is not None:
            return
        with self.store.sessions() as session:
            record = session.get(CameraRecord, camera_id)
            url = record.source_display if record is not None else None
        self.sip.live_on_demand(camera_id, url)

    def overlay(self, camera_id: str) -> Overlay | None:
        data = self.live.overlay(camera_id)
        return None if data is None else Overlay.model_validate(data)

    def update_camera_analytics(
        self, camera_id: str, analytics: dict[str, Any], actor: str
    ) -> CameraConfig:
        """Save a camera's zones, rules and motion gate (validated with the camera) and
        have them applied at once by whoever analyses it: its analysis restarts with
        them, the stream does not. KeyError: unknown camera; ValueError: invalid."""
        cam = self.store.save_camera_analytics(camera_id, analytics, actor)
        self._camera_changed(cam)
        log.info("camera %s: zones and rules changed by %s", camera_id, actor)
        return cam

    @property
    def cipher(self) -> SecretCipher:
        """The key of the camera passwords at rest (the registry's writes encrypt with it)."""
        return self.store.cipher

    @property
    def config_path(self) -> str:
        """The config file the ``origin: config`` cameras and areas come from."""
        return str(self.loaded.path or "(defaults)")

    def camera_registry_changed(self, camera_id: str) -> None:
        """A camera was added, edited, disabled or deleted in the registry: whoever reads
        it applies that now (this process's worker, or the worker holding its lease)."""
        if self._registry_changed is not None:
            self._registry_changed(camera_id)

    # -- routing and health ----------------------------------------------------------

    def router(self) -> Router:
        return self.routing()

    def reload_routing(self) -> None:
        """Re-read the routing rules (after the API changed them)."""
        self.routing.reload()

    def health(self) -> HealthReport:
        return HealthReport.model_validate(self._health())
