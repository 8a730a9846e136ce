"""Checks of an installed hub, run by scripts/offline_smoke.sh inside a network namespace
with no route: ready, an alert from the example camera, and the console, /docs and
/redoc rendered in headless Chromium with every request to the hub's own address.

    python scripts/offline_check.py --base http://127.0.0.1:8080 --password PW \
        --started EPOCH_SECONDS [--chromium /usr/bin/chromium]

Prints one JSON line of figures; exits 1 with the reason on the first failed check.
Needs httpx and playwright (the test environment's, not the installed hub's).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx


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
    raise SystemExit(f"offline_check: timed out waiting for {what} ({last or 'no answer'})")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--started", type=float, required=True, help="the hub's start (epoch s)")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--alert-timeout", type=float, default=180)
    args = p.parse_args()
    base = args.base.rstrip("/")
    own_host = urlsplit(base).hostname
    figures: dict[str, Any] = {}

    wait("/healthz", lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200, 120)
    wait("the console", lambda: '<div id="app">' in httpx.get(f"{base}/", timeout=2).text, 30)
    figures["start_to_console_ready_s"] = round(time.time() - args.started, 1)

    token = httpx.post(f"{base}/api/auth/login", timeout=10,
                       json={"username": "admin", "password": args.password}).json()  # fmt: skip
    headers = {"Authorization": f"Bearer {token['token']}"}

    def alerts() -> list[dict[str, Any]]:
        r = httpx.get(f"{base}/api/alerts", headers=headers, timeout=5)
        r.raise_for_status()
        return list(r.json()["items"])

    first = wait("an alert from the example camera", alerts, args.alert_timeout)
    figures["start_to_first_alert_s"] = round(time.time() - args.started, 1)
    figures["first_alert"] = {k: first[0].get(k) for k in ("type", "rule")}

    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=args.chromium,
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-domain-reliability", "--no-pings"],
        )  # fmt: skip
        context = browser.new_context()
        context.on("request", lambda req: requests.append(req.url))
        page = context.new_page()
        page.goto(f"{base}/#/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", args.password)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-nav=wall]", timeout=30000)
        navs = page.eval_on_selector_all("[data-nav]", "els => els.map(e => e.dataset.nav)")
        for nav in navs:  # every page of the console's menu
            page.click(f"[data-nav={nav}]")
            page.wait_for_load_state("networkidle")
        figures["console_pages"] = navs
        page.goto(f"{base}/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=30000)
        page.wait_for_selector(".opblock", timeout=30000)
        figures["docs_operations"] = page.locator(".opblock").count()
        page.goto(f"{base}/redoc")
        page.wait_for_selector("[role=navigation], .menu-content", timeout=60000)
        page.wait_for_load_state("networkidle")
        figures["redoc_title"] = page.locator("h1").first.inner_text()
        browser.close()

    off_host = sorted({u for u in requests if urlsplit(u).scheme in ("http", "https", "ws", "wss")
                       and urlsplit(u).hostname != own_host})  # fmt: skip
    figures["browser_requests"] = len(requests)
    figures["requests_off_host"] = off_host
    print(json.dumps(figures, ensure_ascii=False))
    if off_host:
        print(f"offline_check: requests off the host: {off_host}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
