#!/usr/bin/env python
"""Items an operator must handle per hour from the example camera, with and without
incidents (alerts.domain.incidents).

1. ``shaobing replay`` runs the real pipeline (detector, tracker, rules, cooldown) over
   the example camera's clip (configs/example.yaml, camera xl-0001) once;
2. the hub plays that clip in a loop (``loop: true``), so one hour is the pass's alerts
   repeated every clip length (each with its own id), in time order;
3. they go through the real ``AlertService`` on a SQLite database, once with incidents
   off (every alert is an item) and once with the configured policy, for two operators:
   one who leaves the list alone for the hour, and one who resolves each new item
   ``--handle-after`` seconds after it appears (which closes the incident, so the next
   alert opens a new one; the hourly cap then bounds the items).

Prints the machine, the alerts per pass and per hour, and the rows (items) per hour.
Run from the repository root::

    PYTHONPATH=$PWD .venv/bin/python bench/bench_incidents.py
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import func, select

from alerts.adapters.sql import AlertRecord, SqlUnitOfWork
from alerts.domain.incidents import IncidentPolicy
from alerts.domain.routing import Router
from alerts.messages import EventMessage
from alerts.service import AlertService
from analytics.types import Event
from bench.machine import machine_line
from core.area import Area
from shaobing.config import load_config
from shaobing.db import open_database
from shaobing.replay import replay

ROOT = Path(__file__).resolve().parent.parent


def one_pass(config: Path, camera: str, clip: Path) -> tuple[list[Event], float]:
    """The events of one pass of the clip (after the cooldown), and the clip's length."""
    loaded = load_config(config)
    out = io.StringIO()
    result = replay(loaded, camera, clip, out)
    events = []
    for line in out.getvalue().splitlines():
        a = json.loads(line)
        events.append(Event(
            camera_id=a["camera"]["id"], rule=a["rule"], type=a["type"], ts=0.0,
            pts=a["created_at"], track_ids=a["track_ids"], object_class=a["object_class"],
            zone=a["zone"], severity=a["severity"], measured=a["trace"]["measured"],
            threshold=a["trace"]["threshold"], unit=a["trace"]["unit"],
            explanation=a["trace"]["explanation"], confidence=a["confidence"],
        ))  # fmt: skip
    return events, result.clip_seconds


def items_per_hour(
    events: list[Event], length: float, policy: IncidentPolicy, handle_after: float | None
) -> tuple[int, int, int]:
    """(alerts, rows the operator sees, of them suppressed) in one hour of the loop."""
    now = [0.0]
    with tempfile.TemporaryDirectory() as tmp:
        engine, sessions = open_database(f"sqlite:///{tmp}/bench.sqlite")
        router = Router(rules=[], departments={}, targets={})
        service = AlertService(lambda: SqlUnitOfWork(sessions), lambda: router,
                               incidents=policy, clock=lambda: now[0])  # fmt: skip
        to_handle: list[tuple[float, str]] = []
        alerts = 0
        loop = 0
        while loop * length < 3600:
            for e in events:
                at = loop * length + e.pts
                if at >= 3600:
                    break
                for when, alert_id in [h for h in to_handle if h[0] <= at]:
                    now[0] = when
                    service.transition(alert_id, "resolve", actor="operator")
                    to_handle.remove((when, alert_id))
                now[0] = at
                stored = service.create(EventMessage(str(uuid.uuid4()), e, "cam", Area(), at))
                alerts += 1
                if stored is not None and stored.count == 1 and handle_after is not None:
                    to_handle.append((at + handle_after, stored.id))
            loop += 1
        with sessions() as s:
            rows = s.scalar(select(func.count()).select_from(AlertRecord)) or 0
            suppressed = s.scalar(select(func.count()).select_from(AlertRecord)
                                  .where(AlertRecord.suppressed.is_(True))) or 0  # fmt: skip
        engine.dispose()
    return alerts, rows, suppressed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "example.yaml"))
    parser.add_argument("--camera", default="xl-0001")
    parser.add_argument("--clip", default=str(ROOT.parent / "shared/assets/videos/"
                                              "crosswalk_people.mp4"))  # fmt: skip
    parser.add_argument("--handle-after", type=float, default=30.0,
                        help="seconds the handling operator takes to resolve an item")
    args = parser.parse_args()
    print(machine_line())
    events, length = one_pass(Path(args.config), args.camera, Path(args.clip))
    print(f"one pass of {args.clip}: {len(events)} alerts in {length:.1f} s "
          f"(camera {args.camera}, {args.config})")  # fmt: skip
    policy = load_config(Path(args.config)).config.alerts.incidents.policy()
    off = IncidentPolicy(enabled=False)
    for label, p, handle in (
        ("incidents off (before)", off, None),
        ("incidents, list left alone", policy, None),
        (f"incidents, each resolved after {args.handle_after:g} s", policy, args.handle_after),
    ):
        alerts, rows, suppressed = items_per_hour(events, length, p, handle)
        print(f"{label:42s} alerts/h {alerts:5d}   items/h {rows:5d}   suppressed {suppressed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
