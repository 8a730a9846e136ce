"""The API side of scripts/upgrade_smoke.sh: make data in an installed hub, then check
that a later (or rolled-back) hub still has it.

    python scripts/upgrade_check.py seed   --base URL --password PW --state state.json
    python scripts/upgrade_check.py verify --base URL --password PW --state state.json

``seed`` waits for an alert from the example camera, acknowledges it (a history entry),
creates a user and checks that the imported camera is listed; it writes what it saw to
``state.json``. ``verify`` logs in as the admin and as that user (their password hashes
kept), and finds the same alert (acknowledged, with its history), the user and the
camera. Exits 1 with the reason on the first difference. Needs httpx (the test
environment's Python, not the installed hub's).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

USER = "upgrade.zhang"
USER_PASSWORD = "upgrade-check-pw-1"  # noqa: S105 - a test account of a throwaway hub
CAMERA = "upgrade-cam-01"


def fail(message: str) -> None:
    raise SystemExit(f"upgrade_check: {message}")


def wait(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(0.5)
    fail(f"timed out waiting for {what} ({last or 'no answer'})")


class Hub:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.headers: dict[str, str] = {}

    def ready(self, timeout: float) -> None:
        """/healthz answers and the console's page is served (the release's own files)."""
        wait("/healthz", lambda: httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200,
             timeout)  # fmt: skip
        wait("the console", lambda: '<div id="app">' in httpx.get(f"{self.base}/", timeout=2).text,
             30)  # fmt: skip

    def login(self, username: str, password: str) -> None:
        r = httpx.post(f"{self.base}/api/auth/login", timeout=30,
                       json={"username": username, "password": password})  # fmt: skip
        if r.status_code != 200:
            fail(f"login as {username}: HTTP {r.status_code} {r.text[:200]}")
        self.headers = {"Authorization": f"Bearer {r.json()['token']}"}

    def get(self, path: str) -> Any:
        r = httpx.get(f"{self.base}{path}", headers=self.headers, timeout=10)
        if r.status_code != 200:
            fail(f"GET {path}: HTTP {r.status_code} {r.text[:200]}")
        return r.json()

    def post(self, path: str, body: dict[str, Any], expect: int = 200) -> Any:
        r = httpx.post(f"{self.base}{path}", headers=self.headers, json=body, timeout=10)
        if r.status_code != expect:
            fail(f"POST {path}: HTTP {r.status_code} {r.text[:200]}")
        return r.json()


def seed(hub: Hub, password: str, alert_timeout: float) -> dict[str, Any]:
    hub.login("admin", password)
    items = wait("an alert from the example camera",
                 lambda: hub.get("/api/alerts")["items"], alert_timeout)  # fmt: skip
    alert = items[-1]
    hub.post(f"/api/alerts/{alert['id']}/actions", {"action": "acknowledge", "note": "升级前受理"})
    hub.post("/api/users", {"username": USER, "role": "operator", "password": USER_PASSWORD,
                            "display_name": "升级检查"}, expect=201)  # fmt: skip
    cameras = {c["id"] for c in hub.get("/api/cameras")}
    if CAMERA not in cameras:
        fail(f"the imported camera {CAMERA} is not listed: {sorted(cameras)}")
    return {"alert_id": alert["id"], "alerts": len(items), "cameras": sorted(cameras)}


def verify(hub: Hub, password: str, state: dict[str, Any]) -> dict[str, Any]:
    hub.login(USER, USER_PASSWORD)  # the user made before, its password hash kept
    hub.login("admin", password)
    alert = hub.get(f"/api/alerts/{state['alert_id']}")
    if alert.get("status") != "acknowledged":
        fail(f"alert {state['alert_id']} is {alert.get('status')!r}, not acknowledged")
    if not any(h.get("to_status") == "acknowledged" for h in alert.get("history", [])):
        fail(f"alert {state['alert_id']}: its history lost the acknowledgement")
    ids = {a["id"] for a in hub.get("/api/alerts?limit=500")["items"]}
    if state["alert_id"] not in ids or len(ids) < state["alerts"]:
        fail(f"alerts lost: {len(ids)} listed, {state['alerts']} before")
    cameras = {c["id"] for c in hub.get("/api/cameras")}
    missing = set(state["cameras"]) - cameras
    if missing:
        fail(f"cameras lost: {sorted(missing)}")
    users = {u["username"] for u in hub.get("/api/users")}
    if USER not in users:
        fail(f"user {USER} lost")
    return {"alerts": len(ids), "cameras": len(cameras), "users": len(users)}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("step", choices=["seed", "verify"])
    p.add_argument("--base", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--state", required=True, type=Path)
    p.add_argument("--timeout", type=float, default=180, help="for the hub and the alert")
    args = p.parse_args()
    hub = Hub(args.base)
    started = time.monotonic()
    hub.ready(args.timeout)
    ready_s = round(time.monotonic() - started, 1)
    if args.step == "seed":
        state = seed(hub, args.password, args.timeout)
        args.state.write_text(json.dumps(state), encoding="utf-8")
        print(json.dumps({"console_ready_s": ready_s, **state}))
    else:
        state = json.loads(args.state.read_text(encoding="utf-8"))
        print(json.dumps({"console_ready_s": ready_s, **verify(hub, args.password, state)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
