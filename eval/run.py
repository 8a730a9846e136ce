"""Evaluation harness: replay real clips (optionally transformed) through the hub and score
its alerts against what the footage shows.

    .venv/bin/python -m eval.run [--only TYPE ...] [--scenario NAME ...] [--json OUT]
                                 [--scenarios FILE] [--jobs N] [--keep DIR]

For each scenario of ``eval/scenarios.yaml`` and ``eval/public.yaml`` (public footage, see
``eval/footage.yaml``): build the transformed clip once (cached in
``eval/.cache``), write a hub config with one camera ``eval`` carrying the scenario's zones and
rules, run ``shaobing.cli replay`` on the clip in a subprocess, and match the alerts to the
expectations. Prints per event type recall, precision, false alarms and false alarms per hour
of normal footage, and one verdict per scenario. See ``eval/README.md``.

Exit status: 0 when every scenario ran (whatever the scores: this is a measurement, not a test);
1 when a scenario, or a rule of one, could not run (clip missing, ffmpeg failure, a rule the
hub rejects, replay crash); 2 for a bad scenario file or command line. A scenario whose public
clip is not fetched (``python -m eval.footage fetch``) is reported NOT AVAILABLE, which is neither.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from analytics import pose
from core.assets import assets_dir
from core.vocabulary import ALERT_TYPES
from eval import detcache, footage, transforms

ROOT = Path(__file__).resolve().parents[1]
EVAL_DIR = ROOT / "eval"
CACHE_DIR = EVAL_DIR / ".cache"
DEFAULT_SCENARIOS = EVAL_DIR / "scenarios.yaml"
PUBLIC_SCENARIOS = EVAL_DIR / "public.yaml"
NOT_AVAILABLE = "NOT AVAILABLE"
DET_CACHE_DIR = CACHE_DIR / "det"
DET_CACHE = True  # --no-cache: every replay runs the detector on every image
#: person_down's pose model (analytics/pose.py), put here by
#: ``python -m shaobing.cli models pose -o eval/.cache/models``; used when present, unless
#: ``--no-pose`` (the replays see it through $SHAOBING_POSE_MODEL).
POSE_MODEL_FILE = CACHE_DIR / "models" / "pose_detection.tflite"
POSE = True

RULE_TYPES = ALERT_TYPES
SCENARIO_KEYS = {
    "name",
    "clip",
    "transform",
    "normal",
    "description",
    "zones",
    "rules",
    "expect",
    "camera",
}
EXPECT_KEYS = {"type", "rule", "t_from", "t_to", "min_count", "max_count", "why"}


class ScenarioFileError(ValueError):
    pass


def resolve_clip(clip: str) -> Path:
    if clip.startswith(footage.PREFIX):  # public footage: eval/footage/ or eval/.cache/footage/
        path, _ = footage.resolve(clip)
        return path or footage.FETCHED_DIR / clip[len(footage.PREFIX) :]
    p = Path(clip).expanduser()
    return p if p.is_absolute() else assets_dir() / "videos" / clip


# -- scenario file -------------------------------------------------------------------


def load_scenarios(path: Path | None = None) -> dict[str, Any]:
    """Read and check the scenario file; returns {'defaults': {...}, 'scenarios': [...]}.

    Without a path: eval/scenarios.yaml and eval/public.yaml together (each scenario keeps its
    own file's defaults in ``sc['_defaults']``)."""
    if path is None:
        suites = [load_scenarios(p) for p in (DEFAULT_SCENARIOS, PUBLIC_SCENARIOS) if p.is_file()]
        names = [sc["name"] for s in suites for sc in s["scenarios"]]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ScenarioFileError(f"scenario name(s) in more than one file: {dup}")
        return {
            "defaults": suites[0]["defaults"],
            "scenarios": [sc for s in suites for sc in s["scenarios"]],
            "path": " + ".join(s["path"] for s in suites),
        }
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioFileError(f"{path}: {exc}") from None
    defaults = data.get("defaults") or {}
    scenarios = data.get("scenarios") or []
    problems: list[str] = []
    seen: set[str] = set()
    for i, sc in enumerate(scenarios):
        where = f"{path.name}: scenarios[{i}]"
        if not isinstance(sc, dict) or not isinstance(sc.get("name"), str):
            problems.append(f"{where}: needs a name")
            continue
        where += f"({sc['name']})"
        if sc["name"] in seen:
            problems.append(f"{where}: duplicate name")
        seen.add(sc["name"])
        unknown = set(sc) - SCENARIO_KEYS
        if unknown:
            problems.append(f"{where}: unknown key(s) {sorted(unknown)}")
        if not isinstance(sc.get("clip"), str):
            problems.append(f"{where}: needs clip")
        try:
            sc["transform"] = transforms.normalize(sc.get("transform"))
        except transforms.TransformError as exc:
            problems.append(f"{where}.transform: {exc}")
        sc["normal"] = bool(sc.get("normal", False))
        if sc["normal"] and sc["transform"] != "forward":
            problems.append(f"{where}: normal scenarios are forward footage (transform: forward)")
        rules = sc.setdefault("rules", [])
        sc.setdefault("zones", [])
        names = [r.get("name") for r in rules if isinstance(r, dict)]
        for j, e in enumerate(sc.setdefault("expect", [])):
            ew = f"{where}.expect[{j}]"
            if not isinstance(e, dict):
                problems.append(f"{ew}: must be a mapping")
                continue
            if set(e) - EXPECT_KEYS:
                problems.append(f"{ew}: unknown key(s) {sorted(set(e) - EXPECT_KEYS)}")
            if e.get("type") not in RULE_TYPES:
                problems.append(f"{ew}: type must be one of {', '.join(RULE_TYPES)}")
            if e.get("rule") is not None and e["rule"] not in names:
                problems.append(f"{ew}: rule {e['rule']!r} is not a rule of the scenario")
            e.setdefault("t_from", 0.0)
            e.setdefault("t_to", "end")
            e.setdefault("min_count", 1)
            e.setdefault("max_count", None)
            if not isinstance(e["t_from"], int | float):
                problems.append(f"{ew}: t_from must be seconds")
            if e["t_to"] != "end" and not isinstance(e["t_to"], int | float):
                problems.append(f"{ew}: t_to must be seconds or 'end'")
            if e["max_count"] is not None and e["max_count"] < e["min_count"]:
                problems.append(f"{ew}: max_count < min_count")
        sc["_defaults"] = defaults
        # Thresholds are tuned on the shared clips (and their transforms) and reported on
        # the public footage, held back (README "Tuned and held-back footage").
        sc["_split"] = "held-back" if path.name == PUBLIC_SCENARIOS.name else "tune"
    if problems:
        raise ScenarioFileError("\n".join(problems))
    return {"defaults": defaults, "scenarios": scenarios, "path": str(path)}


def restrict(sc: dict[str, Any], only: set[str] | None) -> dict[str, Any] | None:
    """The scenario with only the rules/expectations of the wanted types (None: nothing left)."""
    if not only:
        return sc
    rules = [r for r in sc["rules"] if r.get("type") in only]
    if not rules:
        return None
    out = dict(sc)
    out["rules"] = rules
    out["expect"] = [e for e in sc["expect"] if e["type"] in only]
    return out


# -- one scenario ----------------------------------------------------------------------


@dataclass
class ScenarioResult:
    scenario: dict[str, Any]
    status: str = "NOT RUNNABLE"  # PASS | FAIL | NOT RUNNABLE | NOT AVAILABLE
    error: str | None = None
    clip: str | None = None
    duration_s: float = 0.0
    alerts: list[dict[str, Any]] = field(default_factory=list)
    expectations: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    not_runnable_rules: list[dict[str, str]] = field(default_factory=list)
    replay: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def runnable_rules(self) -> list[dict[str, Any]]:
        dropped = {r["name"] for r in self.not_runnable_rules}
        return [r for r in self.scenario["rules"] if r.get("name") not in dropped]


def hub_config(
    sc: dict[str, Any],
    rules: list[dict[str, Any]],
    clip: Path,
    data_dir: Path,
    defaults: dict[str, Any],
) -> dict[str, Any]:
    detector = {"model": str(assets_dir() / "models" / "yolox_nano.onnx"), "threads": 1}
    detector.update(defaults.get("detector") or {})
    camera: dict[str, Any] = {
        "id": "eval",
        "name": f"eval {sc['name']}",
        "source": {"url": str(clip)},
        "detect_fps": defaults.get("detect_fps", 5),
        "zones": sc["zones"],
        "rules": rules,
    }
    camera.update(sc.get("camera") or {})
    return {
        "data_dir": str(data_dir),
        "api": {"enabled": False},
        "logging": {"level": "WARNING"},
        "detector": detector,
        "alerts": {"cooldown_s": defaults.get("cooldown_s", 60), "camera_offline_s": None},
        "cameras": [camera],
    }


_RULE_PROBLEM = re.compile(r"cameras\[0\](?:\([^)]*\))?\.rules\[(\d+)\]")


@dataclass
class _Run:
    ok: bool
    alerts: list[dict[str, Any]] | None = None
    summary: dict[str, Any] | None = None
    stderr: str = ""
    rejected: dict[int, list[str]] | None = None  # rule index -> config problems
    error: str | None = None


def _replay_once(
    sc: dict[str, Any],
    rules: list[dict[str, Any]],
    clip: Path,
    defaults: dict[str, Any],
    tmp: Path,
    evidence: bool,
) -> _Run:
    tmp.mkdir(parents=True, exist_ok=True)
    cfg_path = tmp / "hub.yaml"
    out_path = tmp / "alerts.jsonl"
    out_path.unlink(missing_ok=True)
    cfg = hub_config(sc, rules, clip, tmp / "data", defaults)
    cfg_path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    cmd = [sys.executable, "-m", "shaobing.cli", "replay"]
    if DET_CACHE:  # the same replay, the detector's answers remembered (eval/detcache.py)
        cache = DET_CACHE_DIR / detcache.cache_name(clip, cfg["detector"])
        cmd = [sys.executable, "-m", "eval.detcache", "--cache", str(cache)]
    cmd += ["--config", str(cfg_path), "--camera", "eval", "--source", str(clip)]
    cmd += ["--output", str(out_path)]
    if evidence:
        cmd += ["--evidence-dir", str(tmp / "evidence")]
    env = dict(os.environ)
    env[pose.POSE_MODEL_ENV] = str(POSE_MODEL_FILE) if POSE and POSE_MODEL_FILE.is_file() else "off"
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False, env=env)
    stderr = proc.stderr.strip()
    if proc.returncode == 0:
        summary = None
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                try:
                    summary = json.loads(line)
                except json.JSONDecodeError:
                    pass
        alerts = [
            json.loads(ln) for ln in out_path.read_text(encoding="utf-8").splitlines() if ln.strip()
        ]
        return _Run(True, alerts, summary, stderr)
    if "configuration error" in stderr:
        bad: dict[int, list[str]] = {}
        other: list[str] = []
        for line in stderr.splitlines()[1:]:
            m = _RULE_PROBLEM.search(line)
            if m and int(m.group(1)) < len(rules):
                bad.setdefault(int(m.group(1)), []).append(line.strip())
            elif line.strip():
                other.append(line.strip())
        if bad and not other:
            return _Run(False, stderr=stderr, rejected=bad)
        return _Run(
            False,
            stderr=stderr,
            error="hub config rejected: " + " | ".join(other or stderr.splitlines()),
        )
    tail = stderr.splitlines()[-1] if stderr else f"exit status {proc.returncode}"
    return _Run(False, stderr=stderr, error=f"replay failed (exit {proc.returncode}): {tail}")


