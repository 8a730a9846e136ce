"""The console's browser tests' room: one real hub reading two real RTSP cameras in two
townships, and the browser pages opened on it (every request they make is recorded)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.hubproc import ADMIN_PASSWORD, HubProcess
from tests.peers.procs import RtspServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
TOWNSHIP = {"county": "示例县", "township": "城关镇"}
OTHER = {"county": "示例县", "township": "河西镇"}
WHOLE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
DESKTOP = {"width": 1920, "height": 1080}
LAPTOP = {"width": 1366, "height": 768}


def room_config(models_dir: Path, rtsp: RtspServer) -> dict[str, Any]:
    """Two townships, a camera each. The crosswalk watches its whole frame (a medium
    intrusion: no pop-up); the plaza has no rule until the editor draws one."""
    return {
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 2},
        "alerts": {"cooldown_s": 600},
        "tracks": {"end_after_s": 2.0},
        "areas": [{"county": "示例县", "code": "510123"}, {**TOWNSHIP, "code": "510123100"},
                  {**OTHER, "code": "510123101"}],
        "departments": [{"id": "cg-pcs", "name": "城关派出所", "kind": "police",
                         "level": "township", "areas": [TOWNSHIP]}],
        "cameras": [
            {"id": "cg-cross", "name": "城关镇人民路口", "area": {**TOWNSHIP, "village": "人民村"},
             "programme": "xueliang", "lat": 30.6571, "lon": 104.0658,
             "source": {"url": rtsp.url("crosswalk")}, "detect_fps": 5,
             "zones": [{"name": "square", "points": WHOLE}],
             "rules": [{"name": "square-intrusion", "type": "intrusion", "zone": "square",
                        "min_duration_s": 1, "severity": "medium"}]},
            {"id": "hx-plaza", "name": "河西镇广场", "area": {**OTHER, "village": "河西村"},
             "programme": "tianwang", "lat": 30.66, "lon": 104.07,
             "source": {"url": rtsp.url("plaza")}, "detect_fps": 2},
        ],
    }  # fmt: skip


@dataclass
class Room:
    """The hub, its cameras and the browser pages opened on it."""

    hub: HubProcess
    browser: Any
    hosts: set[str] = field(default_factory=set)
    contexts: list[Any] = field(default_factory=list)

    def page(self, username: str = "admin", password: str = ADMIN_PASSWORD,
             viewport: dict[str, int] = DESKTOP, init_script: str | None = None,
             timezone_id: str | None = None) -> Any:  # fmt: skip
        """A fresh browser (no cookies, no storage) logged in as ``username``;
        ``init_script`` runs in every page before the console's own scripts."""
        context = self.browser.new_context(viewport=viewport, accept_downloads=True,
                                           timezone_id=timezone_id)  # fmt: skip
        if init_script:
            context.add_init_script(init_script)
        context.on("request", lambda req: self.hosts.add(urlsplit(req.url).hostname or req.url))
        self.contexts.append(context)
        page = context.new_page()
        page.goto(f"{self.hub.base}/#/login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-nav=wall]", timeout=15000)
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()

    def put(self, path: str, body: Any) -> httpx.Response:
        return httpx.put(f"{self.hub.base}{path}", json=body, headers=self.hub.auth(), timeout=10)

    def wait(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        return self.hub.wait(what, check, timeout)


@contextmanager
def running_room(hub: HubProcess, rtsp: RtspServer, browser: Any, online: Iterable[str],
                 timeout_s: float) -> Iterator[Room]:  # fmt: skip
    """The RTSP cameras and the hub started, the ``online`` cameras playing; both stopped
    after."""
    try:
        rtsp.start()
        hub.start()
        hub.wait("cameras online", lambda: all(hub.camera(c)["status"]["state"] == "online"
                                               for c in online), timeout_s)  # fmt: skip
        yield Room(hub, browser)
    finally:
        hub.stop()
        rtsp.stop()


def pages_of(room: Room) -> Iterator[Room]:
    """The room for one test: the pages it opened are closed after it, and every request
    they made must have gone to the hub's host."""
    room.hosts.clear()
    yield room
    room.close()
    assert room.hosts <= {"127.0.0.1"}, f"requests left the hub's host: {room.hosts}"


def shot(page: Any, name: str) -> None:
    """A screenshot for the operator guide (docs/console.md)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"console-{name}.png"))


def export_case(page: Any, hub: HubProcess, target: Path, case_number: str, reason: str,
                timeout_ms: float = 30000) -> list[str]:  # fmt: skip
    """录像回放's export dialog (open): the case number and reason filled, exported; the
    signed zip downloaded to ``target`` and checked by ``shaobing evidence verify``. Its
    file names."""
    page.fill("input[data-test=pb-case]", case_number)
    page.fill("input[data-test=pb-reason]", reason)
    with page.expect_download(timeout=timeout_ms) as download:
        page.click("[data-test=pb-export-go]")
    download.value.save_as(target)
    with zipfile.ZipFile(target) as z:
        names: list[str] = z.namelist()
    verify = subprocess.run(
        [sys.executable, "-m", "shaobing.cli", "evidence", "verify", str(target),
         "--config", str(hub.config_path)],
        capture_output=True, text=True, cwd=hub.workdir, timeout=60,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    return names
