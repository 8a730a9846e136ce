"""The eval as a gate (issue 25): the fast subset of eval/gate.yaml replayed through the hub
on the shared clips; a per-type recall or precision below its floor fails the suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval import gate, run


def test_below_floors_names_each_figure_under_its_floor() -> None:
    table = {
        "wandering": {"scenarios": 2, "recall": 1.0, "precision": 0.5},
        "person_down": {"scenarios": 1, "recall": None, "precision": None},
    }
    floors = {
        "wandering": {"recall": 1.0, "precision": 0.9},
        "person_down": {"recall": 1.0, "precision": 1.0},  # silent: precision holds
        "wrong_way": {"precision": 1.0},
    }
    assert gate.below_floors(table, floors) == [
        "wandering: precision 0.50 < floor 0.90",
        "person_down: recall not measured (floor 1)",
        "wrong_way: precision not measured (floor 1)",
    ]
    assert gate.below_floors(table, {"wandering": {"recall": 1.0, "precision": 0.5}}) == []


def test_gate_file_is_checked(tmp_path: Path) -> None:
    bad = tmp_path / "gate.yaml"
    bad.write_text("scenarios: [crosswalk]\nfloors: {wandering: {recall: 2}}\n")
    with pytest.raises(gate.GateFileError, match=r"floors.wandering.recall: a number in 0..1"):
        gate.load_gate(bad)
    bad.write_text("scenarios: [crosswalk]\nfloors: {walking: {recall: 1}}\n")
    with pytest.raises(gate.GateFileError, match="floors.walking: not a rule type"):
        gate.load_gate(bad)
    g = gate.load_gate()
    names = {sc["name"] for sc in run.load_scenarios(run.DEFAULT_SCENARIOS)["scenarios"]}
    assert set(g["scenarios"]) <= names


def test_eval_subset_holds_its_floors(videos_dir: Path, models_dir: Path) -> None:
    """Replays the subset (about 3 minutes on 2 cores, less with eval/.cache warm) and fails
    on any per-type recall or precision below its floor in eval/gate.yaml."""
    table, results, problems = gate.run_gate()
    figures = {
        t: (m["recall"], m["precision"], m["false_alarms"]) for t, m in sorted(table.items())
    }
    assert not problems, f"{problems}; figures (recall, precision, FA): {figures}"
    assert all(r.status in ("PASS", "FAIL") for r in results)
