"""The GB/T 28181 platform as one hub component: the SIP server, the camera-registry
sync and the ``gb28181://`` camera source, with ``start()``, ``stop()``, ``health()``."""

from __future__ import annotations

import threading
from collections.abc import Callable, MutableMapping
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from alerts.producer import CameraInfo
from camera_registry.config import IngestConfig
from camera_registry.status import StatusBoard
from camera_registry.store import CameraRecord
from core.secrets import SecretCipher
from gb28181.channels import SCHEME, parse_source_url
from gb28181.config import SipConfig
from gb28181.ondemand import OnDemandLive
from gb28181.server import ChangeSink, SipServer
from gb28181.source import GbSourceOpener
from gb28181.sync import CameraSync
from ingest import reader
from ingest.live import LiveFeed


class GbPlatform:
    """A role of the program (``name``, ``start``, ``stop``, ``threads``, ``health``)."""

    name = "sip"

    def __init__(self, cfg: SipConfig, sessions: sessionmaker[Session] | None = None,
                 cipher: SecretCipher | None = None, status: StatusBoard | None = None,
                 sink: ChangeSink | None = None,
                 alert_cameras: MutableMapping[str, CameraInfo] | None = None) -> None:  # fmt: skip
        if sink is None and sessions is not None and cipher is not None:
            sink = CameraSync(cfg, sessions, cipher, status, alert_cameras)
        self.cfg = cfg
        self.sessions = sessions
        self.server = SipServer(cfg, sink)
        self.opener = GbSourceOpener(self.server)
        self.live: OnDemandLive | None = None

    def attach_live(self, feeds: Callable[[str], LiveFeed], held: Callable[[str], bool],
                    ingest: IngestConfig) -> OnDemandLive:  # fmt: skip
        """Live view on demand of the channels nobody analyses, into ``feeds`` (the
        worker's live feeds); ``held``: whether a reader reads the camera now."""
        self.live = OnDemandLive(
            self.opener, feeds, held, ingest, linger_s=self.cfg.live_linger_s,
            backoff_max_s=self.cfg.live_backoff_max_s,
            ready_timeout_s=self.cfg.invite_timeout_s + self.cfg.media_timeout_s + 3,
        )  # fmt: skip
        return self.live

    def locate(self, camera_id: str) -> tuple[str, str] | None:
        """(device id, channel id) of a camera whose source is a GB/T 28181 channel (read
        from the camera registry), else None."""
        if self.sessions is None:
            return None
        with self.sessions() as session:
            record = session.get(CameraRecord, camera_id)
            url = record.source_display if record is not None else ""
        return parse_source_url(url) if url.startswith(f"{SCHEME}://") else None

    def live_on_demand(self, camera_id: str, url: str | None) -> None:
        """Before a live view of a camera: open its GB stream when nobody reads it (a
        no-op for other cameras); :class:`~ingest.live.LiveUnavailable` when it cannot."""
        if self.live is None or not url or not url.startswith(f"{SCHEME}://"):
            return
        self.live.ensure(camera_id, url)

    @classmethod
    def build(cls, cfg: SipConfig, sessions: sessionmaker[Session], cipher: SecretCipher,
              status: StatusBoard,
              alert_cameras: MutableMapping[str, CameraInfo] | None = None,
              ) -> GbPlatform | None:  # fmt: skip
        """The platform (not started: it is a role) when ``sip.enabled``, else None."""
        if not cfg.enabled:
            return None
        return cls(cfg, sessions, cipher, status, alert_cameras=alert_cameras)

    def start(self) -> None:
        self.server.start()
        reader.SOURCE_OPENERS[SCHEME] = self.opener

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
        if reader.SOURCE_OPENERS.get(SCHEME) is self.opener:
            del reader.SOURCE_OPENERS[SCHEME]
        self.server.stop()

    @property
    def threads(self) -> list[threading.Thread]:
        return self.server.threads()

    def health(self) -> dict[str, Any]:
        report = self.server.health()
        if self.live is not None:
            report["live_on_demand"] = self.live.states()
        return report