def replay(
    sc: dict[str, Any],
    clip: Path,
    defaults: dict[str, Any],
    keep: Path | None,
    result: ScenarioResult,
) -> list[dict[str, Any]] | None:
    """Run the hub's replay on the clip with the scenario's rules.

    Rules the hub's config rejects (an unknown or not yet supported rule type, a key it does
    not know) are dropped, reported as not runnable, and the rest is run again. When the
    replay itself crashes and the scenario mixes rule types, each type is tried alone to find
    the one(s) that crash; those are reported as not runnable and the rest is run. Returns
    the alerts, or None when the scenario could not run at all.
    """
    rules = list(sc["rules"])

    def drop(names: set[str], reason: str) -> None:
        nonlocal rules
        for r in [r for r in rules if r.get("name") in names]:
            result.not_runnable_rules.append(
                {"name": str(r.get("name")), "type": str(r.get("type")), "reason": reason}
            )
        rules = [r for r in rules if r.get("name") not in names]

    with tempfile.TemporaryDirectory(prefix=f"eval-{sc['name']}-") as tmp_name:
        tmp = Path(keep / sc["name"]) if keep else Path(tmp_name)
        probed = False
        while True:
            if not rules:
                result.error = result.error or "no rule of the scenario could run"
                return None
            run = _replay_once(sc, rules, clip, defaults, tmp, keep is not None)
            if run.ok:
                break
            if run.rejected:
                for idx, problems in run.rejected.items():
                    reason = "; ".join(p.split(": ", 1)[-1] for p in problems)
                    drop({str(rules[idx].get("name"))}, f"rejected by the hub's config: {reason}")
                continue
            types = sorted({str(r.get("type")) for r in rules})
            if probed or len(types) < 2 or "hub config rejected" in (run.error or ""):
                result.error = run.error
                return None
            # Find the rule type(s) that make the replay crash: try each type alone.
            probed = True
            for t in types:
                alone = [r for r in rules if r.get("type") == t]
                probe_run = _replay_once(sc, alone, clip, defaults, tmp / f"probe-{t}", False)
                if not probe_run.ok:
                    drop(
                        {str(r.get("name")) for r in alone},
                        f"the replay fails with this rule type: {probe_run.error}",
                    )
            if len(rules) == len(sc["rules"]) - len(result.not_runnable_rules) and not [
                r for r in result.not_runnable_rules if "fails with" in r["reason"]
            ]:
                result.error = run.error  # each type runs alone; together they crash
                return None
        result.replay = run.summary
        result.warnings += [
            ln for ln in run.stderr.splitlines() if ln.startswith("replay: warning")
        ]
        return run.alerts


