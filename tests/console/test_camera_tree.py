"""The wall's camera tree at scale, in a real browser: with more cameras than the console
loads at login (the threshold lowered to 100 here through localStorage; 2,000 by default)
the tree is built from ``GET /api/cameras/areas`` with each place's counts, a place's
cameras are read when it is opened (200 at a time, then "more"), the search asks the API,
and the camera pickers search the API as you type. The full camera list is never asked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.console.room import DESKTOP, Room
from tests.hubproc import ADMIN_PASSWORD, HubProcess

pytestmark = pytest.mark.slow

#: (township, village or None, cameras): 300 in all, 镇A/村1 more than a page of 200.
PLACES = [("镇A", "村1", 230), ("镇A", "村2", 20), ("镇B", "村3", 30), ("镇C", None, 20)]
MANY = "localStorage.setItem('shaobing.fullListMax', '100')"


def tree_config(models_dir: Path) -> dict[str, Any]:
    cameras, n = [], 0
    for township, village, count in PLACES:
        for _ in range(count):
            area = {"county": "示例县", "township": township}
            if village:
                area["village"] = village
            cameras.append({"id": f"c-{n:04d}", "name": f"点位{n:04d}", "area": area,
                            "enabled": False,  # nothing is read: the tree is what is tested
                            "source": {"url": f"rtsp://127.0.0.1:9/c{n}"}})  # fmt: skip
            n += 1
    return {"detector": {"model": str(models_dir / "yolox_nano.onnx")}, "cameras": cameras,
            "areas": [{"county": "示例县", "code": "510123"}]}  # fmt: skip


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, browser: Any,
         ) -> Iterator[Room]:  # fmt: skip
    hub = HubProcess(tmp_path_factory.mktemp("tree"), tree_config(models_dir))
    try:
        hub.start()
        yield Room(hub, browser)
    finally:
        hub.stop()


def expand(page: Any, path: str) -> None:
    page.click(f".el-tree-node__content:has([data-tree-place='{path}']) .el-tree-node__expand-icon")


def in_tree(page: Any) -> int:
    return page.locator("[data-test=camera-tree] [data-tree-camera]").count()  # type: ignore[no-any-return]


def test_the_tree_opens_place_by_place_and_the_search_asks_the_api(room: Room) -> None:
    room.hosts.clear()
    asked: list[dict[str, list[str]]] = []
    context = room.browser.new_context(viewport=DESKTOP)
    context.add_init_script(MANY)
    context.on("request", lambda r: room.hosts.add(urlsplit(r.url).hostname or r.url))

    def note(request: Any) -> None:
        url = urlsplit(request.url)
        if url.path == "/api/cameras":
            asked.append(parse_qs(url.query))

    context.on("request", note)
    room.contexts.append(context)
    page = context.new_page()
    page.goto(f"{room.hub.base}/#/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    try:
        # The county is open on its townships, each with its cameras online / all.
        page.wait_for_selector("[data-tree-place='示例县/镇A']", timeout=15000)
        county = page.text_content(".el-tree-node__content:has([data-tree-place='示例县'])")
        assert county and "0/300" in county
        town = page.text_content(".el-tree-node__content:has([data-tree-place='示例县/镇A'])")
        assert town and "0/250" in town
        assert in_tree(page) == 0  # no camera read yet

        # A township opens on its villages; a village on its first 200 cameras, then "more".
        expand(page, "示例县/镇A")
        page.wait_for_selector("[data-tree-place='示例县/镇A/村1']")
        expand(page, "示例县/镇A/村1")
        page.wait_for_selector("[data-tree-camera='c-0199']")
        assert in_tree(page) == 200
        more = page.locator("[data-test=tree-more]")
        assert "30" in more.inner_text()
        more.click()
        page.wait_for_selector("[data-tree-camera='c-0229']")
        assert in_tree(page) == 230 and page.locator("[data-test=tree-more]").count() == 0
        # A township's own cameras (no village) come with it.
        expand(page, "示例县/镇C")
        page.wait_for_selector("[data-tree-camera='c-0280']")

        # A click puts the camera on the selected tile.
        page.click("[data-tree-camera='c-0005']")
        page.wait_for_function("() => (localStorage.getItem('shaobing.admin.wall.tiles') || '')"
                               ".includes('c-0005')")  # fmt: skip

        # The search asks the API and finds one camera among 300.
        search = page.locator("[data-test=tree-search]").locator("xpath=descendant-or-self::input")
        search.first.fill("点位0123")
        page.wait_for_selector("[data-test=tree-found] [data-tree-camera='c-0123']")
        assert page.locator("[data-test=tree-found] [data-tree-camera]").count() == 1
        assert any(q.get("q") == ["点位0123"] for q in asked)

        # The alerts' camera filter searches the API as you type.
        page.click("[data-nav=alerts]")
        page.click("[data-test=filter-camera]")
        page.keyboard.type("点位0261")
        page.wait_for_selector("li.el-select-dropdown__item:visible >> text=点位0261")
        assert any(q.get("q") == ["点位0261"] for q in asked)

        # Never the whole list: every camera request was a page.
        assert asked and all("limit" in q for q in asked), asked
        assert max(int(q["limit"][0]) for q in asked) <= 200
    finally:
        room.close()
    assert room.hosts <= {"127.0.0.1"}
