"""What the API needs from the rest of the hub (the composition layer provides it;
``shaobing.bootstrap.Hub`` is one). The API imports this protocol, never the hub."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from alerts.config import AreaNode, FeedbackSource
from alerts.domain.routing import Router
from alerts.feed import AlertFeed
from alerts.links import EvidenceLinks
from alerts.service import AlertService
from camera_registry.status import StatusBoard
from core.storage import EvidenceStorage
from ingest.live import LiveFeed
from ingest.substream import SubStream, SubStreams


class LatestFrame(Protocol):
    def source_bgr(self) -> np.ndarray: ...


class HubServices(Protocol):
    status: StatusBoard
    alerts: AlertService
    links: EvidenceLinks
    feed: AlertFeed
    #: Where evidence is read (snapshots, clips, track thumbnails): made once per process.
    evidence: EvidenceStorage
    #: The sub streams opened in this process for the wall (ingest/substream.py).
    sub_streams: SubStreams

    @property
    def areas(self) -> list[AreaNode]: ...

    @property
    def feedback_secrets(self) -> dict[str, str]: ...

    @property
    def feedback_sources(self) -> dict[str, FeedbackSource]:
        """The sources with the areas / departments whose alerts each may move."""
        ...

    @property
    def console_settings(self) -> dict[str, Any]: ...

    def map_tile(self, z: int, x: int, y: int) -> tuple[bytes, str] | None:
        """A tile of the offline base map (map.tiles) and its media type; None: none."""
        ...

    @property
    def map_outlines(self) -> dict[str, Any] | None:
        """The areas' outlines (map.areas, a GeoJSON FeatureCollection); None: none."""
        ...

    @property
    def timezone(self) -> str:
        """The hub's time zone (exports and lists show times in it)."""
        ...

    def counters(self, camera_id: str) -> dict[str, dict[str, int]]: ...

    def latest_frame(self, camera_id: str) -> LatestFrame | None: ...

    def live_feed(self, camera_id: str) -> LiveFeed: ...

    def remote_live_url(self, camera_id: str) -> str | None:
        """Where another process serves the camera's live video (distributed mode: the
        worker holding it, a signed URL); None when this process reads the camera."""
        ...

    def media_stats(self, camera_id: str) -> dict[str, Any]: ...

    @property
    def live_max_streams(self) -> int:
        """Live video streams this API process serves at once (api.live_max_streams)."""
        ...

    def sub_stream(self, camera_id: str) -> SubStream | None:
        """The camera's sub stream (子码流) opened for a viewer; None: it has none."""
        ...

    def update_camera_analytics(
        self, camera_id: str, analytics: dict[str, Any], actor: str
    ) -> Any: ...

    def overlay(self, camera_id: str) -> dict[str, Any] | None: ...

    def router(self) -> Router: ...

    def reload_routing(self) -> None: ...

    def health(self) -> dict[str, Any]: ...
