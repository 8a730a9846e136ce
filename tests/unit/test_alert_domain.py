"""The alert domain without I/O: the transition table, history, message keys, routing,
escalation timing, feedback mapping, cooldown, and the in-process bus contract."""

from __future__ import annotations

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest

from alerts.adapters.memory_bus import MemoryEventBus
from alerts.domain.cooldown import CooldownGate
from alerts.domain.escalation import escalate_if_due
from alerts.domain.model import (
    ACTIONS,
    STATUSES,
    Alert,
    Deadlines,
    TransitionError,
    feedback_action,
)
from alerts.domain.routing import Department, Router, RoutingRule, Target
from analytics.types import Event
from core.area import Area
from core.schedule import ScheduleWindow
from tests.factories import make_alert

TZ = ZoneInfo("Asia/Shanghai")
MONDAY_10 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=TZ)
MONDAY_23 = dt.datetime(2026, 11, 23, 23, 0, tzinfo=TZ)

# The full table: (state, action) -> state after, or None when refused.
EXPECTED = {
    ("new", "acknowledge"): "acknowledged", ("new", "dispatch"): "dispatched",
    ("new", "start"): None, ("new", "resolve"): "resolved",
    ("new", "false_alarm"): "false_alarm", ("new", "reopen"): None,
    ("acknowledged", "acknowledge"): None, ("acknowledged", "dispatch"): "dispatched",
    ("acknowledged", "start"): "in_progress", ("acknowledged", "resolve"): "resolved",
    ("acknowledged", "false_alarm"): "false_alarm", ("acknowledged", "reopen"): None,
    ("dispatched", "acknowledge"): None, ("dispatched", "dispatch"): "dispatched",
    ("dispatched", "start"): "in_progress", ("dispatched", "resolve"): "resolved",
    ("dispatched", "false_alarm"): "false_alarm", ("dispatched", "reopen"): None,
    ("in_progress", "acknowledge"): None, ("in_progress", "dispatch"): "dispatched",
    ("in_progress", "start"): None, ("in_progress", "resolve"): "resolved",
    ("in_progress", "false_alarm"): "false_alarm", ("in_progress", "reopen"): None,
    ("resolved", "acknowledge"): None, ("resolved", "dispatch"): None,
    ("resolved", "start"): None, ("resolved", "resolve"): None,
    ("resolved", "false_alarm"): None, ("resolved", "reopen"): "acknowledged",
    ("false_alarm", "acknowledge"): None, ("false_alarm", "dispatch"): None,
    ("false_alarm", "start"): None, ("false_alarm", "resolve"): None,
    ("false_alarm", "false_alarm"): None, ("false_alarm", "reopen"): "acknowledged",
}  # fmt: skip


def alert_in(status: str) -> Alert:
    a = make_alert(targets={"centre"})
    a.status = status  # type: ignore[assignment]
    return a


@pytest.mark.parametrize(("state", "action"), sorted(EXPECTED))
def test_transition_table(state: str, action: str) -> None:
    assert len(EXPECTED) == len(STATUSES) * len(ACTIONS)
    a = alert_in(state)
    expected = EXPECTED[(state, action)]
    kwargs = {"department_id": "pcs", "reason": "a shadow"}
    if expected is None:
        with pytest.raises(TransitionError):
            a.apply(action, actor="op", at=5.0, **kwargs)  # type: ignore[arg-type]
        assert a.status == state and not a.new_history and not a.outgoing
        return
    entry = a.apply(action, actor="op", at=5.0, note="n", **kwargs)  # type: ignore[arg-type]
    assert a.status == expected
    assert (entry.actor, entry.at, entry.from_status, entry.to_status, entry.note) == (
        "op",
        5.0,
        state,
        expected,
        "n",
    )
    assert a.new_history == [entry]
    assert a.outgoing[0].event == "alert.updated" and a.outgoing[0].change["to"] == expected


