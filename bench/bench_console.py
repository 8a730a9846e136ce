"""The web console: bundle size and first load in headless Chromium; with ``--cameras N``
the camera tree at county scale.

    .venv/bin/python -m bench.bench_console
    .venv/bin/python -m bench.bench_console --cameras 100000

Sizes are of console/dist (raw and gzip -9, what a proxy or the browser cache holds);
the load is timed against a real hub on 127.0.0.1 with an empty browser cache: the login
page (HTML + the entry chunks), then the video wall after logging in.

``--cameras N`` first imports N cameras into the bench hub with ``shaobing cameras import``
(one county, 30 townships, 20 villages each, as bench/bench_control_plane.py; every camera
disabled and pointed at 127.0.0.1, so the hub opens no stream) and then times: logging in
until the wall's tree shows its townships, opening a township (its villages) and a village
(its cameras), a search in the tree, ``GET /api/cameras/areas`` (the tree's summary) and
what the browser downloaded and holds. ``--full-list`` also times the unpaged
``GET /api/cameras`` the console used to read at login.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from api.console import console_dir
from bench.machine import machine_line
from core.assets import assets_dir
from tests.hubproc import ADMIN_PASSWORD, HubProcess

ASSETS = assets_dir()
REPO = Path(__file__).resolve().parents[1]
PROGRAMMES = ["xueliang", "tianwang", "huiyan", "traffic", "village"]


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


def write_csv(path: Path, n: int) -> None:
    """N disabled cameras over one county, 30 townships, 20 villages each."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "url", "county", "township", "village", "lat", "lon",
                    "programme", "enabled"])  # fmt: skip
        for i in range(n):
            town, village = i % 30, (i // 30) % 20
            w.writerow([
                f"cam-{i:06d}", f"乡镇{town:02d}村{village:02d}点位{i:06d}",
                f"rtsp://127.0.0.1:9/cam{i}", "示例县", f"镇{town:02d}", f"村{village:02d}",
                f"{30 + (i % 1000) / 10000:.4f}", f"{104 + (i % 997) / 10000:.4f}",
                PROGRAMMES[i % len(PROGRAMMES)], "false",
            ])  # fmt: skip


def import_cameras(hub: HubProcess, n: int) -> float:
    csv_path = hub.workdir / "cameras.csv"
    write_csv(csv_path, n)
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "shaobing.cli", "cameras", "import", str(csv_path),
         "--config", str(hub.config_path)], cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"import failed:\n{done.stdout}\n{done.stderr}")
    return time.monotonic() - t0


class BenchHub(HubProcess):
    """The hub, ready when it serves the console's page. (``/healthz`` counts the cameras'
    states by copying every camera's status: seconds at 100,000 cameras, longer than the
    1 s the tests' hub allows it.)"""

    def start(self, timeout: float = 60.0) -> HubProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shaobing.cli", "run", "--config", str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.workdir,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base}/", timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError(f"hub not up after {timeout} s:\n{self.log()}")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def time_tree(page: Any, n: int) -> dict[str, float]:
    """The tree at scale, in a logged-in page on the wall (the times in seconds)."""
    out: dict[str, float] = {}

    def expand(path: str) -> None:
        page.click(f".el-tree-node__content:has([data-tree-place='{path}']) "
                   ".el-tree-node__expand-icon")  # fmt: skip

    t0 = time.monotonic()
    expand("示例县/镇07")
    page.wait_for_selector("[data-tree-place='示例县/镇07/村00']")
    out["township_s"] = time.monotonic() - t0
    t0 = time.monotonic()
    expand("示例县/镇07/村03")
    page.wait_for_selector("[data-test=camera-tree] [data-tree-camera]")
    out["village_s"] = time.monotonic() - t0
    out["village_cameras"] = page.locator("[data-test=camera-tree] [data-tree-camera]").count()
    search = page.locator("[data-test=tree-search]").locator("xpath=descendant-or-self::input")
    t0 = time.monotonic()
    wanted = min(12345, n - 1)
    search.first.fill(f"点位{wanted:06d}")  # typed; the box waits 250 ms before asking
    page.wait_for_selector(f"[data-test=tree-found] [data-tree-camera='cam-{wanted:06d}']")
    out["search_s"] = time.monotonic() - t0
    out["heap_mb"] = page.evaluate("() => performance.memory.usedJSHeapSize") / 1e6
    out["nodes"] = page.evaluate("() => document.getElementsByTagName('*').length")
    return out