def score(result: ScenarioResult, alerts: list[dict[str, Any]]) -> None:
    sc = result.scenario
    runnable = {r["name"] for r in result.runnable_rules}
    runnable_types = {r["type"] for r in result.runnable_rules}
    exps = []
    for e in sc["expect"]:
        t_to = result.duration_s if e["t_to"] == "end" else float(e["t_to"])
        ok = (e.get("rule") in runnable) if e.get("rule") else (e["type"] in runnable_types)
        exps.append(
            {
                **e,
                "t_to": round(t_to, 3),
                "t_to_spec": e["t_to"],
                "runnable": ok,
                "got": 0,
                "at": [],
            }
        )
    slim = []
    for a in sorted(alerts, key=lambda a: (a.get("created_at") or 0.0, a.get("rule") or "")):
        t = float(a.get("created_at") or 0.0)
        item = {
            "type": a.get("type"),
            "rule": a.get("rule"),
            "created_at": t,
            "track_ids": a.get("track_ids"),
            "object_class": a.get("object_class"),
            "explanation": (a.get("trace") or {}).get("explanation"),
            "matched": None,
        }
        for k, e in enumerate(exps):
            if (
                e["runnable"]
                and e["type"] == item["type"]
                and (not e.get("rule") or e["rule"] == item["rule"])
                and e["t_from"] <= t <= e["t_to"]
            ):
                e["got"] += 1
                e["at"].append(round(t, 2))
                item["matched"] = k
                break
        slim.append(item)
    for e in exps:
        if not e["runnable"]:
            e["met"] = None
        else:
            e["met"] = e["got"] >= e["min_count"] and (
                e["max_count"] is None or e["got"] <= e["max_count"]
            )
    result.alerts = slim
    result.expectations = exps
    result.unmatched = [a for a in slim if a["matched"] is None]
    ok = all(e["met"] for e in exps if e["runnable"]) and not result.unmatched
    result.status = "PASS" if ok else "FAIL"