def test_dispatch_needs_a_department_and_false_alarm_a_reason() -> None:
    a = alert_in("acknowledged")
    with pytest.raises(TransitionError, match="department"):
        a.apply("dispatch", actor="op", at=1.0)
    with pytest.raises(TransitionError, match="reason"):
        a.apply("false_alarm", actor="op", at=1.0)
    a.apply("dispatch", actor="op", at=2.0, department_id="pcs-1", assignee="zhang")
    assert (a.department_id, a.assignee, a.departments) == ("pcs-1", "zhang", {"pcs-1"})
    a.apply("false_alarm", actor="zhang", at=3.0, reason="树影晃动")
    assert a.false_alarm_reason == "树影晃动" and a.resolved_at == 3.0
    a.apply("reopen", actor="sup", at=4.0, note="seen again")
    assert a.status == "acknowledged" and a.resolved_at is None and a.false_alarm_reason is None


def test_every_message_has_its_own_idempotency_key() -> None:
    a = make_alert(targets={"centre", "police"})
    a.opened()
    a.apply("acknowledge", actor="op", at=1.0)
    a.apply("resolve", actor="op", at=2.0)
    keys = [m.idempotency_key(a.id) for m in a.outgoing]
    assert keys == [f"{a.id}:alert.created:1", f"{a.id}:alert.updated:2",
                    f"{a.id}:alert.updated:3"]  # fmt: skip
    assert all(m.targets == ("centre", "police") for m in a.outgoing)
    history, outgoing = a.drain()
    assert [h.action for h in history] == ["created", "acknowledge", "resolve"]
    assert len(outgoing) == 3 and not a.outgoing and not a.new_history


def test_feedback_statuses_map_to_actions() -> None:
    assert feedback_action("受理", "new") == "acknowledge"
    assert feedback_action("accepted", "dispatched") == "start"
    assert feedback_action("处置中", "acknowledged") == "start"
    assert feedback_action("办结", "in_progress") == "resolve"
    assert feedback_action("误报", "new") == "false_alarm"
    with pytest.raises(TransitionError, match="unknown feedback status"):
        feedback_action("done", "new")


# -- routing ---------------------------------------------------------------------------

CHENGGUAN = Area(county="示例县", township="城关镇")
RENMIN = Area(county="示例县", township="城关镇", village="人民村", grid="03")


def router() -> Router:
    return Router(
        rules=[
            RoutingRule("persons-township", types=frozenset({"loitering", "person_down"}),
                        area=CHENGGUAN, departments=("cg-pcs",), ack_deadline_s=300),
            RoutingRule("night-severe", min_severity="high",
                        schedule=(ScheduleWindow(start="22:00", end="06:00"),),
                        departments=("county-centre",), targets=("duty-phone",),
                        ack_deadline_s=60),
            RoutingRule("grid", area=RENMIN, departments=("grid-03",)),
        ],
        departments={
            "cg-pcs": Department("cg-pcs", "城关派出所", "police", "township", (CHENGGUAN,),
                                 ("pcs-api",)),
            "grid-03": Department("grid-03", "人民村网格", "grid", "grid", (RENMIN,),
                                  ("grid-app",)),
            "county-centre": Department("county-centre", "县综治中心", "centre", "county",
                                        (Area(county="示例县"),), ("centre",)),
        },
        targets={n: Target(n, scope="routed") for n in ("pcs-api", "grid-app", "duty-phone")}
        | {"centre": Target("centre", scope="all", types=frozenset({"loitering", "crowd"})),
           "archive": Target("archive")},
    )  # fmt: skip


def test_routing_by_type_area_severity_and_time() -> None:
    r = router()
    route = r.route("loitering", RENMIN, "low", MONDAY_10)
    assert route.rules == ["persons-township", "grid"]
    assert route.departments == ["cg-pcs", "grid-03"]
    assert route.targets == ["archive", "centre", "grid-app", "pcs-api"]
    assert route.tier == "grid" and route.ack_deadline_s == 300
    # Another township: only the 'all' targets that take the type.
    other = r.route("intrusion", Area(county="示例县", township="河西镇"), "low", MONDAY_10)
    assert (other.departments, other.targets, other.tier) == ([], ["archive"], "township")
    # A severe alert at night also goes to the county duty phone, with the tighter deadline.
    night = r.route("person_down", CHENGGUAN, "high", MONDAY_23)
    assert night.departments == ["cg-pcs", "county-centre"]
    assert "duty-phone" in night.targets and night.ack_deadline_s == 60
    assert "duty-phone" not in r.route("person_down", CHENGGUAN, "high", MONDAY_10).targets
    assert r.route("person_down", CHENGGUAN, "medium", MONDAY_23).ack_deadline_s == 300


