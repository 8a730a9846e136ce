"""Incidents without I/O: which alerts join an incident, what the incident keeps, which
messages it queues, and the hourly cap (alerts.domain.incidents)."""

from __future__ import annotations

from alerts.domain.incidents import (
    DEFAULT_GAPS_S,
    IncidentPolicy,
    Occurrence,
    place,
)
from alerts.domain.model import EvidenceRef
from tests.factories import make_alert

POLICY = IncidentPolicy(update_interval_s=60.0)


def opened(**over: object):  # type: ignore[no-untyped-def]
    a = make_alert(targets={"centre"}, created_at=1000.0, **over)
    a.opened()
    return a


def occ(i: int, at: float, tracks: tuple[int, ...] = (2,)) -> Occurrence:
    return Occurrence(f"occ-{i}", at, tracks, 15.0, "again", 0.8,
                      {"snapshot": EvidenceRef(f"s/{i}.jpg", "ab" * 32)})  # fmt: skip


def test_the_first_alert_opens_an_incident_of_one() -> None:
    assert place(POLICY, "loitering", 1000.0, None, 0).kind == "open"
    a = opened()
    assert (a.count, a.last_at, a.last_alert_id, a.suppressed) == (1, 1000.0, a.id, False)
    [first] = a.drain_occurrences()
    assert first.alert_id == a.id and first.at == 1000.0


def test_an_alert_within_the_gap_joins_the_open_incident() -> None:
    a = opened()
    gap = POLICY.gap_for("loitering")
    assert gap == DEFAULT_GAPS_S["loitering"]
    p = place(POLICY, "loitering", 1000.0 + gap, a, 1)
    assert p.kind == "join" and p.incident is a and not p.suppressed


def test_after_the_gap_or_once_closed_a_new_incident_starts() -> None:
    a = opened()
    gap = POLICY.gap_for("loitering")
    assert place(POLICY, "loitering", 1000.0 + gap + 0.1, a, 1).kind == "open"
    a.apply("resolve", actor="op", at=1001.0)
    assert place(POLICY, "loitering", 1002.0, a, 1).kind == "open"


def test_the_gap_counts_from_the_last_alert_not_the_first() -> None:
    a = opened()
    a.absorb(occ(2, 1100.0), suppressed=False, update_interval_s=60, reason="")
    assert place(POLICY, "loitering", 1100.0 + 119.0, a, 2).kind == "join"


def test_gaps_are_chosen_per_rule_type_and_configurable() -> None:
    assert POLICY.gap_for("camera_fault") > POLICY.gap_for("intrusion")
    assert POLICY.gap_for("custom_rule") == 60.0
    custom = IncidentPolicy(gaps_s={"intrusion": 5.0})
    a = opened(type="intrusion")
    assert place(custom, "intrusion", 1006.0, a, 1).kind == "open"
    assert place(POLICY, "intrusion", 1006.0, a, 1).kind == "join"


def test_disabled_policy_opens_every_alert() -> None:
    a = opened()
    assert place(IncidentPolicy(enabled=False), "loitering", 1001.0, a, 1).kind == "open"


def test_absorbing_counts_tracks_time_and_latest_alert() -> None:
    a = opened(track_ids=[1])
    a.drain()
    a.drain_occurrences()
    a.absorb(occ(2, 1010.0, (2, 1)), suppressed=False, update_interval_s=60, reason="")
    a.absorb(occ(3, 1005.0, (3,)), suppressed=False, update_interval_s=60, reason="")
    assert a.count == 3
    assert a.track_ids == [1, 2, 3]
    assert (a.created_at, a.last_at, a.last_alert_id) == (1000.0, 1010.0, "occ-2")
    assert [o.alert_id for o in a.drain_occurrences()] == ["occ-2", "occ-3"]
    history, _ = a.drain()
    assert history == []  # repeats are not steps of the handling
    assert a.status == "new"


def test_repeats_are_notified_at_most_once_per_interval_with_the_count() -> None:
    a = opened()
    _, created = a.drain()
    assert [m.event for m in created] == ["alert.created"]
    for i, at in enumerate((1010.0, 1030.0, 1069.0, 1071.0), start=2):
        a.absorb(occ(i, at), suppressed=False, update_interval_s=60, reason="")
    _, out = a.drain()
    assert [(m.event, m.seq, m.change["count"]) for m in out] == [
        ("alert.updated", 2, 2), ("alert.updated", 3, 5),
    ]  # fmt: skip
    assert out[0].idempotency_key(a.id) == f"{a.id}:alert.updated:2"


def test_closing_the_incident_sends_the_final_count() -> None:
    a = opened()
    a.absorb(occ(2, 1010.0), suppressed=False, update_interval_s=60, reason="")
    a.drain()
    a.apply("resolve", actor="op", at=1020.0)
    _, out = a.drain()
    assert out[0].change["to"] == "resolved" and out[0].change["count"] == 2


def test_beyond_the_cap_an_alert_joins_and_marks_the_incident_suppressed() -> None:
    policy = IncidentPolicy(hourly_cap=3)
    a = opened()
    a.apply("resolve", actor="op", at=1001.0)  # closed and past the gap: would open anew
    p = place(policy, "loitering", 1500.0, a, 3)
    assert p.kind == "join" and p.suppressed and "cap" in p.reason
    a.drain()
    a.absorb(occ(2, 1500.0), suppressed=True, update_interval_s=60, reason=p.reason)
    a.absorb(occ(3, 1600.0), suppressed=True, update_interval_s=60, reason=p.reason)
    assert a.suppressed and a.count == 3 and a.status == "resolved"
    history, out = a.drain()
    assert [h.action for h in history] == ["suppressed"]
    assert [m.change["action"] for m in out] == ["suppressed"]  # one message, then silence
    assert [o.suppressed for o in a.drain_occurrences()] == [False, True, True]


def test_under_the_cap_or_an_hour_later_a_new_incident_opens() -> None:
    policy = IncidentPolicy(hourly_cap=3, hourly_caps={"crowd": None})
    a = opened()
    a.apply("resolve", actor="op", at=1001.0)
    assert place(policy, "loitering", 1500.0, a, 2).kind == "open"
    assert place(policy, "loitering", 1000.0 + 3601.0, a, 3).kind == "open"
    assert place(policy, "crowd", 1500.0, a, 1000).kind == "open"  # no cap for crowds


def test_the_track_list_is_bounded() -> None:
    a = opened(track_ids=[0])
    for i in range(1, 400):
        a.absorb(occ(i, 1000.0 + i, (i,)), suppressed=False, update_interval_s=60, reason="")
    assert a.count == 400 and len(a.track_ids) == 200