def run_scenario(sc: dict[str, Any], defaults: dict[str, Any], keep: Path | None) -> ScenarioResult:
    result = ScenarioResult(sc)
    started = time.perf_counter()
    try:
        if sc["clip"].startswith(footage.PREFIX):
            try:
                path, why = footage.resolve(sc["clip"])
            except footage.FootageError as exc:
                raise transforms.TransformError(f"footage manifest: {exc}") from None
            if path is None:
                result.status = NOT_AVAILABLE
                result.error = why
                return result
        source = resolve_clip(sc["clip"])
        if not source.is_file():
            raise transforms.TransformError(f"clip not found: {source}")
        clip = transforms.build(source, sc["transform"], CACHE_DIR)
        result.clip = str(clip)
        result.duration_s = round(transforms.probe(clip).duration, 3)
    except transforms.TransformError as exc:
        result.error = str(exc)
        result.wall_s = time.perf_counter() - started
        return result
    alerts = replay(sc, clip, sc.get("_defaults", defaults), keep, result)
    if alerts is not None:
        score(result, alerts)
    result.wall_s = time.perf_counter() - started
    return result


# -- metrics and report -------------------------------------------------------------------


def metrics(results: list[ScenarioResult]) -> dict[str, dict[str, Any]]:
    types: list[str] = []
    for r in results:
        for rule in r.scenario["rules"]:
            if rule.get("type") not in types:
                types.append(rule.get("type"))
        for a in r.alerts:
            if a["type"] not in types:
                types.append(a["type"])
    out: dict[str, dict[str, Any]] = {}
    for t in sorted(types, key=lambda x: RULE_TYPES.index(x) if x in RULE_TYPES else 99):
        m: dict[str, Any] = {
            "scenarios": 0,
            "not_runnable": 0,
            "expected": 0,
            "met": 0,
            "alerts": 0,
            "matched": 0,
            "false_alarms": 0,
            "normal_scenarios": 0,
            "normal_hours": 0.0,
            "normal_false_alarms": 0,
            "not_available": 0,
        }
        for r in results:
            has = any(rule.get("type") == t for rule in r.scenario["rules"])
            if r.status == NOT_AVAILABLE:
                m["not_available"] += int(has)
                continue
            ran = r.status != "NOT RUNNABLE" and any(
                rule.get("type") == t for rule in r.runnable_rules
            )
            if has and not ran:
                m["not_runnable"] += 1
            if not ran:
                continue
            m["scenarios"] += 1
            exps = [e for e in r.expectations if e["type"] == t and e["runnable"]]
            m["expected"] += len(exps)
            m["met"] += sum(1 for e in exps if e["met"])
            alerts = [a for a in r.alerts if a["type"] == t]
            unmatched = [a for a in alerts if a["matched"] is None]
            m["alerts"] += len(alerts)
            m["matched"] += len(alerts) - len(unmatched)
            m["false_alarms"] += len(unmatched)
            if r.scenario["normal"]:
                m["normal_scenarios"] += 1
                m["normal_hours"] += r.duration_s / 3600.0
                m["normal_false_alarms"] += len(unmatched)
        m["recall"] = m["met"] / m["expected"] if m["expected"] else None
        m["precision"] = m["matched"] / m["alerts"] if m["alerts"] else None
        m["false_alarms_per_hour"] = (
            m["normal_false_alarms"] / m["normal_hours"] if m["normal_hours"] else None
        )
        m["false_alarms_per_camera_day"] = (
            24.0 * m["false_alarms_per_hour"] if m["false_alarms_per_hour"] is not None else None
        )
        m["normal_hours"] = round(m["normal_hours"], 5)
        out[t] = m
    return out


