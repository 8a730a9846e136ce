"""The GB/T 28181 platform as one hub component: the SIP server, the camera-registry
sync and the ``gb28181://`` camera source, with ``start()``, ``stop()``, ``health()``."""

from __future__ import annotations

import threading
from collections.abc import MutableMapping
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from alerts.producer import CameraInfo
from camera_registry.status import StatusBoard
from core.secrets import SecretCipher
from gb28181.channels import SCHEME
from gb28181.config import SipConfig
from gb28181.server import ChangeSink, SipServer
from gb28181.source import GbSourceOpener
from gb28181.sync import CameraSync
from ingest import reader


class GbPlatform:
    """A role of the program (``name``, ``start``, ``stop``, ``threads``, ``health``)."""

    name = "sip"

    def __init__(self, cfg: SipConfig, sessions: sessionmaker[Session] | None = None,
                 cipher: SecretCipher | None = None, status: StatusBoard | None = None,
                 sink: ChangeSink | None = None,
                 alert_cameras: MutableMapping[str, CameraInfo] | None = None) -> None:  # fmt: skip
        if sink is None and sessions is not None and cipher is not None:
            sink = CameraSync(cfg, sessions, cipher, status, alert_cameras)
        self.server = SipServer(cfg, sink)
        self.opener = GbSourceOpener(self.server)

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
        if reader.SOURCE_OPENERS.get(SCHEME) is self.opener:
            del reader.SOURCE_OPENERS[SCHEME]
        self.server.stop()

    @property
    def threads(self) -> list[threading.Thread]:
        return self.server.threads()

    def health(self) -> dict[str, Any]:
        return self.server.health()
