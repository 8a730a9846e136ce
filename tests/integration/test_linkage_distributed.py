"""The linkage engine in the distributed mode (issue 27), over real Redis, PostgreSQL and
an ONVIF PTZ camera (ipycam on loopback): it runs in the alerts role (never a worker);
with two alerts roles an alert's actions run once; a camera a linkage turned goes home
even when the alerts role that turned it stopped before the time (a new one takes the
pending return from Redis)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerts import queries
from core.area import Area
from linkage.onvif_ptz import OnvifEndpoint, OnvifPtz
from shaobing.bootstrap import AlertsRole, build_alerts
from shaobing.config import LoadedConfig, parse_config
from shaobing.store import Store
from tests.databases import pg_schema
from tests.factories import make_alert, store
from tests.integration.test_linkage_ptz import PASSWORD, USER, PtzCamera
from tests.redisproc import REDIS_URL, redis_prefix, shared_redis

CG = {"county": "示例县", "township": "城关镇"}
RETURN_HOME_S = 12.0


@pytest.fixture
def deployment(tmp_path: Path, models_dir: Path) -> Iterator[tuple[LoadedConfig, PtzCamera]]:
    camera = PtzCamera(tmp_path / "ipycam")
    with pg_schema() as db_url, redis_prefix() as prefix:
        config = {
            "data_dir": str(tmp_path / "data"),
            "storage": {"database_url": db_url},
            "bus": {"kind": "redis", "url": REDIS_URL, "prefix": prefix},
            "api": {"link_secret": "linkage-distributed-secret-0123"},
            "detector": {"model": str(models_dir / "yolox_nano.onnx")},
            "cameras": [{"id": "dam-ptz", "name": "水库大坝球机", "area": CG,
                         "source": {"onvif": {"host": "127.0.0.1", "port": camera.port,
                                              "username": USER, "password": PASSWORD}}}],
            "linkage": {"return_home_s": RETURN_HOME_S, "rules": [{
                "name": "水库防溺水", "types": ["intrusion"],
                "actions": [{"kind": "ptz_preset", "camera": "dam-ptz", "preset": "水库大坝"},
                            {"kind": "popup", "camera": "dam-ptz"}]}]},
        }  # fmt: skip
        try:
            yield parse_config(config, "linkage-distributed.yaml", tmp_path), camera
        finally:
            camera.stop()


def position(ptz: OnvifPtz) -> tuple[float, float, float]:
    pos = ptz.position("c")
    assert pos is not None
    return pos


def wait(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def history(st: Store, alert_id: str) -> list[Any]:
    with st.sessions() as session:
        return [h for h in queries.history(session, alert_id) if h.action == "linkage"]


def test_alerts_role_acts_once_and_a_return_home_outlives_it(
    deployment: tuple[LoadedConfig, PtzCamera],
) -> None:
    loaded, camera = deployment
    ptz = OnvifPtz({"c": OnvifEndpoint("127.0.0.1", camera.port, USER, PASSWORD)}.get)
    roles: list[tuple[AlertsRole, Store, Any]] = []
    try:
        ptz.move("c", 0.6, 0.0, 0.0)  # a preset away from home, with a Chinese name
        time.sleep(0.4)
        ptz.stop("c")
        preset_at = position(ptz)
        ptz.set_preset("c", "水库大坝")
        ptz.home("c")
        for _ in range(2):  # two alerts roles on one Redis and one database
            role, st, feed = build_alerts(loaded)
            assert role.linkage is not None  # the linkage runs here (workers have none)
            role.start()
            roles.append((role, st, feed))
        st = roles[0][1]
        alert = store(st.sessions, make_alert(1, type="intrusion", severity="high",
                                              camera_id="dam-ptz", area=Area(**CG)))  # fmt: skip
        roles[0][2].publish("alert", alert.id)  # what the alert service does after its commit
        engines = [role.linkage.engine for role, _, _ in roles]  # type: ignore[union-attr]
        # both received the notification; one acted on it, the other left it
        wait(
            "both engines saw the alert",
            lambda: sum(e.counters.alerts + e.counters.elsewhere for e in engines) == 2,
            20,
        )
        assert sorted(e.counters.alerts for e in engines) == [0, 1]
        entries = wait("two results", lambda: len(h := history(st, alert.id)) >= 2 and h, 20)
        assert sorted(h.detail["kind"] for h in entries) == ["popup", "ptz_preset"]
        ptz_entry = next(h for h in entries if h.detail["kind"] == "ptz_preset")
        assert ptz_entry.detail["outcome"] == "sent", ptz_entry.note
        assert position(ptz) == pytest.approx(preset_at)
        # the return home is kept in Redis: stop both roles before it is due ...
        kept = shared_redis().hgetall(f"{loaded.config.bus.prefix}:linkage:home")
        assert set(kept) == {b"dam-ptz"}
        for role, role_store, feed in roles:
            role.stop()
            feed.stop()
            role_store.dispose()
        roles.clear()
        assert position(ptz) == pytest.approx(preset_at)  # nobody sent it home yet
        # ... a new alerts role takes it over and sends the camera home when due
        role, st, feed = build_alerts(loaded)
        role.start()
        roles.append((role, st, feed))
        assert role.linkage is not None
        assert "dam-ptz" in role.linkage.engine.arbiter.returns() or position(ptz) == (0, 0, 0)
        wait("camera home", lambda: position(ptz) == (0.0, 0.0, 0.0), RETURN_HOME_S + 20)
        home = wait(
            "home in the history",
            lambda: [h for h in history(st, alert.id) if h.detail.get("kind") == "ptz_home"],
            10,
        )
        assert home[0].detail["outcome"] == "sent"
        assert not shared_redis().hgetall(f"{loaded.config.bus.prefix}:linkage:home")
    finally:
        for role, role_store, feed in roles:
            role.stop()
            feed.stop()
            role_store.dispose()
        ptz.close()
