"""What the API needs from the rest of the hub, as narrow ports.

The composition layer provides them (``shaobing.services.ApiServices`` implements them
all, over the embedded or the Redis adapters); the API imports these protocols, never
the hub. A route asks for the narrowest port it uses (``api.deps.LiveDep``,
``AlertsDep``, ``SiteDep``, ``HealthDep``, ``AnalyticsDep``); values cross as pydantic
models (:mod:`api.schemas`), not dicts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from alerts.config import AreaNode, FeedbackSource
from alerts.domain.routing import Router
from alerts.feed import AlertFeed
from alerts.links import EvidenceLinks
from alerts.service import AlertService
from camera_registry.status import StatusBoard
from core.secrets import SecretCipher
from core.storage import EvidenceStorage
from ingest.live import LiveFeed

if TYPE_CHECKING:
    from analytics.config import CameraConfig
    from api.schemas import HealthReport, MediaStats, Overlay


class LatestFrame(Protocol):
    def source_bgr(self) -> np.ndarray: ...


class CameraLivePort(Protocol):
    """A camera while it is analysed somewhere: state, counters, frames, live video."""

    status: StatusBoard

    def counters(self, camera_id: str) -> dict[str, dict[str, int]]:
        """Line-crossing counts: rule name → direction → count."""
        ...

    def latest_frame(self, camera_id: str) -> LatestFrame | None: ...

    def live_feed(self, camera_id: str) -> LiveFeed: ...

    def remote_live_url(self, camera_id: str) -> str | None:
        """Where another process serves the camera's live video (distributed mode: the
        worker holding it, a signed URL); None when this process reads the camera."""
        ...

    def media_stats(self, camera_id: str) -> MediaStats: ...

    def live_on_demand(self, camera_id: str) -> None:
        """Before a live view: open the stream of a camera nobody reads when its source
        opens on demand (a GB/T 28181 channel); ``ingest.live.LiveUnavailable`` if not."""
        ...

    def overlay(self, camera_id: str) -> Overlay | None:
        """The latest tracked boxes and zones (None: not analysed yet)."""
        ...


class AnalyticsPort(Protocol):
    """Changing what a camera's analysis looks for."""

    def update_camera_analytics(
        self, camera_id: str, analytics: dict[str, Any], actor: str
    ) -> CameraConfig:
        """Save and apply at once. KeyError: unknown camera; ValueError: invalid."""
        ...


class AlertsPort(Protocol):
    """The alert service and what serves its evidence and routes its alerts."""

    alerts: AlertService
    links: EvidenceLinks
    feed: AlertFeed
    #: Where evidence is read (snapshots, clips, track thumbnails): made once per process.
    evidence: EvidenceStorage

    def router(self) -> Router: ...

    def reload_routing(self) -> None: ...


class SitePort(Protocol):
    """The centre's settings the API shows or checks against."""

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


class HealthPort(Protocol):
    def health(self) -> HealthReport: ...


class RegistryPort(Protocol):
    """Writing the camera registry (issue 23): the key camera passwords are stored
    encrypted with, and having a change applied at once by whoever reads the camera."""

    @property
    def cipher(self) -> SecretCipher: ...

    @property
    def config_path(self) -> str:
        """The config file of the hub (named where its cameras cannot be edited here)."""
        ...

    def camera_registry_changed(self, camera_id: str) -> None:
        """Apply a registry change (added, edited, disabled, deleted) without a restart."""
        ...


class HubServices(
    CameraLivePort, AnalyticsPort, AlertsPort, SitePort, HealthPort, RegistryPort, Protocol
):
    """Every port at once (the object the composition layer hands the app)."""
