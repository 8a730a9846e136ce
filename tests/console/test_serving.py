"""The hub serves the built console at / with cache rules, never shadowing the API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from api.console import console_dir
from tests.hubproc import HubProcess

pytestmark = pytest.mark.slow


def test_the_console_is_served_with_cache_rules(tmp_path: Path, models_dir: Path) -> None:
    assert (console_dir() / "index.html").is_file(), "build the console: scripts/build_console.sh"
    hub = HubProcess(tmp_path, {"detector": {"model": str(models_dir / "yolox_nano.onnx")},
                                "cameras": []}).start()  # fmt: skip
    try:
        page = httpx.get(f"{hub.base}/", timeout=5)
        assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
        assert '<div id="app">' in page.text
        asset = next(iter(sorted((console_dir() / "assets").glob("index-*.js"))))
        r = httpx.get(f"{hub.base}/assets/{asset.name}", timeout=5)
        assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
        assert httpx.get(f"{hub.base}/assets/../../pyproject.toml", timeout=5).status_code == 404
        assert httpx.get(f"{hub.base}/assets/%2e%2e/index.html", timeout=5).status_code == 404
        # The API, its documents and health stay what they are.
        assert httpx.get(f"{hub.base}/api/no-such-thing", timeout=5).status_code == 404
        assert httpx.get(f"{hub.base}/api/cameras", timeout=5).status_code == 401
        assert httpx.get(f"{hub.base}/openapi.json", timeout=5).json()["info"]["title"]
        assert httpx.get(f"{hub.base}/healthz", timeout=5).status_code == 200
        assert "swagger" in httpx.get(f"{hub.base}/docs", timeout=5).text.lower()
    finally:
        hub.stop()
