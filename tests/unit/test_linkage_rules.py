"""Linkage domain (no I/O): rules → planned actions, the PTZ arbiter, config checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from core.area import Area
from linkage.arbiter import PtzArbiter, PtzBusy
from linkage.config import LinkageConfig, LinkageRule
from linkage.rules import AlertFacts, plan
from shaobing.config import ConfigError, load_config

TZ = ZoneInfo("Asia/Shanghai")
MONDAY_NOON = dt.datetime(2026, 12, 7, 12, 0, tzinfo=TZ)
MONDAY_NIGHT = dt.datetime(2026, 12, 7, 23, 30, tzinfo=TZ)
DAM = Area(county="示例县", township="城关镇", village="水库村")


def facts(**over: object) -> AlertFacts:
    base: dict[str, object] = dict(id="a1", type="intrusion", camera_id="dam-1", area=DAM,
                                   severity="high", created_at=1000.0)  # fmt: skip
    base.update(over)
    return AlertFacts(**base)  # type: ignore[arg-type]


def rule(**over: object) -> LinkageRule:
    data: dict[str, object] = {
        "name": "reservoir", "types": ["intrusion"], "min_severity": "medium",
        "area": {"county": "示例县", "township": "城关镇"},
        "actions": [{"kind": "ptz_preset", "camera": "dam-ptz", "preset": "水库大坝"},
                    {"kind": "popup", "camera": "dam-ptz"}],
    }  # fmt: skip
    data.update(over)
    return LinkageRule.model_validate(data)


def test_matching_rule_plans_every_action_in_order() -> None:
    planned = plan([rule()], facts(), MONDAY_NOON, now=50.0)
    assert [p.action.kind for p in planned] == ["ptz_preset", "popup"]
    assert [p.key for p in planned] == ["a1:reservoir:0", "a1:reservoir:1"]
    assert all(p.run_at == 50.0 and not p.confirm for p in planned)
    assert planned[0].target_camera == "dam-ptz"
    assert planned[0].describe()["preset"] == "水库大坝"


@pytest.mark.parametrize(
    "over",
    [
        {"type": "loitering"},  # another alert type
        {"severity": "low"},  # below min_severity
        {"area": Area(county="示例县", township="河西镇")},  # outside the area
        {"camera_id": "other"},  # not one of the rule's cameras
    ],
)
def test_rule_does_not_match(over: dict[str, object]) -> None:
    r = rule(cameras=["dam-1"])
    assert plan([r], facts(**over), MONDAY_NOON, now=0.0) == []


def test_schedule_delay_confirm_and_disabled() -> None:
    night = rule(schedule=[{"start": "20:00", "end": "06:00"}], delay_s=5, confirm=True)
    assert plan([night], facts(), MONDAY_NOON, now=0.0) == []
    planned = plan([night], facts(), MONDAY_NIGHT, now=100.0)
    assert {p.run_at for p in planned} == {105.0} and all(p.confirm for p in planned)
    assert plan([rule(enabled=False)], facts(), MONDAY_NOON, now=0.0) == []


def test_default_camera_is_the_alerts() -> None:
    r = rule(actions=[{"kind": "ptz_preset", "preset": "1"}])
    assert plan([r], facts(), MONDAY_NOON, 0.0)[0].target_camera == "dam-1"


def test_config_rejects_unknown_speaker_warning_and_bad_speakers() -> None:
    voice = {"kind": "voice", "speaker": "spk", "warning": "reservoir"}
    with pytest.raises(ValidationError, match="unknown speaker 'spk'"):
        LinkageConfig.model_validate({"rules": [{"name": "r", "actions": [voice]}]})
    spk = {"id": "spk", "kind": "sip", "uri": "sip:spk@127.0.0.1:5060"}
    with pytest.raises(ValidationError, match="unknown warning 'nope'"):
        LinkageConfig.model_validate({"speakers": [spk], "rules": [
            {"name": "r", "actions": [{**voice, "warning": "nope"}]}]})  # fmt: skip
    with pytest.raises(ValidationError, match="needs uri: sip:"):
        LinkageConfig.model_validate({"speakers": [{"id": "x", "kind": "sip"}]})
    with pytest.raises(ValidationError, match="needs url"):
        LinkageConfig.model_validate({"speakers": [{"id": "x", "kind": "http"}]})
    with pytest.raises(ValidationError, match="actions"):
        LinkageConfig.model_validate({"rules": [{"name": "r", "actions": []}]})
    ok = LinkageConfig.model_validate({"speakers": [spk], "rules": [
        {"name": "r", "actions": [voice]}]})  # fmt: skip
    assert ok.warnings["reservoir"].text.startswith("水库危险")


def test_arbiter_one_operator_at_a_time() -> None:
    arb = PtzArbiter(hold_s=60, return_home_s=120)
    assert arb.take("c", "alice", now=0) == 60
    with pytest.raises(PtzBusy) as busy:
        arb.take("c", "bob", now=30)
    assert busy.value.holder == "alice"
    assert arb.take("c", "alice", now=50) == 110  # her commands refresh the hold
    assert arb.take("c", "bob", now=111) == 171  # expired: bob may take it
    assert arb.release("c", "alice") is False and arb.release("c", "bob") is True
    assert arb.holder("c", now=112) is None


def test_arbiter_returns_home_unless_an_operator_took_it() -> None:
    arb = PtzArbiter(hold_s=60, return_home_s=120)
    assert arb.linkage_may_move("c", now=0) is None
    assert arb.linkage_moved("c", now=0) == 120
    assert arb.due_home(now=119) == []
    assert arb.due_home(now=120) == ["c"]
    assert arb.due_home(now=121) == []  # once
    arb.linkage_moved("c", now=200)
    arb.take("c", "alice", now=210)  # the operator took it: it stays
    assert arb.due_home(now=400) == []
    assert arb.linkage_may_move("c", now=220) == "alice"


def test_config_file_errors_name_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "hub.yaml"
    bad.write_text("linkage:\n  speakers:\n    - {id: s, kind: sip, uri: 'http://x'}\n"
                   "  rules:\n    - {name: r, actions: [{kind: ptz, preset: '1'}]}\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    text = "\n".join(str(p) for p in err.value.problems)
    assert f"{bad}: linkage.speakers[0](id=s): a sip speaker needs uri" in text
    assert f"{bad}: linkage.rules[0](name=r).actions[0]:" in text and "ptz_preset" in text
