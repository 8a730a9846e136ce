"""The patrol schedule (camera_registry/patrol.py): plain Python, no I/O."""

from __future__ import annotations

from camera_registry.patrol import PatrolConfig, PatrolPlan, VisitResult


def test_first_visits_are_spread_over_the_budget_then_due_after_their_interval() -> None:
    plan = PatrolPlan(PatrolConfig(streams=2, look_s=10, interval_s=600))
    for i in range(5):
        plan.add(f"c{i}", "other", "县", now=0.0)
    assert plan.due(0.0, limit=10) == ["c0", "c1"]  # two at once; the rest 10 s apart
    assert plan.due(10.0, limit=10) == ["c2", "c3"]
    assert plan.due(10.0, limit=10) == []
    assert plan.due(20.0, limit=1) == ["c4"]
    assert plan.done("c0", 30.0, VisitResult("online")) == 630.0


def test_an_abnormal_visit_brings_the_next_one_sooner() -> None:
    plan = PatrolPlan(PatrolConfig(interval_s=1000, abnormal_factor=0.1))
    plan.add("c", "other", "", now=0.0)
    plan.due(0.0, 1)
    assert plan.done("c", 5.0, VisitResult("offline")) == 105.0
    plan.due(105.0, 1)
    assert plan.done("c", 110.0, VisitResult("online", faults=["frozen"])) == 210.0
    plan.due(210.0, 1)
    assert plan.done("c", 215.0, VisitResult("online", alerts=1)) == 315.0
    plan.due(315.0, 1)
    assert plan.done("c", 320.0, VisitResult("online")) == 1320.0


def test_intervals_by_programme_and_area_the_longest_area_path_wins() -> None:
    cfg = PatrolConfig(interval_s=1800, programmes={"huiyan": 86400},
                       areas={"示例县": 3600, "示例县/城关镇": 600})  # fmt: skip
    plan = PatrolPlan(cfg)
    assert plan.interval_for("huiyan", "其他县") == 86400
    assert plan.interval_for("xueliang", "其他县") == 1800
    assert plan.interval_for("huiyan", "示例县/河口镇") == 3600
    assert plan.interval_for("huiyan", "示例县/城关镇/东村") == 600
    assert plan.interval_for("huiyan", "示例县/城关镇外") == 3600  # a path, not a prefix


def test_a_removed_camera_is_never_due_again() -> None:
    plan = PatrolPlan(PatrolConfig(streams=4))
    plan.add("a", "other", "", 0.0)
    plan.add("b", "other", "", 0.0)
    plan.remove("a")
    assert plan.due(100.0, 10) == ["b"]
    assert plan.done("a", 100.0, VisitResult("online")) is None
