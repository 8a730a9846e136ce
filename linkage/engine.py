"""The linkage engine: new alerts → linkage rules → actions on site, each result in
the alert's history.

It listens to the alert feed (``alert`` notifications, published after the alert is
committed) and never blocks it: ids go to a queue that the ``linkage`` thread plans
from. Actions run on a small pool so a slow speaker never holds up a PTZ command; a
delayed action waits in a timer heap, one that needs an operator's confirmation waits
in ``pending`` until confirmed, cancelled or expired. The same thread sends home the
cameras a linkage moved (:class:`~linkage.arbiter.PtzArbiter`). Nothing dies silently:
a failed action is retried, then recorded as failed with the reason; an exception in
the loop is logged, counted and the loop goes on.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from linkage.arbiter import PtzArbiter
from linkage.config import LinkageConfig, LinkageRule, PtzPresetAction, VoiceAction
from linkage.ports import (
    ActionFailed,
    AlertClaim,
    AlertReader,
    HomeTimers,
    PtzControl,
    Result,
    ResultRecorder,
    Voice,
)
from linkage.rules import PlannedAction, plan

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "linkage"
SEEN_MAX = 10_000  # alert ids remembered against a re-published notification


class ConfirmationNotFound(LookupError):
    pass


@dataclass
class Counters:
    alerts: int = 0
    planned: int = 0
    sent: int = 0
    answered: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0
    errors: int = 0  # exceptions caught in the loop or while recording
    elsewhere: int = 0  # alerts another engine claimed (several alerts roles)


@dataclass
class Pending:
    planned: PlannedAction
    expires_at: float
    described: dict[str, Any] = field(default_factory=dict)


class LinkageEngine:
    def __init__(
        self,
        config: LinkageConfig,
        *,
        alerts: AlertReader,
        recorder: ResultRecorder,
        ptz: PtzControl | None = None,
        voice: Voice | None = None,
        timezone: str = "Asia/Shanghai",
        clock: Callable[[], float] = time.time,
        workers: int = 4,
        on_popup: Callable[[dict[str, Any]], None] | None = None,
        rules: Callable[[], list[LinkageRule]] | None = None,
        homes: HomeTimers | None = None,
        claim: AlertClaim | None = None,
    ) -> None:
        self.config = config
        #: The rules in force, read for each alert (the database's: changes apply at once)
        self.rules = rules or (lambda: list(config.rules))
        self.homes = homes  # None: pending returns home live in memory only
        self.claim = claim  # None: this engine is the only one
        self.alerts = alerts
        self.recorder = recorder
        self.ptz = ptz
        self.voice = voice
        self.tz = ZoneInfo(timezone)
        self.clock = clock
        self.on_popup = on_popup
        self.arbiter = PtzArbiter(config.operator_hold_s, config.return_home_s)
        self.counters = Counters()
        self.popups: deque[dict[str, Any]] = deque(maxlen=100)
        self._lock = threading.Lock()  # the arbiter, pending, timers
        self._queue: queue.Queue[str] = queue.Queue()
        self._timers: list[tuple[float, int, PlannedAction]] = []
        self._seq = itertools.count()
        self._pending: dict[str, Pending] = {}
        self._seen: dict[str, None] = {}
        self._moved_by: dict[str, str] = {}  # camera → alert whose linkage moved it
        self._running = 0
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="linkage-action")
        self._thread = threading.Thread(target=self._loop, name="linkage", daemon=True)

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._restore_homes()
        self._thread.start()

    def _restore_homes(self) -> None:
        """Returns home a previous run left pending (it stopped or died meanwhile)."""
        if self.homes is None:
            return
        try:
            kept = self.homes.load()
        except Exception:  # noqa: BLE001 - the store away: start without them, say so
            self.counters.errors += 1
            log.exception("linkage: pending returns home not read")
            return
        with self._lock:
            for camera_id, (at, alert_id) in kept.items():
                self.arbiter.restore(camera_id, at)
                if alert_id:
                    self._moved_by[camera_id] = alert_id
        if kept:
            log.info("linkage: %d pending return(s) home restored", len(kept))

    def _keep_home(self, camera_id: str, at: float | None, alert_id: str | None = None) -> None:
        """Save (``at``) or drop (None) a pending return home in the store, if any."""
        if self.homes is None:
            return
        try:
            if at is None:
                self.homes.drop(camera_id)
            else:
                self.homes.save(camera_id, at, alert_id)
        except Exception:  # noqa: BLE001 - kept in memory all the same
            self.counters.errors += 1
            log.exception("linkage: return home of camera %s not stored", camera_id)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop planning; actions already running finish (bounded by their timeouts)."""
        self._stop.set()
        self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    @property
    def threads(self) -> list[threading.Thread]:
        return [self._thread]

    def health(self) -> dict[str, Any]:
        with self._lock:
            timers, pending = len(self._timers), len(self._pending)
        alive = self._thread.is_alive()
        return {
            "status": "ok" if alive or not self.config.enabled else "degraded",
            "thread_alive": alive,
            "queued": self._queue.qsize(),
            "delayed": timers,
            "awaiting_confirmation": pending,
            "running": self._running,
            "returns_home": len(self.arbiter.returns()),
            "counters": self.counters.__dict__.copy(),
        }

    # -- input: the alert feed ----------------------------------------------------

    def on_feed(self, kind: str, alert_id: str) -> None:
        """Alert feed listener: queue a new alert (never blocks the alert service)."""
        if kind == "alert" and self.config.enabled:
            self._queue.put(alert_id)

    # -- the loop -------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                alert_id = self._queue.get(timeout=self._wait_s())
            except queue.Empty:
                alert_id = None
            try:
                if alert_id is not None:
                    self._plan(alert_id)
                self._tick()
            except Exception:  # noqa: BLE001 - the loop must outlive any error
                self.counters.errors += 1
                log.exception("linkage pass failed (alert %s); continuing", alert_id)

    def _wait_s(self) -> float:
        with self._lock:
            if not self._timers:
                return 0.2
            return max(0.0, min(0.2, self._timers[0][0] - self.clock()))

    def _plan(self, alert_id: str) -> None:
        if alert_id in self._seen:
            return  # a notification published twice
        self._seen[alert_id] = None
        if len(self._seen) > SEEN_MAX:
            self._seen.pop(next(iter(self._seen)))
        if self.claim is not None and not self.claim(alert_id):
            self.counters.elsewhere += 1
            return  # another engine acts on it
        facts = self.alerts(alert_id)
        if facts is None:
            log.warning("linkage: alert %s not found", alert_id)
            return
        self.counters.alerts += 1
        now = self.clock()
        planned = plan(self.rules(), facts, dt.datetime.fromtimestamp(now, self.tz), now)
        self.counters.planned += len(planned)
        for p in planned:
            if p.confirm:
                with self._lock:
                    self._pending[p.key] = Pending(p, now + self.config.confirm_timeout_s,
                                                   p.describe())  # fmt: skip
                self._record(p, SYSTEM_ACTOR, Result(
                    "awaiting_confirmation", f"{p.rule}: waiting for an operator to confirm",
                ))  # fmt: skip
            elif p.run_at > now:
                with self._lock:
                    heapq.heappush(self._timers, (p.run_at, next(self._seq), p))
            else:
                self._submit(p, SYSTEM_ACTOR)

    def _tick(self) -> None:
        now = self.clock()
        due: list[PlannedAction] = []
        expired: list[Pending] = []
        with self._lock:
            while self._timers and self._timers[0][0] <= now:
                due.append(heapq.heappop(self._timers)[2])
            for key, pending in list(self._pending.items()):
                if pending.expires_at <= now:
                    expired.append(self._pending.pop(key))
            homes = self.arbiter.due_home(now)
        for p in due:
            self._submit(p, SYSTEM_ACTOR)
        for pending in expired:
            self._record(pending.planned, SYSTEM_ACTOR,
                         Result("cancelled", "confirmation expired"))  # fmt: skip
        for camera_id in homes:
            self._keep_home(camera_id, None)
            self._pool.submit(self._return_home, camera_id)

    # -- running actions ------------------------------------------------------------

    def _submit(self, p: PlannedAction, actor: str) -> None:
        self._pool.submit(self._run, p, actor)

    def _run(self, p: PlannedAction, actor: str) -> Result:
        with self._lock:
            self._running += 1
        try:
            result = self._attempts(p)
            self._record(p, actor, result)
            return result
        finally:
            with self._lock:
                self._running -= 1

    def _attempts(self, p: PlannedAction) -> Result:
        attempts = self.config.action_attempts
        reason = ""
        for attempt in range(1, attempts + 1):
            try:
                return self._execute(p)
            except ActionFailed as exc:
                reason = str(exc)
            except Exception as exc:  # noqa: BLE001 - recorded as failed, never lost
                reason = f"{type(exc).__name__}: {exc}"
                log.exception("linkage action %s raised", p.key)
            if attempt < attempts and not self._stop.wait(0.5 * attempt):
                log.info("linkage action %s failed (%s); retrying", p.key, reason)
        return Result("failed", reason, {"attempts": attempts})

    def _execute(self, p: PlannedAction) -> Result:
        action = p.action
        if isinstance(action, PtzPresetAction):
            return self._ptz_preset(p, action)
        if isinstance(action, VoiceAction):
            if self.voice is None:
                raise ActionFailed("no voice service configured")
            return self.voice.play(action.speaker, warning=action.warning, repeat=action.repeat)
        if action.kind == "popup":
            popup = {"camera_id": p.target_camera, "alert_id": p.alert_id, "rule": p.rule,
                     "at": self.clock()}  # fmt: skip
            self.popups.append(popup)
            if self.on_popup is not None:
                self.on_popup(popup)
            return Result("sent", f"camera {p.target_camera} shown on the wall")
        if action.kind == "dispatch":
            self.recorder.dispatch(p.alert_id, action.target, SYSTEM_ACTOR)
            return Result("sent", f"sent to dispatch target {action.target}")
        raise ActionFailed(f"unknown action {action.kind!r}")

    def _ptz_preset(self, p: PlannedAction, action: PtzPresetAction) -> Result:
        camera_id = p.target_camera
        if self.ptz is None:
            raise ActionFailed("no PTZ control configured")
        with self._lock:
            holder = self.arbiter.linkage_may_move(camera_id, self.clock())
        if holder is not None:
            return Result("skipped", f"camera {camera_id} is controlled by operator {holder}")
        preset = self.ptz.goto_preset(camera_id, action.preset)
        with self._lock:
            home_at = self.arbiter.linkage_moved(camera_id, self.clock())
            self._moved_by[camera_id] = p.alert_id
        self._keep_home(camera_id, home_at, p.alert_id)
        return Result("sent", f"camera {camera_id} → preset {preset.name or preset.token}",
                      {"preset_token": preset.token, "preset_name": preset.name,
                       "return_home_at": round(home_at, 3)})  # fmt: skip

    def _return_home(self, camera_id: str) -> None:
        with self._lock:
            alert_id = self._moved_by.pop(camera_id, None)
        described = {"kind": "ptz_home", "camera": camera_id}
        try:
            assert self.ptz is not None
            self.ptz.home(camera_id)
            result = Result("sent", f"camera {camera_id} returned home", described)
        except Exception as exc:  # noqa: BLE001 - recorded, never lost
            result = Result("failed", f"camera {camera_id} could not return home: {exc}",
                            described)  # fmt: skip
        if alert_id is not None:
            self._write(alert_id, SYSTEM_ACTOR, result)
        log.info("linkage: %s", result.note)

    def _record(self, p: PlannedAction, actor: str, result: Result) -> None:
        detail = {**p.describe(), **result.detail}
        self._write(p.alert_id, actor, Result(result.outcome, result.note, detail))

    def _write(self, alert_id: str, actor: str, result: Result) -> None:
        counter = result.outcome if result.outcome in ("sent", "answered", "failed", "skipped",
                                                        "cancelled") else None  # fmt: skip
        if counter is not None:
            with self._lock:
                setattr(self.counters, counter, getattr(self.counters, counter) + 1)
        try:
            self.recorder.record(alert_id, actor, result)
        except Exception:  # noqa: BLE001 - the action happened; say so in the log
            self.counters.errors += 1
            log.exception("linkage result of alert %s not recorded: %s %s", alert_id,
                          result.outcome, result.note)  # fmt: skip

    # -- operators: confirmations ------------------------------------------------

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{**p.described, "alert_id": p.planned.alert_id,
                     "expires_at": p.expires_at} for p in self._pending.values()]  # fmt: skip

    def confirm(self, key: str, user: str, *, accept: bool = True) -> None:
        """An operator confirms (runs now) or declines an action awaiting confirmation."""
        with self._lock:
            pending = self._pending.pop(key, None)
        if pending is None:
            raise ConfirmationNotFound(key)
        if accept:
            self._submit(pending.planned, user)
        else:
            self._record(pending.planned, user, Result("cancelled", f"declined by {user}"))

    # -- operators: PTZ -----------------------------------------------------------

    def take_ptz(self, camera_id: str, user: str) -> float:
        """``user`` commands ``camera_id`` (raises PtzBusy); until when they hold it."""
        with self._lock:
            pending = camera_id in self.arbiter.returns()
            until = self.arbiter.take(camera_id, user, self.clock())
            self._moved_by.pop(camera_id, None)
        if pending:
            self._keep_home(camera_id, None)  # the operator took it: it stays
        return until

    def release_ptz(self, camera_id: str, user: str) -> bool:
        with self._lock:
            return self.arbiter.release(camera_id, user)
