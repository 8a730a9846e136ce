"""/docs and /redoc load only files the hub serves itself (no CDN: air-gapped networks)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.docs import STATIC_URL, asset_bytes, static_dir
from shaobing.bootstrap import Hub
from shaobing.config import load_config


class _Refs(HTMLParser):
    """Every URL a page makes the browser fetch: src=, href= of <link>, and url(...)."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (name == "src" or (name == "href" and tag == "link")):
                self.refs.append(value)


def page_refs(html: str) -> list[str]:
    parser = _Refs()
    parser.feed(html)
    # Swagger UI's page loads the OpenAPI document from a url given in a script.
    return parser.refs + re.findall(r"url:\s*'([^']+)'", html)


@pytest.fixture
def client(tmp_path: Path, models_dir: Path) -> Iterator[TestClient]:
    path = tmp_path / "hub.yaml"
    model = models_dir / "yolox_nano.onnx"
    path.write_text(f"data_dir: {tmp_path}\ndetector: {{model: {model}}}\n")
    hub = Hub(load_config(str(path)))
    try:
        yield TestClient(create_app(hub.services, hub.sessions))
    finally:
        hub.engine.dispose()


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_same_origin_files(client: TestClient, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    external = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s\"'<>]*", r.text, re.I)
    assert not external, f"{page} names an external host: {external}"
    refs = page_refs(r.text)
    assert any(ref.endswith(".js") for ref in refs), refs
    for ref in refs:
        assert ref.startswith("/") and not ref.startswith("//"), ref
        asset = client.get(ref)
        assert asset.status_code == 200, ref
        if ref.startswith(STATIC_URL):
            assert asset.content == asset_bytes(ref.rsplit("/", 1)[1])
            assert b"cdn.redoc.ly" not in asset.content  # ReDoc's logo (a CDN image)
    if page == "/docs":  # no validator badge from validator.swagger.io
        assert '"validatorUrl": null' in r.text
    else:
        assert "fonts.googleapis" not in r.text


def test_docs_assets_are_served_with_types_and_nothing_else(client: TestClient) -> None:
    kinds = {"swagger-ui-bundle.js": "javascript", "swagger-ui.css": "text/css",
             "redoc.standalone.js": "javascript", "favicon.png": "image/png"}  # fmt: skip
    for name, kind in kinds.items():
        r = client.get(f"{STATIC_URL}/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"], name
    assert client.get(f"{STATIC_URL}/../../api/docs.py").status_code == 404
    assert client.get(f"{STATIC_URL}/%2e%2e%2fcore.py").status_code == 404
    assert (static_dir() / "redoc.standalone.js").read_bytes() != asset_bytes("redoc.standalone.js")
    assert client.get(f"{STATIC_URL}/no-such.js").status_code == 404
    assert client.get("/docs/oauth2-redirect").status_code == 200
    # The API stays behind its login.
    assert client.get("/api/cameras").status_code == 401
