"""Hostile inputs answer clean errors, never a 500 (issue 21): non-ASCII signatures,
huge ids and offsets, long areas, and a sweep of every route of the real app with odd
path and query values. Real hub (not started), real database, the app's own routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from alerts.signing import verify
from shaobing.bootstrap import Hub
from shaobing.media import verify as verify_live
from tests.integration.test_bad_inputs import login, make_hub

HUGE = "9" * 30
ODD_VALUES = [HUGE, "-1", "é" * 300, "%00", "..%2F..%2Fetc", "x" * 5000]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Hub]:
    tmp = tmp_path_factory.mktemp("hostile")
    camera = {"id": "cam-1", "source": {"url": "rtsp://127.0.0.1:9/x"},
              "area": {"county": "示例县"}}
    feedback = [{"name": "platform", "secret": "feedback-secret-0123456789"}]
    h = make_hub(tmp, models_dir, [camera], feedback=feedback)
    yield h
    h.engine.dispose()


@pytest.fixture(scope="module")
def client(hub: Hub) -> TestClient:
    return login(hub)


def test_non_ascii_signatures_are_refused_not_crashed(hub: Hub, client: TestClient) -> None:
    anonymous = TestClient(client.app)
    for sig in ("é" * 40, "签名"):
        r = anonymous.get("/api/alerts/x/snapshot.jpg", params={"expires": "99999999999",
                                                                 "sig": sig})  # fmt: skip
        assert r.status_code == 401, (sig, r.status_code)
    for sig in ("é" * 40, "签名", "\ud800"):  # a lone surrogate: from a JSON body
        assert not verify_live(b"k" * 32, "cam-1", "99999999999", sig)
        assert not verify(b"{}", "secret", sig)
        assert not hub.links.verify("x", "snapshot", 99999999999, sig)
    r = anonymous.post("/api/feedback", content=b"{}", headers={
        "X-Shaobing-Source": "platform", "X-Shaobing-Signature": "sha256=é".encode()})  # fmt: skip
    assert r.status_code == 401


@pytest.mark.parametrize("method,path", [
    ("GET", f"/api/audit?offset={HUGE}"),
    ("GET", f"/api/alerts?offset={HUGE}"),
    ("GET", f"/api/deliveries?offset={HUGE}"),
    ("POST", f"/api/deliveries/{HUGE}/retry"),
    ("POST", f"/api/deliveries/{HUGE}/discard"),
    ("DELETE", f"/api/api-keys/{HUGE}"),
    ("GET", "/api/stats/cameras?area=" + "长" * 65),
    ("GET", "/api/stats/alerts?area=a/b/c/d/e"),
    ("GET", "/api/stats/alerts.xlsx?area=" + "长" * 65),
])  # fmt: skip
def test_huge_ids_and_long_areas_are_422(client: TestClient, method: str, path: str) -> None:
    r = client.request(method, path)
    assert r.status_code == 422, (path, r.status_code, r.text[:200])


def test_no_route_answers_5xx_to_odd_values(client: TestClient) -> None:
    """Every route, every path parameter and every query parameter given odd values."""
    client = TestClient(client.app, raise_server_exceptions=False, headers=client.headers)
    failures = []
    for route in client.app.routes:  # type: ignore[attr-defined]
        if not isinstance(route, APIRoute) or route.path.endswith(("/live.flv", "/events")):
            continue  # streams: covered by tests/test_live.py and test_stream_authority.py
        queries = [p.alias for p in route.dependant.query_params]
        for method in sorted(route.methods):
            for value in ODD_VALUES:
                path = route.path
                for param in route.dependant.path_params:
                    path = path.replace("{" + param.name + "}", value)
                path = path.replace("{path:path}", value)
                params = {q: value for q in queries}
                r = client.request(method, path, params=params, json={"x": value})
                not_built = route.path == "/" and r.status_code == 503  # the console page
                if r.status_code >= 500 and not not_built:
                    failures.append(f"{method} {route.path} {value[:20]!r}: {r.status_code}")
    assert not failures, "\n".join(failures)