def camera_days(results: list[ScenarioResult]) -> dict[str, Any]:
    """False alarms per camera-day over all normal footage that ran (each clip counted once).

    Every alert not expected on normal (unmodified, forward) footage is a false alarm; a camera
    watched 24 h a day with the scenarios' rules would raise FA/h x 24 of them per day."""
    normal = [r for r in results if r.scenario["normal"] and r.status in ("PASS", "FAIL")]
    hours = sum(r.duration_s for r in normal) / 3600.0
    by_type: dict[str, int] = {}
    for r in normal:
        for a in r.unmatched:
            by_type[a["type"]] = by_type.get(a["type"], 0) + 1
    total = sum(by_type.values())
    return {
        "scenarios": len(normal),
        "hours": round(hours, 5),
        "false_alarms": total,
        "by_type": by_type,
        "per_camera_day": 24.0 * total / hours if hours else None,
    }


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.0f}%" if pct else (f"{v:.0f}" if v >= 100 else f"{v:.1f}")


def _count(e: dict[str, Any]) -> str:
    lo, hi = e["min_count"], e["max_count"]
    return f"{lo}" if hi == lo else (f"≥{lo}" if hi is None else f"{lo}..{hi}")


def report(results: list[ScenarioResult], table: dict[str, dict[str, Any]]) -> str:
    lines = [
        "",
        "Per event type (normal = forward footage; FA/h over the normal scenarios' "
        "footage with that rule type)",
        "",
    ]
    head = (
        f"{'type':<19}{'scen':>5}{'expect':>7}{'met':>5}{'recall':>8}{'alerts':>7}"
        f"{'match':>6}{'prec':>6}{'FA':>5}{'normal':>9}{'FA/h':>8}{'FA/day':>8}  not run/n.a."
    )
    lines += [head, "-" * len(head)]
    for t, m in table.items():
        lines.append(
            f"{t:<19}{m['scenarios']:>5}{m['expected']:>7}{m['met']:>5}"
            f"{_fmt(m['recall'], True):>8}{m['alerts']:>7}{m['matched']:>6}"
            f"{_fmt(m['precision'], True):>6}{m['false_alarms']:>5}"
            f"{m['normal_hours'] * 60:>6.1f}min{_fmt(m['false_alarms_per_hour']):>8}"
            f"{_fmt(m['false_alarms_per_camera_day']):>8}"
            f"  {m['not_runnable'] or ''}"
            + (f"/{m['not_available']} n.a." if m["not_available"] else "")
        )
    lines += [
        "",
        "recall = met/expect (expectations whose matched count is within [min, max]);",
        "prec = match/alerts (alerts inside the window of an expectation of their rule);",
        "FA = unmatched alerts, all scenarios; normal = minutes of normal (forward) footage",
        "watched by a rule of the type; FA/h = unmatched alerts on it per hour of it;",
        "FA/day = FA/h x 24: false alarms per camera-day for a camera with such a rule;",
        "n.a. = scenarios whose public clip is not fetched (NOT AVAILABLE, not scored).",
    ]
    cd = camera_days(results)
    if cd["hours"]:
        per = ", ".join(f"{k} {v}" for k, v in sorted(cd["by_type"].items())) or "none"
        lines += [
            "",
            f"False alarms per camera-day (all normal footage, each clip once): "
            f"{cd['false_alarms']} false alarm(s) in {cd['hours'] * 60:.1f} min of "
            f"{cd['scenarios']} normal scenario(s) = {_fmt(cd['per_camera_day'])} per camera-day"
            f" ({per})",
        ]
    missing = [r for r in results if r.status == NOT_AVAILABLE]
    if missing:
        lines += [
            "",
            f"{len(missing)} scenario(s) NOT AVAILABLE (public clip not fetched; "
            f"`python -m eval.footage fetch [--mirror DIR]`), not scored.",
        ]
    lines += ["", "Per scenario", ""]
    for r in results:
        sc = r.scenario
        kind = "normal" if sc["normal"] else "synthetic"
        what = f"{sc['clip']} {transforms.describe(sc['transform'])}"
        if r.status in ("NOT RUNNABLE", NOT_AVAILABLE):
            lines.append(f"{r.status}  {sc['name']}  [{kind}; {what}]: {r.error}")
            continue
        partial = (
            f"; {len(r.not_runnable_rules)} rule(s) NOT RUNNABLE" if r.not_runnable_rules else ""
        )
        lines.append(
            f"{r.status:<12}  {sc['name']}  [{kind}; {what}; {r.duration_s:.1f} s; "
            f"{len(r.alerts)} alert(s); {r.wall_s:.1f} s{partial}]"
        )
        for e in r.expectations:
            rule = f"/{e['rule']}" if e.get("rule") else ""
            window = f"[{e['t_from']:g}, {e['t_to']:g}]"
            if not e["runnable"]:
                lines.append(f"    -- {e['type']}{rule} {window}: not runnable")
                continue
            mark = "ok" if e["met"] else "XX"
            at = ", ".join(f"{x:g}" for x in e["at"][:8]) + (" …" if len(e["at"]) > 8 else "")
            lines.append(
                f"    {mark} {e['type']}{rule} in {window} want {_count(e)} got "
                f"{e['got']}" + (f" at {at} s" if at else "")
            )
        if r.unmatched:
            by: dict[str, list[float]] = {}
            for a in r.unmatched:
                by.setdefault(f"{a['type']}/{a['rule']}", []).append(a["created_at"])
            for k, ts in by.items():
                shown = ", ".join(f"{x:g}" for x in ts[:8]) + (" …" if len(ts) > 8 else "")
                lines.append(f"    XX unexpected {k} x{len(ts)} at {shown} s")
        elif not r.expectations:
            lines.append("    ok silent, as expected")
        for nr in r.not_runnable_rules:
            lines.append(f"    -- rule {nr['name']} ({nr['type']}) not runnable: {nr['reason']}")
        for w in r.warnings:
            lines.append(f"    note: {w}")
    return "\n".join(lines)


