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


class LatestFrame(Protocol):
    def source_bgr(self) -> np.ndarray: ...


class HubServices(Protocol):
    status: StatusBoard
    alerts: AlertService
    links: EvidenceLinks
    feed: AlertFeed
    #: Where evidence is read (snapshots, clips, track thumbnails): made once per process.
    evidence: EvidenceStorage

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

    def live_on_demand(self, camera_id: str) -> None:
        """Before a live view: open the stream of a camera nobody reads when its source
        opens on demand (a GB/T 28181 channel); ``ingest.live.LiveUnavailable`` if not."""
        ...

    def update_camera_analytics(
        self, camera_id: str, analytics: dict[str, Any], actor: str
    ) -> Any: ...

    def overlay(self, camera_id: str) -> dict[str, Any] | None: ...

    def router(self) -> Router: ...

    def reload_routing(self) -> None: ...

    def health(self) -> dict[str, Any]: ...
