"""The console's camera registry in distributed mode (issue 23): a camera added, edited,
disabled, enabled and deleted through an API node is taken, restarted, given up and
forgotten by the worker holding its lease — told through Redis, no restart. Real roles as
processes, real Redis and PostgreSQL, a real RTSP server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.databases import pg_schema
from tests.hubproc import ADMIN_PASSWORD
from tests.integration.test_distributed import Deployment, distributed_config
from tests.peers.procs import RtspServer, free_port
from tests.peers.receiver import Receiver
from tests.redisproc import REDIS_URL, redis_prefix

pytestmark = pytest.mark.slow


def test_the_worker_holding_a_camera_applies_the_consoles_changes(
    tmp_path: Path, models_dir: Path, rtsp_server_factory: Callable[..., RtspServer],
    receiver: Receiver,
) -> None:  # fmt: skip
    rtsp = rtsp_server_factory({"cross": "crosswalk_people.mp4",
                                "street": "street_parked_cars.mp4"})  # fmt: skip
    with pg_schema() as db_url, redis_prefix() as prefix:
        api_port = free_port()
        config = distributed_config(tmp_path, models_dir, db_url=db_url, redis_url=REDIS_URL,
                                    prefix=prefix, cameras=[], receiver_url=receiver.url,
                                    api_port=api_port)  # fmt: skip
        d = Deployment(tmp_path, config, api_port, redis.Redis.from_url(REDIS_URL), prefix)
        try:
            d.start("api")
            d.start("worker", "--name", "w1")
            d.wait("the API node", lambda: d.get("/api/cameras") == [], 60)
            headers = {"Authorization": f"Bearer {d._token}"}

            def call(method: str, path: str, body: Any = None) -> httpx.Response:
                return httpx.request(method, f"{d.base}{path}", json=body, headers=headers,
                                     timeout=20)  # fmt: skip

            def state() -> dict[str, Any]:
                return dict(d.entry("dc").get("status") or {})

            body = {"id": "dc", "name": "分布式路口", "area": {"county": "示例县"},
                    "source": {"url": rtsp.url("cross")}, "detect_fps": 2}  # fmt: skip
            assert call("POST", "/api/cameras", body).status_code == 201
            d.wait("the new camera held and online", lambda: d.holders(["dc"]).get("dc") == "w1"
                   and state().get("state") == "online", 60)  # fmt: skip
            r = call("PATCH", "/api/cameras/dc", {"source": {"url": rtsp.url("street")}})
            assert r.status_code == 200, r.text
            d.wait("restarted on its new source", lambda: "street" in str(
                state().get("stream_url")) and state().get("state") == "online", 60)  # fmt: skip
            assert call("PATCH", "/api/cameras/dc", {"enabled": False}).status_code == 200
            d.wait("given up when disabled", lambda: "dc" not in d.holders(["dc"]), 30)
            assert call("PATCH", "/api/cameras/dc", {"enabled": True}).status_code == 200
            d.wait("taken again when enabled", lambda: d.holders(["dc"]).get("dc") == "w1"
                   and state().get("state") == "online", 60)  # fmt: skip
            assert call("DELETE", "/api/cameras/dc").status_code == 204
            d.wait("given up when deleted", lambda: "dc" not in d.holders(["dc"]), 30)
            assert d.get("/api/cameras") == []
            assert ADMIN_PASSWORD not in d.logs()
        finally:
            d.stop()