def to_json(
    results: list[ScenarioResult],
    table: dict[str, Any],
    args: argparse.Namespace,
    suite_path: str,
    exit_code: int,
    wall_s: float,
) -> dict[str, Any]:
    return {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scenario_file": suite_path,
        "assets": str(assets_dir()),
        "only": sorted(args.only) if args.only else None,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "wall_s": round(wall_s, 2),
        "exit_code": exit_code,
        "metrics": table,
        "camera_days": camera_days(results),
        "scenarios": [
            {
                "name": r.scenario["name"],
                "description": r.scenario.get("description"),
                "clip": r.scenario["clip"],
                "transform": r.scenario["transform"],
                "normal": r.scenario["normal"],
                "split": r.scenario.get("_split"),
                "built_clip": r.clip,
                "duration_s": r.duration_s,
                "status": r.status,
                "error": r.error,
                "zones": r.scenario["zones"],
                "rules": r.scenario["rules"],
                "not_runnable_rules": r.not_runnable_rules,
                "expectations": r.expectations,
                "alerts": r.alerts,
                "unmatched": len(r.unmatched),
                "replay": r.replay,
                "warnings": r.warnings,
                "wall_s": round(r.wall_s, 2),
            }
            for r in results
        ],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.run", description=__doc__.split("\n")[0])
    p.add_argument("--only", nargs="+", metavar="TYPE", help="only rules of these types")
    p.add_argument("--scenario", nargs="+", metavar="NAME", help="only these scenarios")
    p.add_argument("--json", metavar="OUT", help="write every result as JSON here")
    p.add_argument(
        "--scenarios",
        metavar="FILE",
        help="scenario file (default: eval/scenarios.yaml and eval/public.yaml)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="replays run at once (default: 2 or the CPU count if lower)",
    )
    p.add_argument(
        "--keep",
        metavar="DIR",
        help="keep each scenario's hub config, alerts and evidence snapshots here",
    )
    p.add_argument(
        "--split",
        choices=("tune", "held-back"),
        help="only the footage thresholds were tuned on (scenarios.yaml) or the held-back "
        "public footage (public.yaml)",
    )
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="run the detector on every image (default: remember its answers, eval/detcache.py)",
    )
    p.add_argument(
        "--no-pose",
        action="store_true",
        help="person_down without the pose model (default: with it where "
        "eval/.cache/models/pose_detection.tflite is)",
    )
    args = p.parse_args(argv)
    global DET_CACHE, POSE
    DET_CACHE = not args.no_cache
    POSE = not args.no_pose
    if args.only:
        unknown = [t for t in args.only if t not in RULE_TYPES]
        if unknown:
            p.error(f"unknown type(s) {unknown}; one of {', '.join(RULE_TYPES)}")
    try:
        suite = load_scenarios(Path(args.scenarios) if args.scenarios else None)
    except ScenarioFileError as exc:
        print(f"scenario file error:\n{exc}", file=sys.stderr)
        return 2
    selected = []
    for sc in suite["scenarios"]:
        if args.scenario and sc["name"] not in args.scenario:
            continue
        if args.split and sc.get("_split") != args.split:
            continue
        sc = restrict(sc, set(args.only) if args.only else None)
        if sc is not None:
            selected.append(sc)
    if args.list:
        for sc in selected:
            types = sorted({r.get("type") for r in sc["rules"]})
            print(
                f"{sc['name']:<34} {'normal' if sc['normal'] else 'synthetic':<9} "
                f"{sc['clip']} {transforms.describe(sc['transform'])}: {', '.join(types)}"
            )
        return 0
    if not selected:
        print("no scenario selected", file=sys.stderr)
        return 2
    keep = Path(args.keep).resolve() if args.keep else None
    started = time.perf_counter()
    # Build the clips first, one at a time (ffmpeg is multi-threaded; the cache is shared).
    for sc in selected:
        try:
            src = resolve_clip(sc["clip"])
            if src.is_file() and (
                not sc["clip"].startswith(footage.PREFIX) or footage.resolve(sc["clip"])[0]
            ):
                transforms.build(src, sc["transform"], CACHE_DIR)
        except (transforms.TransformError, footage.FootageError):
            pass  # reported by run_scenario
    results: list[ScenarioResult | None] = [None] * len(selected)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {
            pool.submit(run_scenario, sc, suite["defaults"], keep): i
            for i, sc in enumerate(selected)
        }
        for fut in concurrent.futures.as_completed(futures):
            i = futures[fut]
            r = results[i] = fut.result()
            print(f"  {r.status:<12} {r.scenario['name']} ({r.wall_s:.1f} s)", file=sys.stderr)
    done = [r for r in results if r is not None]
    table = metrics(done)
    wall = time.perf_counter() - started
    could_not_run = [r for r in done if r.status == "NOT RUNNABLE" or r.not_runnable_rules]
    exit_code = 1 if could_not_run else 0
    print(report(done, table))
    seconds = sum(r.duration_s for r in done if r.status in ("PASS", "FAIL"))
    print(
        f"\n{len(done)} scenario(s), {seconds:.0f} s of footage, {wall:.0f} s wall; "
        f"{sum(r.status == 'PASS' for r in done)} pass, "
        f"{sum(r.status == 'FAIL' for r in done)} fail, {len(could_not_run)} not (fully) "
        f"runnable, {sum(r.status == NOT_AVAILABLE for r in done)} not available"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                to_json(done, table, args, suite["path"], exit_code, wall),
                indent=2,
                ensure_ascii=False,
                default=_json_default,
            ),
            encoding="utf-8",
        )
    return exit_code


def _json_default(o: Any) -> Any:
    if isinstance(o, float) and math.isnan(o):
        return None
    return str(o)


if __name__ == "__main__":
    sys.exit(main())