def time_api(hub: HubProcess, full_list: bool) -> dict[str, float]:
    token = httpx.post(
        f"{hub.base}/api/auth/login",
        timeout=60,
        json={"username": "admin", "password": ADMIN_PASSWORD},
    ).json()["token"]
    client = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=600)
    url = f"{hub.base}/api/cameras/areas"
    client.get(url).raise_for_status()
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        r = client.get(url)
        times.append(time.perf_counter() - t0)
        r.raise_for_status()
    out = {"areas_p50_s": statistics.median(times), "areas_max_s": max(times),
           "areas_nodes": len(r.json()), "areas_bytes": len(r.content)}  # fmt: skip
    if full_list:
        t0 = time.perf_counter()
        r = client.get(f"{hub.base}/api/cameras")
        out["full_list_s"] = time.perf_counter() - t0
        out["full_list_mb"] = len(r.content) / 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    from playwright.sync_api import sync_playwright

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cameras", type=int, default=0, help="import this many cameras first")
    p.add_argument("--full-list", action="store_true",
                   help="also time the unpaged GET /api/cameras (with --cameras)")  # fmt: skip
    args = p.parse_args(argv)

    dist = console_dir()
    total, total_gz, first, first_gz = sizes(dist)
    print(machine_line())
    print(
        f"bundle: {total / 1e6:.2f} MB ({total_gz / 1e6:.2f} MB gzip) in all; the first page "
        f"loads {first / 1e6:.2f} MB ({first_gz / 1e6:.2f} MB gzip), views load on demand"
    )
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    tree: dict[str, float] = {}
    api: dict[str, float] = {}
    received = [0]
    with tempfile.TemporaryDirectory() as tmp:
        model = str(ASSETS / "models" / "yolox_nano.onnx")
        config = {"detector": {"model": model}, "cameras": [], "logging": {"level": "WARNING"}}
        hub = BenchHub(Path(tmp), config)
        if args.cameras:
            import_s = import_cameras(hub, args.cameras)
            print(f"imported {args.cameras} cameras in {import_s:.1f} s")
        pw = sync_playwright().start()
        try:
            t0 = time.monotonic()
            hub.start(timeout=900)
            if args.cameras:
                print(f"hub up with them in {time.monotonic() - t0:.1f} s")
            args_ = ["--headless", "--no-sandbox", "--disable-gpu"]
            browser = pw.chromium.launch(executable_path=chromium, args=args_)
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            if 0 < args.cameras <= 2000:  # the lazy tree even so (2,000 loads them all)
                page.add_init_script("localStorage.setItem('shaobing.fullListMax', '100')")
            page.on("response", lambda r: received.__setitem__(
                0, received[0] + int(r.headers.get("content-length") or 0)))  # fmt: skip
            t0 = time.monotonic()
            page.goto(f"{hub.base}/#/login", wait_until="load")
            page.wait_for_selector("input[name=username]")
            login_s = time.monotonic() - t0
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", ADMIN_PASSWORD)
            t1 = time.monotonic()
            page.click("button[type=submit]")
            page.wait_for_selector("[data-nav=wall]", timeout=600_000)
            wall_s = time.monotonic() - t1
            if args.cameras:
                page.wait_for_selector("[data-tree-place='示例县/镇07']", timeout=600_000)
                tree["tree_s"] = time.monotonic() - t1
                tree["login_bytes"] = received[0]
                tree.update(time_tree(page, args.cameras))
            browser.close()
            if args.cameras:
                api = time_api(hub, args.full_list)
        finally:
            pw.stop()
            hub.stop()
    print(f"first load (empty cache, loopback): login page usable in {ms(login_s)}; "
          f"logged in to the video wall in {ms(wall_s)}")  # fmt: skip
    if tree:
        print(f"{args.cameras} cameras: log in → wall tree with its townships {ms(tree['tree_s'])} "
              f"({tree['login_bytes'] / 1e6:.2f} MB received since the login page, "
              "the bundle included); "
              f"open a township (its villages) {ms(tree['township_s'])}; open a village "
              f"({tree['village_cameras']:.0f} cameras) {ms(tree['village_s'])}; search "
              f"(250 ms typing pause included) {ms(tree['search_s'])}; JS heap "
              f"{tree['heap_mb']:.1f} MB, {tree['nodes']:.0f} DOM elements")  # fmt: skip
        print(f"GET /api/cameras/areas: p50 {ms(api['areas_p50_s'])}, max {ms(api['areas_max_s'])} "
              f"({api['areas_nodes']:.0f} places, {api['areas_bytes'] / 1e3:.0f} kB)")  # fmt: skip
        if "full_list_s" in api:
            print(f"GET /api/cameras unpaged (what the console read at login before): "
                  f"{api['full_list_s']:.1f} s, {api['full_list_mb']:.1f} MB")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
