"""Fixtures of the console's browser tests: Debian's Chromium (headless, through
Playwright) and one real hub per module reading real clips over RTSP. A test fails if any
request its pages made went anywhere but 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.console import console_dir
from tests.console.room import CHROMIUM, Room, pages_of, room_config, running_room
from tests.hubproc import HubProcess
from tests.peers.procs import RtspServer


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium is needed: apt-get install chromium"
    assert (console_dir() / "index.html").is_file(), "build the console: scripts/build_console.sh"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--autoplay-policy=no-user-gesture-required"],
        )  # fmt: skip
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def room(
    tmp_path_factory: pytest.TempPathFactory, videos_dir: Path, models_dir: Path, browser: Any,
    _gst_ok: None,
) -> Iterator[Room]:  # fmt: skip
    rtsp = RtspServer({"crosswalk": videos_dir / "crosswalk_people.mp4",
                       "plaza": videos_dir / "plaza_topdown.mp4"})  # fmt: skip
    hub = HubProcess(tmp_path_factory.mktemp("room"), room_config(models_dir, rtsp))
    with running_room(hub, rtsp, browser, ("cg-cross", "hx-plaza"), 40) as running:
        yield running


@pytest.fixture
def pages(room: Room) -> Iterator[Room]:
    """The room; the pages a test opened are closed after it, and every request they
    made must have gone to the hub's host."""
    yield from pages_of(room)