# -- escalation ------------------------------------------------------------------------


def routed_alert(r: Router, created_at: float = 1000.0) -> Alert:
    route = r.route("loitering", RENMIN, "low", MONDAY_10)
    a = make_alert(area=RENMIN, created_at=created_at, severity="low")
    a.departments, a.targets, a.tier = set(route.departments), set(route.targets), route.tier
    a.deadlines = Deadlines(ack_s=300, resolve_s=None)
    return a


def test_unacknowledged_alert_escalates_grid_township_county_then_stops() -> None:
    r = router()
    a = routed_alert(r)
    assert a.due_at() == 1300.0
    assert escalate_if_due(a, r, 1299.0) is None
    first = escalate_if_due(a, r, 1300.0)
    assert first is not None and a.tier == "township" and a.severity == "medium"
    assert "cg-pcs" in first.detail["departments"] and "not acknowledged" in first.note
    assert a.due_at() == 1600.0  # the deadline runs again from the escalation
    second = escalate_if_due(a, r, 1600.0)
    assert second is not None and a.tier == "county" and a.severity == "high"
    assert "county-centre" in a.departments and "centre" in a.targets
    assert a.due_at() is None and escalate_if_due(a, r, 99999.0) is None
    events = [m.event for m in a.outgoing]
    assert events == ["alert.escalated", "alert.escalated"]
    assert "county-centre" in a.outgoing[-1].change["departments"]


def test_acknowledging_stops_the_ack_clock_and_resolve_deadline_takes_over() -> None:
    r = router()
    a = routed_alert(r)
    a.deadlines.resolve_s = 1000
    a.apply("acknowledge", actor="op", at=1100.0)
    assert a.due_at() == 2100.0
    assert escalate_if_due(a, r, 1300.0) is None
    entry = escalate_if_due(a, r, 2100.0)
    assert entry is not None and "not resolved within 1000 s" in entry.note
    a.apply("resolve", actor="op", at=2200.0)
    assert a.due_at() is None


def test_no_township_department_goes_straight_to_the_county() -> None:
    r = router()
    del r.departments["cg-pcs"]
    a = routed_alert(r)
    escalate_if_due(a, r, 1300.0)
    assert a.tier == "county" and "county-centre" in a.departments


# -- cooldown and the bus --------------------------------------------------------------


def event(track: int = 1, key: str | None = None) -> Event:
    return Event(camera_id="c", rule="r", type="intrusion", ts=0.0, pts=0.0, track_ids=[track],
                 object_class="person", zone="z", severity="low", measured=1, threshold=1,
                 unit="s", explanation="x", confidence=1.0, key=key)  # fmt: skip


def test_cooldown_is_per_subject_and_thread_safe() -> None:
    gate = CooldownGate()
    assert gate.allow(event(1), 0.0, 10) and not gate.allow(event(1), 5.0, 10)
    assert gate.allow(event(2), 5.0, 10) and gate.allow(event(1), 10.0, 10)
    allowed: list[bool] = []
    barrier = threading.Barrier(8)

    def race() -> None:
        barrier.wait()
        allowed.append(gate.allow(event(99), 100.0, 10))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 1  # exactly one of eight concurrent callers wins


def test_memory_bus_redelivers_until_acknowledged() -> None:
    bus = MemoryEventBus()
    bus.subscribe("events", "alerts")
    bus.publish("events", {"n": 1})
    first = bus.consume("events", "alerts", timeout_s=1)
    assert first is not None and first.payload == {"n": 1} and first.attempts == 1
    first.nack()
    again = bus.consume("events", "alerts", timeout_s=1)
    assert again is not None and again.id == first.id and again.attempts == 2
    assert bus.pending("events", "alerts") == 1
    again.ack()
    assert bus.pending("events", "alerts") == 0
    assert bus.consume("events", "alerts", timeout_s=0.01) is None
    with pytest.raises(KeyError, match="subscribe"):
        bus.consume("events", "nobody", timeout_s=0)
