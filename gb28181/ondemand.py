"""Live view on demand: a GB/T 28181 channel nobody analyses holds no stream until someone
watches it.

A live view of such a channel (``/api/cameras/<id>/live.flv`` or ``live.ws``) calls
:meth:`OnDemandLive.ensure`: a thread INVITEs the channel and hands the demuxed packets
(the device's own H.264, not decoded) to the camera's :class:`~ingest.live.LiveFeed`,
the same feed an analysed camera's reader writes, so the live path is the same. When
the last viewer has left for ``sip.live_linger_s`` the thread ends the stream (BYE, the
RTP port given back). A stream that dies is re-invited with backoff while someone
watches; a channel whose device refuses the INVITE or sends no media is reported with a
clear state (``invite_failed``, ``no_media``, ``bad_media``, ``device_offline``), and
the live view answers 503 naming it. When the camera starts being analysed (a reader
holds it), the on-demand stream gives way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import av

from camera_registry.config import IngestConfig
from gb28181.media import MediaTimeout
from gb28181.server import InviteFailed
from ingest.live import LiveFeed, LiveUnavailable

log = logging.getLogger(__name__)

Opener = Callable[[str, IngestConfig], AbstractContextManager[av.container.InputContainer]]


@dataclass
class _View:
    """One channel's on-demand stream (its thread, its state)."""

    camera_id: str
    url: str
    feed: LiveFeed
    state: str = "inviting"  # inviting, streaming, invite_failed, no_media, bad_media ...
    error: str | None = None
    since: float = field(default_factory=time.time)
    wanted_at: float = 0.0  # monotonic: the last ensure() or the last moment with a viewer
    failures: int = 0  # failed attempts so far
    invites: int = 0
    ready: bool = False  # a keyframe was handed to the feed since the stream (re)opened
    waiting: int = 0  # ensure() calls waiting for the first keyframe (viewers to be)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class OnDemandLive:
    """On-demand streams of the channels watched but not analysed.

    ``feeds(camera_id)``: the camera's live feed; ``held(camera_id)``: whether a reader
    (analysis) reads the camera now, in which case nothing is opened here.
    """

    def __init__(self, opener: Opener, feeds: Callable[[str], LiveFeed],
                 held: Callable[[str], bool], ingest: IngestConfig, *, linger_s: float = 10.0,
                 backoff_initial_s: float = 1.0, backoff_max_s: float = 10.0,
                 ready_timeout_s: float = 15.0) -> None:  # fmt: skip
        self.opener = opener
        self.feeds = feeds
        self.held = held
        self.ingest = ingest
        self.linger_s = linger_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.ready_timeout_s = ready_timeout_s
        self._views: dict[str, _View] = {}
        self._lock = threading.Condition()
        self._stopped = False

    # -- what the live view calls ----------------------------------------------------

    def ensure(self, camera_id: str, url: str, timeout_s: float | None = None) -> None:
        """Return once the camera's feed has a keyframe to start a viewer on (a stream
        opened here, or a reader's); :class:`LiveUnavailable` (with the state) when the
        INVITE fails or no picture comes in time. A failed channel is tried again with
        backoff as long as someone asks for it."""
        if self.held(camera_id):
            return
        timeout = self.ready_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._stopped:
                raise LiveUnavailable("stopped", "the hub is stopping")
            view = self._views.get(camera_id)
            if view is None or view.thread is None or not view.thread.is_alive():
                view = _View(camera_id, url, self.feeds(camera_id))
                view.wanted_at = time.monotonic()
                view.thread = threading.Thread(target=self._run, args=(view,), daemon=True,
                                               name=f"gb-live-{camera_id}")  # fmt: skip
                self._views[camera_id] = view
                view.thread.start()
            failures = view.failures
            view.waiting += 1
            try:
                while not view.ready:
                    if view.failures > failures or (view.failures and view.state != "inviting"):
                        raise LiveUnavailable(view.state, view.error or view.state)
                    left = deadline - time.monotonic()
                    if left <= 0:
                        state = view.state if view.state != "streaming" else "no_media"
                        raise LiveUnavailable(state, f"{state}: no picture within {timeout:g} s "
                                              f"({view.error or view.state})")  # fmt: skip
                    self._lock.wait(min(left, 0.5))
            finally:
                view.waiting -= 1
                view.wanted_at = time.monotonic()

    def states(self) -> list[dict[str, Any]]:
        """The on-demand streams (for /healthz and the API)."""
        with self._lock:
            return [{"camera_id": v.camera_id, "state": v.state, "error": v.error,
                     "since": v.since, "viewers": v.feed.viewers, "invites": v.invites,
                     "failures": v.failures} for v in self._views.values()]  # fmt: skip

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            views = list(self._views.values())
        for view in views:
            view.stop.set()
        for view in views:
            if view.thread is not None:
                view.thread.join(10)

    # -- the stream's thread ---------------------------------------------------------

    def _set(self, view: _View, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(view, key, value)
            if "state" in changes:
                view.since = time.time()
            self._lock.notify_all()

    def _idle(self, view: _View) -> bool:
        """Nobody watches, and nobody has for the linger time."""
        now = time.monotonic()
        if view.feed.viewers > 0 or view.waiting > 0:
            view.wanted_at = now
            return False
        return now - view.wanted_at > self.linger_s

    def _done(self, view: _View) -> bool:
        return view.stop.is_set() or self.held(view.camera_id) or self._idle(view)

    def _run(self, view: _View) -> None:
        attempt = 0
        try:
            while not self._done(view):
                try:
                    self._stream(view)
                    attempt = 0  # it streamed, then ended (the device's BYE, a dead stream)
                    if not self._done(view):
                        self._set(view, state="inviting", ready=False,
                                  error="the stream ended; invited again")  # fmt: skip
                        log.info("GB live %s: the stream ended, invited again", view.camera_id)
                    continue
                except Exception as exc:  # noqa: BLE001 - a channel never crashes the hub
                    attempt += 1
                    state, message = _failure(exc)
                    self._set(view, state=state, error=message, ready=False,
                              failures=view.failures + 1)  # fmt: skip
                    delay = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (attempt - 1))
                    log.warning("GB live %s: %s; invited again in %.0f s while watched",
                                view.camera_id, message, delay)  # fmt: skip
                # wait out the backoff, but notice when everyone has left
                end = time.monotonic() + delay
                while time.monotonic() < end and not self._done(view):
                    view.stop.wait(min(0.5, end - time.monotonic()))
        finally:
            with self._lock:
                if self._views.get(view.camera_id) is view:
                    del self._views[view.camera_id]
                view.ready = False
                self._lock.notify_all()
            if not self.held(view.camera_id):
                view.feed.end()  # viewers left behind (the hub stops) reconnect
            log.info("GB live %s: on-demand stream closed", view.camera_id)

    def _stream(self, view: _View) -> None:
        """One INVITE: packets into the feed until the stream dies or is not wanted."""
        self._set(view, state="inviting", invites=view.invites + 1)
        with self.opener(view.url, self.ingest) as container:
            stream = container.streams.video[0]
            view.feed.stream_opened(stream)
            self._set(view, state="streaming", error=None)
            for packet in _packets(container, stream):
                if self._done(view):
                    return
                view.feed.packet(packet)
                if packet.is_keyframe and not view.ready:
                    self._set(view, ready=True)
                    log.info("GB live %s: streaming on demand", view.camera_id)


def _packets(container: av.container.InputContainer, stream: Any) -> Iterator[av.Packet]:
    for packet in container.demux(stream):
        if packet.size:
            yield packet


def _failure(exc: Exception) -> tuple[str, str]:
    """(state, message) of a failed attempt."""
    if isinstance(exc, InviteFailed):
        return exc.state, str(exc)
    if isinstance(exc, MediaTimeout):
        return "no_media", f"no_media: {exc}"
    if isinstance(exc, av.error.FFmpegError):
        return "bad_media", f"bad_media: {exc}"
    return "invite_failed", f"{type(exc).__name__}: {exc}"
