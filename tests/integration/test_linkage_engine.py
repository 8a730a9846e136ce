"""The linkage engine over a real database: new alerts from the alert feed → actions,
every result in the alert's history and the audit log. The PTZ and voice ports are
in-memory here (their real adapters have their own tests against ipycam and SIPp)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from accounts.store import AuditRecord
from alerts import queries
from alerts.adapters.sql import OutboxRecord, SqlUnitOfWork
from alerts.feed import AlertFeed
from linkage.arbiter import PtzBusy
from linkage.config import LinkageConfig
from linkage.engine import LinkageEngine
from linkage.ports import ActionFailed, Preset, Result
from linkage.recorder import SqlResultRecorder
from shaobing.db import open_database
from tests.factories import make_alert, store


class MemoryPtz:
    def __init__(self, presets: dict[str, str]) -> None:
        self.known = presets  # token → name
        self.calls: list[tuple[str, ...]] = []
        self.refuse = False

    def presets(self, camera_id: str) -> list[Preset]:
        return [Preset(t, n) for t, n in self.known.items()]

    def goto_preset(self, camera_id: str, preset: str) -> Preset:
        self.calls.append(("goto", camera_id, preset))
        if self.refuse:
            raise ActionFailed("device answered SOAP fault: ter:NotAuthorized")
        for token, name in self.known.items():
            if preset in (token, name):
                return Preset(token, name)
        raise ActionFailed(f"no preset {preset!r} on camera {camera_id}")

    def set_preset(self, camera_id: str, name: str) -> Preset:
        self.calls.append(("set", camera_id, name))
        token = str(len(self.known) + 1)
        self.known[token] = name
        return Preset(token, name)

    def move(self, camera_id: str, pan: float, tilt: float, zoom: float) -> None:
        self.calls.append(("move", camera_id))

    def stop(self, camera_id: str) -> None:
        self.calls.append(("stop", camera_id))

    def home(self, camera_id: str) -> None:
        self.calls.append(("home", camera_id))


class MemoryVoice:
    def __init__(self) -> None:
        self.played: list[tuple[str, str | None]] = []

    def play(self, speaker_id: str, *, warning: str | None = None, text: str | None = None,
             repeat: int | None = None, manual: bool = False) -> Result:  # fmt: skip
        self.played.append((speaker_id, warning))
        return Result("answered", f"{speaker_id} played {warning}", {"repeat": repeat or 1})


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine, factory = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield factory
    engine.dispose()


CONFIG: dict[str, Any] = {
    "speakers": [{"id": "dam-speaker", "kind": "sip", "uri": "sip:speaker@127.0.0.1:5099"}],
    "return_home_s": 0.5,
    "confirm_timeout_s": 2.0,
    "rules": [
        {"name": "reservoir", "types": ["intrusion"], "min_severity": "medium", "actions": [
            {"kind": "ptz_preset", "camera": "dam-ptz", "preset": "水库大坝"},
            {"kind": "voice", "speaker": "dam-speaker", "warning": "reservoir", "repeat": 2},
            {"kind": "popup", "camera": "dam-ptz"},
            {"kind": "dispatch", "target": "water-bureau"},
        ]},
        {"name": "crowd-confirm", "types": ["crowd"], "confirm": True, "actions": [
            {"kind": "voice", "speaker": "dam-speaker", "warning": "crowd"}]},
        {"name": "missing-preset", "types": ["wrong_way"], "actions": [
            {"kind": "ptz_preset", "camera": "dam-ptz", "preset": "不存在"}]},
        {"name": "delayed", "types": ["stopped_vehicle"], "delay_s": 0.3, "actions": [
            {"kind": "popup", "camera": "road-2"}]},
    ],
}  # fmt: skip


class Rig:
    def __init__(self, sessions: sessionmaker[Session], config: dict[str, Any]) -> None:
        self.sessions = sessions
        self.feed = AlertFeed()
        self.notified = threading.Event()
        self.recorder = SqlResultRecorder(lambda: SqlUnitOfWork(sessions),
                                          targets=lambda: {"water-bureau"}, feed=self.feed,
                                          on_committed=self.notified.set)  # fmt: skip
        self.ptz = MemoryPtz({"1": "水库大坝", "home": "Home"})
        self.voice = MemoryVoice()
        self.engine = LinkageEngine(LinkageConfig.model_validate(config),
                                    alerts=self.recorder.read, recorder=self.recorder,
                                    ptz=self.ptz, voice=self.voice)  # fmt: skip
        self.unsubscribe = self.feed.subscribe(self.engine.on_feed)

    def new_alert(self, i: int, **over: Any) -> str:
        alert = store(self.sessions, make_alert(i, **over))
        self.feed.publish("alert", alert.id)
        return alert.id

    def linkage(self, alert_id: str) -> list[dict[str, Any]]:
        with self.sessions() as session:
            return [{"actor": h.actor, "note": h.note, **h.detail}
                    for h in queries.history(session, alert_id) if h.action == "linkage"]


@pytest.fixture
def rig(sessions: sessionmaker[Session]) -> Iterator[Rig]:
    r = Rig(sessions, CONFIG)
    r.engine.start()
    yield r
    r.unsubscribe()
    r.engine.stop()


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_alert_runs_every_action_and_records_each(rig: Rig) -> None:
    alert_id = rig.new_alert(1, type="intrusion", severity="high")
    wait_for(lambda: len([e for e in rig.linkage(alert_id) if e["kind"] != "ptz_home"]) == 4)
    by_kind = {e["kind"]: e for e in rig.linkage(alert_id)}
    assert by_kind["ptz_preset"]["outcome"] == "sent"
    assert by_kind["ptz_preset"]["preset_token"] == "1"
    assert by_kind["ptz_preset"]["note"] == "camera dam-ptz → preset 水库大坝"
    assert by_kind["voice"]["outcome"] == "answered" and by_kind["voice"]["repeat"] == 2
    assert by_kind["popup"]["outcome"] == "sent" and by_kind["popup"]["camera"] == "dam-ptz"
    assert by_kind["dispatch"]["outcome"] == "sent"
    assert ("goto", "dam-ptz", "水库大坝") in rig.ptz.calls
    assert rig.voice.played == [("dam-speaker", "reservoir")]
    assert rig.engine.popups[-1]["camera_id"] == "dam-ptz"
    # the dispatch action queued a message for its target, and woke the dispatcher
    assert rig.notified.is_set()
    with rig.sessions() as session:
        targets = session.execute(select(OutboxRecord.target).where(
            OutboxRecord.alert_id == alert_id)).scalars().all()  # fmt: skip
        audited = session.execute(select(AuditRecord).where(
            AuditRecord.action == "linkage_action", AuditRecord.target == alert_id)).scalars().all()
    assert targets == ["water-bureau"]
    assert len(audited) >= 4 and all(a.actor == "linkage" for a in audited)
    # the camera the linkage moved goes home by itself
    wait_for(lambda: ("home", "dam-ptz") in rig.ptz.calls)
    wait_for(lambda: any(e["kind"] == "ptz_home" for e in rig.linkage(alert_id)))


def test_non_matching_alert_does_nothing(rig: Rig) -> None:
    alert_id = rig.new_alert(2, type="intrusion", severity="low")
    other = rig.new_alert(3, type="intrusion", severity="high")
    wait_for(lambda: len(rig.linkage(other)) >= 4)
    assert rig.linkage(alert_id) == []


def test_missing_preset_and_refusing_camera_fail_with_the_reason(rig: Rig) -> None:
    alert_id = rig.new_alert(4, type="wrong_way")
    wait_for(lambda: len(rig.linkage(alert_id)) == 1)
    entry = rig.linkage(alert_id)[0]
    assert entry["outcome"] == "failed" and entry["attempts"] == 2
    assert entry["note"] == "no preset '不存在' on camera dam-ptz"
    rig.ptz.refuse = True
    refused = rig.new_alert(5, type="intrusion", severity="high")
    wait_for(lambda: any(e["kind"] == "ptz_preset" for e in rig.linkage(refused)))
    ptz = next(e for e in rig.linkage(refused) if e["kind"] == "ptz_preset")
    assert ptz["outcome"] == "failed" and "NotAuthorized" in ptz["note"]
    assert rig.engine.health()["status"] == "ok"  # never a stuck linkage


def test_operator_holding_the_camera_wins_over_linkage(rig: Rig) -> None:
    rig.engine.take_ptz("dam-ptz", "alice")
    with pytest.raises(PtzBusy):
        rig.engine.take_ptz("dam-ptz", "bob")
    alert_id = rig.new_alert(6, type="intrusion", severity="high")
    wait_for(lambda: any(e["kind"] == "ptz_preset" for e in rig.linkage(alert_id)))
    ptz = next(e for e in rig.linkage(alert_id) if e["kind"] == "ptz_preset")
    assert ptz["outcome"] == "skipped" and "alice" in ptz["note"]
    assert not any(c[0] == "goto" for c in rig.ptz.calls)


def test_confirmation_confirm_decline_and_expiry(rig: Rig) -> None:
    first = rig.new_alert(7, type="crowd")
    wait_for(lambda: len(rig.engine.pending()) == 1)
    key = rig.engine.pending()[0]["key"]
    wait_for(lambda: len(rig.linkage(first)) == 1)  # recorded just after it is pending
    assert rig.linkage(first)[0]["outcome"] == "awaiting_confirmation"
    rig.engine.confirm(key, "alice")
    wait_for(lambda: any(e["outcome"] == "answered" for e in rig.linkage(first)))
    assert next(e for e in rig.linkage(first) if e["outcome"] == "answered")["actor"] == "alice"

    second = rig.new_alert(8, type="crowd")
    wait_for(lambda: len(rig.engine.pending()) == 1)
    rig.engine.confirm(rig.engine.pending()[0]["key"], "bob", accept=False)
    wait_for(lambda: any(e["outcome"] == "cancelled" for e in rig.linkage(second)))

    third = rig.new_alert(9, type="crowd")  # nobody answers: it expires (2 s here)
    wait_for(lambda: any(e["outcome"] == "cancelled" for e in rig.linkage(third)))
    assert rig.linkage(third)[-1]["note"] == "confirmation expired"
    assert rig.voice.played == [("dam-speaker", "crowd")]


def test_delayed_action_waits(rig: Rig) -> None:
    start = time.time()
    alert_id = rig.new_alert(10, type="stopped_vehicle")
    wait_for(lambda: len(rig.linkage(alert_id)) == 1)
    assert rig.engine.popups[-1]["at"] - start >= 0.3


def test_recorder_failure_is_counted_not_fatal(sessions: sessionmaker[Session]) -> None:
    r = Rig(sessions, CONFIG)
    r.engine.start()
    try:
        r.feed.publish("alert", "no-such-alert")  # not stored: logged, loop goes on
        alert_id = r.new_alert(11, type="stopped_vehicle")
        wait_for(lambda: len(r.linkage(alert_id)) == 1)
        assert r.engine.health()["thread_alive"] is True
    finally:
        r.unsubscribe()
        r.engine.stop()
