"""The web console: bundle size and first load in headless Chromium.

    .venv/bin/python -m bench.bench_console

Sizes are of console/dist (raw and gzip -9, what a proxy or the browser cache holds);
the load is timed against a real hub on 127.0.0.1 with an empty browser cache: the login
page (HTML + the entry chunks), then the video wall after logging in.
"""

from __future__ import annotations

import gzip
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from api.console import console_dir
from tests.hubproc import ADMIN_PASSWORD, HubProcess

ASSETS = Path(
    os.environ.get("SHAOBING_ASSETS", Path(__file__).resolve().parents[2] / "shared" / "assets")
)


def sizes(dist: Path) -> tuple[int, int, int, int]:
    """(raw, gzip) of everything, and of what the login page loads first (index chunks)."""
    total = total_gz = first = first_gz = 0
    index = (dist / "index.html").read_text(encoding="utf-8")
    for f in dist.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            gz = len(gzip.compress(data, 9))
            total, total_gz = total + len(data), total_gz + gz
            if f.name == "index.html" or f.name in index:
                first, first_gz = first + len(data), first_gz + gz
    return total, total_gz, first, first_gz


def main() -> int:
    from playwright.sync_api import sync_playwright

    dist = console_dir()
    total, total_gz, first, first_gz = sizes(dist)
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores")
    print(
        f"bundle: {total / 1e6:.2f} MB ({total_gz / 1e6:.2f} MB gzip) in all; the first page "
        f"loads {first / 1e6:.2f} MB ({first_gz / 1e6:.2f} MB gzip), views load on demand"
    )
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as tmp:
        model = str(ASSETS / "models" / "yolox_nano.onnx")
        hub = HubProcess(Path(tmp), {"detector": {"model": model}, "cameras": []}).start()
        pw = sync_playwright().start()
        try:
            args = ["--headless", "--no-sandbox", "--disable-gpu"]
            browser = pw.chromium.launch(executable_path=chromium, args=args)
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            t0 = time.monotonic()
            page.goto(f"{hub.base}/#/login", wait_until="load")
            page.wait_for_selector("input[name=username]")
            login_s = time.monotonic() - t0
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", ADMIN_PASSWORD)
            t1 = time.monotonic()
            page.click("button[type=submit]")
            page.wait_for_selector("[data-nav=wall]")
            wall_s = time.monotonic() - t1
            browser.close()
        finally:
            pw.stop()
            hub.stop()
    print(f"first load (empty cache, loopback): login page usable in {login_s * 1000:.0f} ms; "
          f"logged in to the video wall in {wall_s * 1000:.0f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
