"""The linkage component of a process: engine + ONVIF PTZ + voice, built from the
``linkage:`` config and the hub's pieces; ``start()``, ``stop()``, ``health()``.

The composition root builds it once (:meth:`Linkage.for_hub`) and keeps it as
``hub.linkage``; the API reaches it there (``services.linkage``). It hooks into the
alert pipeline at one place: a listener on the alert feed, which the alert service
publishes to after each commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from alerts.adapters.sql import SqlUnitOfWork
from alerts.feed import AlertFeed
from linkage.config import LinkageConfig
from linkage.engine import LinkageEngine
from linkage.onvif_ptz import OnvifEndpoint, OnvifPtz
from linkage.ports import AlertClaim, HomeTimers, PtzControl, Voice
from linkage.recorder import SqlResultRecorder
from linkage.store import RuleCache
from linkage.voice import VoiceService

log = logging.getLogger(__name__)


class Linkage:
    """A role of the composition root (``name``, ``start``, ``stop``, ``threads``, ``health``)."""

    name = "linkage"

    def __init__(
        self,
        config: LinkageConfig,
        *,
        recorder: SqlResultRecorder,
        feed: AlertFeed,
        ptz: PtzControl | None,
        voice: Voice | None,
        timezone: str,
        rules: RuleCache | None = None,
        closers: tuple[Callable[[], None], ...] = (),
        homes: HomeTimers | None = None,
        claim: AlertClaim | None = None,
    ) -> None:
        self.config = config
        self.rules = rules  # the database's rules (None: the config's)
        self.feed = feed
        self.ptz = ptz
        self.voice = voice
        self.recorder = recorder
        self.engine = LinkageEngine(config, alerts=recorder.read, recorder=recorder, ptz=ptz,
                                    voice=voice, timezone=timezone, rules=rules, homes=homes,
                                    claim=claim)  # fmt: skip
        self._closers = closers
        self._unsubscribe: Callable[[], None] | None = None

    @classmethod
    def for_hub(cls, hub: Any) -> Linkage:
        """Built from a hub's config, database, alert feed and dispatcher (duck-typed:
        ``loaded``, ``sessions``, ``links``, ``feed``, ``dispatcher``, ``cameras``)."""
        return cls.build(hub.loaded, hub.sessions, hub.links, hub.feed, hub.cameras.get,
                         on_committed=hub.dispatcher.notify)  # fmt: skip

    @classmethod
    def build(
        cls,
        loaded: Any,
        sessions: Any,
        links: Any,
        feed: AlertFeed,
        cameras: Callable[[str], Any],
        *,
        on_committed: Callable[[], None] | None = None,
        homes: HomeTimers | None = None,
        claim: AlertClaim | None = None,
    ) -> Linkage:
        """The component of one process: ``cameras(camera_id)`` gives a camera's config
        (its ONVIF source, credentials included); ``homes``/``claim`` are the distributed
        mode's (Redis) adapters."""
        cfg = loaded.config
        config: LinkageConfig = cfg.linkage

        def endpoint(camera_id: str) -> OnvifEndpoint | None:
            cam = cameras(camera_id)
            onvif = None if cam is None else cam.source.onvif
            if onvif is None:
                return None
            return OnvifEndpoint(onvif.host, onvif.port, onvif.username, onvif.password)

        recorder = SqlResultRecorder(
            lambda: SqlUnitOfWork(sessions, links=links),
            targets=lambda: {t.name for t in cfg.dispatch}, feed=feed,
            on_committed=on_committed,
        )  # fmt: skip
        ptz = OnvifPtz(endpoint, timeout_s=5.0)
        voice = voice_for(config, loaded, cfg.timezone)
        return cls(config, recorder=recorder, feed=feed, ptz=ptz, voice=voice,
                   timezone=cfg.timezone, rules=RuleCache(sessions), closers=(ptz.close,),
                   homes=homes, claim=claim)  # fmt: skip

    def start(self) -> None:
        self.engine.start()
        self._unsubscribe = self.feed.subscribe(self.engine.on_feed)
        log.info("linkage started: %d rule(s), %d speaker(s)", len(self.engine.rules()),
                 len(self.config.speakers))  # fmt: skip

    def reload_rules(self) -> None:
        """Read the rules again at the next alert (after the API changed them)."""
        if self.rules is not None:
            self.rules.reload()

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        close_voice = getattr(self.voice, "close", None)
        if close_voice is not None:
            close_voice()  # hang up calls in progress first: the engine waits for them
        self.engine.stop()
        for close in self._closers:
            try:
                close()
            except Exception:  # noqa: BLE001 - stopping goes on
                log.exception("linkage: closing failed")

    def health(self) -> dict[str, Any]:
        return self.engine.health()

    @property
    def threads(self) -> list[Any]:
        return self.engine.threads


def voice_for(config: LinkageConfig, loaded: Any, timezone: str) -> VoiceService | None:
    """The voice service when speakers are configured (TTS loads on first use)."""
    if not config.speakers:
        return None
    return VoiceService(config, base_dir=getattr(loaded, "base_dir", None), timezone=timezone)
