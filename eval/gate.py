"""The eval as a gate: a fast subset of the scenarios with per-type floors on recall and
precision (``eval/gate.yaml``). ``tests/integration/test_eval_gate.py`` runs it, so the test
suite (and ``.ci/run``) fails when a change lowers a figure below its floor.

    python -m eval.gate            # run the subset, print the figures, exit 1 below a floor

The subset uses only the shared clips (``../shared/assets/videos``, the same the test
suite needs), never the fetched public footage, so it runs wherever the tests run.
"""

from __future__ import annotations

import concurrent.futures
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from eval import run, transforms

GATE_FILE = run.EVAL_DIR / "gate.yaml"


class GateFileError(ValueError):
    pass


def load_gate(path: Path = GATE_FILE) -> dict[str, Any]:
    """{'scenarios': [names], 'floors': {type: {'recall': x, 'precision': y}}}, checked."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    names, floors = data.get("scenarios"), data.get("floors")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise GateFileError(f"{path.name}: scenarios: a list of scenario names")
    if not isinstance(floors, dict) or not floors:
        raise GateFileError(f"{path.name}: floors: a mapping type -> {{recall, precision}}")
    for t, f in floors.items():
        if t not in run.RULE_TYPES:
            raise GateFileError(f"{path.name}: floors.{t}: not a rule type")
        if not isinstance(f, dict) or set(f) - {"recall", "precision"}:
            raise GateFileError(f"{path.name}: floors.{t}: only recall and precision")
        for k, v in f.items():
            if not isinstance(v, int | float) or not 0 <= v <= 1:
                raise GateFileError(f"{path.name}: floors.{t}.{k}: a number in 0..1")
    return {"scenarios": names, "floors": floors}


def below_floors(
    table: dict[str, dict[str, Any]], floors: dict[str, dict[str, float]]
) -> list[str]:
    """Each figure under its floor, as 'type: recall 0.80 < floor 0.90'. A recall floor of a
    type the subset did not measure (no expectation, or not run) is one too; a precision
    floor holds for a type that ran and raised no alert (nothing false; silent rules)."""
    out = []
    for t, f in floors.items():
        m = table.get(t)
        for k in ("recall", "precision"):
            if k not in f:
                continue
            got = None if m is None else m.get(k)
            if got is None and k == "precision" and m is not None and m.get("scenarios"):
                continue  # ran, no alert at all
            if got is None:
                out.append(f"{t}: {k} not measured (floor {f[k]:g})")
            elif got < f[k] - 1e-9:
                out.append(f"{t}: {k} {got:.2f} < floor {f[k]:.2f}")
    return out


def run_gate(
    gate: dict[str, Any] | None = None, jobs: int = 2
) -> tuple[dict[str, dict[str, Any]], list[run.ScenarioResult], list[str]]:
    """Run the subset; returns (per-type metrics, results, problems: figures below their
    floors and scenarios that could not run)."""
    gate = gate or load_gate()
    suite = run.load_scenarios(run.DEFAULT_SCENARIOS)
    by_name = {sc["name"]: sc for sc in suite["scenarios"]}
    missing = [n for n in gate["scenarios"] if n not in by_name]
    if missing:
        raise GateFileError(f"gate.yaml: not in scenarios.yaml: {missing}")
    selected = [by_name[n] for n in gate["scenarios"]]
    for sc in selected:  # build the clips one at a time (ffmpeg is multi-threaded)
        src = run.resolve_clip(sc["clip"])
        if src.is_file():
            transforms.build(src, sc["transform"], run.CACHE_DIR)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(lambda sc: run.run_scenario(sc, suite["defaults"], None), selected))
    table = run.metrics(results)
    problems = [
        f"{r.scenario['name']}: {r.status}: {r.error or r.not_runnable_rules}"
        for r in results
        if r.status in ("NOT RUNNABLE", run.NOT_AVAILABLE) or r.not_runnable_rules
    ]
    return table, results, problems + below_floors(table, gate["floors"])


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    try:
        gate = load_gate()
    except (OSError, GateFileError, yaml.YAMLError) as exc:
        print(f"gate file error: {exc}", file=sys.stderr)
        return 2
    table, results, problems = run_gate(gate)
    print(run.report(results, table))
    print(f"\ngate: {len(results)} scenario(s), {time.perf_counter() - started:.0f} s wall")
    for p in problems:
        print(f"BELOW FLOOR / NOT RUN: {p}")
    print("gate: OK" if not problems else f"gate: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
