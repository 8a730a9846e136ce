"""Authorisation of the whole REST API, route by route and role by role, over a real hub
(its database and services; no camera started) and the real app with its Host check.

* Every route answers 401 without credentials, except exactly ``PUBLIC_ROUTES``: the
  routes are enumerated from the app, so a new route without authentication fails here.
* The role matrix: every (route, method) x identity x credential kind (login token, or
  the API key of a machine user with the same role and scope) answers what
  :data:`PERMISSION_GRID` says: 403 without the route's permission, its success status
  with it. :data:`CASES` must cover every non-public route, so a new route forces an entry.
* Scope: area for operators and readers, department or assignee for department users;
  lists are filtered (their ``total``), details, evidence and actions answer 404.
* The Host header check (DNS rebinding) holds even with a valid token.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastapi.routing
import numpy as np
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from httpx import Response
from starlette.routing import BaseRoute
from starlette.websockets import WebSocketDisconnect

from accounts import passwords
from accounts.domain import PERMISSIONS, ROLE_PERMISSIONS, ROLES
from accounts.service import create_api_key, create_user, find_api_key
from alerts.adapters.sql import OutboxRecord, save_routing_rule
from alerts.evidence import encode_jpeg, write_evidence
from alerts.messages import ClipMessage
from alerts.signing import sign
from analytics.config import CameraConfig
from api.app import PUBLIC_ROUTES, create_app
from camera_registry.areas import add_area
from camera_registry.store import list_cameras, upsert_camera
from core.area import Area
from shaobing.bootstrap import Hub
from shaobing.config import parse_config
from tests.factories import make_alert, store, with_snapshot
from tracks.store import TrackRecord, add_track

PW = "matrix-pass-0123"
FEEDBACK_SECRET = "feedback-secret-0123456789"
COUNTY = {"county": "示例县"}
CG = {**COUNTY, "township": "城关镇"}
CG_GRID = {**CG, "village": "人民村", "grid": "03"}
HX = {**COUNTY, "township": "河西镇"}
HX_VILLAGE = {**HX, "village": "河西村"}
CAMERA_OF = {"城关镇": "cg-cam-1", "河西镇": "hx-cam-1"}
#: Alerts made during the tests are created after this time; the fixed ones before.
FRESH_FROM = 100_000

# -- the specification -------------------------------------------------------------

#: What each role may do, written out: the matrix expects exactly this (and
#: ``accounts.domain.ROLE_PERMISSIONS`` must say the same).
PERMISSION_GRID = """
                  admin  supervisor  operator  department  investigator  viewer
cameras:read        x        x          x          x            x          x
cameras:configure   x        x          .          .            .          .
cameras:manage      x        x          .          .            .          .
areas:manage        x        x          .          .            .          .
alerts:read         x        x          x          x            x          x
evidence:read       x        x          x          x            x          .
alerts:handle       x        x          x          x            .          .
alerts:reopen       x        x          .          .            .          .
evidence:export     x        x          .          .            x          .
routing:read        x        x          x          .            .          .
routing:write       x        x          .          .            .          .
users:manage        x        .          .          .            .          .
audit:read          x        x          .          .            .          .
dispatch:manage     x        x          .          .            .          .
"""


def parse_grid(grid: str) -> dict[str, frozenset[str]]:
    header, *rows = (line.split() for line in grid.strip().splitlines())
    granted: dict[str, set[str]] = {role: set() for role in header}
    for permission, *marks in rows:
        assert len(marks) == len(header), permission
        for role, mark in zip(header, marks, strict=True):
            if mark == "x":
                granted[role].add(permission)
    return {role: frozenset(perms) for role, perms in granted.items()}


GRANTS = parse_grid(PERMISSION_GRID)
AUTHENTICATED = None  # a route any authenticated caller may use


def allowed(role: str, permission: str | None) -> bool:
    return permission is AUTHENTICATED or permission in GRANTS[role]


@dataclass(frozen=True)
class Identity:
    """A user of the matrix; ``<name>-bot`` is its machine twin (API key, same scope)."""

    name: str
    role: str
    area: dict[str, str]
    department: str | None = None

    @property
    def township(self) -> str:
        """Where the objects it certainly sees are (an empty area: 城关镇)."""
        return self.area.get("township", "城关镇")


IDENTITIES = [
    Identity("admin", "admin", {}),
    Identity("supervisor", "supervisor", COUNTY),
    Identity("op-cg", "operator", CG),
    Identity("op-hx", "operator", HX),
    Identity("dept-cg", "department", CG, "cg-pcs"),
    Identity("investigator", "investigator", COUNTY),
    Identity("viewer", "viewer", COUNTY),
]
GRID_USER = Identity("grid-li", "department", CG_GRID, "grid-03")
BY_NAME = {who.name: who for who in [*IDENTITIES, GRID_USER]}

#: The fixed alerts: label -> (area, departments routed to, assignee).
FIXED_ALERTS: dict[str, tuple[dict[str, str], list[str], str | None]] = {
    "cg": (CG_GRID, ["cg-pcs"], None),  # 城关镇, routed to the police station
    "hx": (HX_VILLAGE, [], None),  # 河西镇, no department
    "grid": (CG_GRID, ["grid-03"], "grid-li"),  # 城关镇, assigned to a grid worker
    "mine": (HX_VILLAGE, [], "dept-cg"),  # 河西镇, assigned to the station's user
}
ALL_ALERTS = set(FIXED_ALERTS)


def camera_of(label: str) -> str:
    return CAMERA_OF[FIXED_ALERTS[label][0]["township"]]


ALL_CAMERAS = {"cg-cam-1", "hx-cam-1"}
#: Prefixes of the cameras the registry's cases add (removed before the scope tests).
MADE_CAMERAS = ("api-cam-", "new-cam-", "imp-cam-")

#: What each identity sees of the fixed alerts and the cameras.
SCOPE: dict[str, tuple[set[str], set[str]]] = {
    "admin": (ALL_ALERTS, ALL_CAMERAS),
    "supervisor": (ALL_ALERTS, ALL_CAMERAS),
    "op-cg": ({"cg", "grid"}, {"cg-cam-1"}),
    "op-hx": ({"hx", "mine"}, {"hx-cam-1"}),
    "dept-cg": ({"cg", "mine"}, {"cg-cam-1"}),  # its department's and its own, anywhere
    "investigator": (ALL_ALERTS, ALL_CAMERAS),
    "viewer": (ALL_ALERTS, ALL_CAMERAS),
    "grid-li": ({"grid"}, {"cg-cam-1"}),
}


# -- the hub -------------------------------------------------------------------------


class FakeFrame:
    """A decoded frame, so a camera snapshot can answer 200 without a running camera."""

    def source_bgr(self) -> np.ndarray:
        return np.zeros((8, 8, 3), np.uint8)


def hub_config(tmp: Path, models_dir: Path) -> dict[str, Any]:
    def camera(cam_id: str, area: dict[str, str]) -> dict[str, Any]:
        return {"id": cam_id, "name": cam_id, "area": area,
                "source": {"url": f"rtsp://10.9.9.9/{cam_id}"}}  # fmt: skip

    return {
        "data_dir": str(tmp / "data"),
        "detector": {"model": str(models_dir / "yolox_nano.onnx")},
        "dispatch": [{"name": "cg-pcs-api", "url": "http://127.0.0.1:9/in", "scope": "routed",
                      "unsigned": True}],
        "areas": [
            {**COUNTY, "code": "510123"},
            {**CG, "code": "510123100"},
            {**HX, "code": "510123101"},
            CG_GRID,
        ],
        "departments": [
            {
                "id": "cg-pcs",
                "name": "城关派出所",
                "kind": "police",
                "level": "township",
                "areas": [CG],
                "targets": ["cg-pcs-api"],
            },
            {
                "id": "grid-03",
                "name": "人民村第三网格",
                "kind": "grid",
                "level": "grid",
                "areas": [CG_GRID],
            },
        ],
        "routing": [
            {"name": "cg-loitering", "types": ["loitering"], "area": CG, "departments": ["cg-pcs"]}
        ],
        "feedback": [{"name": "platform", "secret": FEEDBACK_SECRET},
                     # issue 21: a source limited to 河西镇's alerts and cg-pcs's
                     {"name": "hx-platform", "secret": FEEDBACK_SECRET, "areas": [HX]},
                     {"name": "cg-pcs-app", "secret": FEEDBACK_SECRET,
                      "departments": ["cg-pcs"]}],
        "cameras": [camera("cg-cam-1", CG_GRID), camera("hx-cam-1", HX_VILLAGE)],
    }


class World:
    """The hub, the app, a client and every identity's credentials."""

    def __init__(self, hub: Hub, app: FastAPI) -> None:
        self.hub, self.app = hub, app
        self.client = TestClient(app)
        self.tokens: dict[str, str] = {}
        self.keys: dict[str, str] = {}  # identity name -> its machine twin's API key
        self.fixed: dict[str, str] = {}  # label -> alert id
        self._serial = itertools.count(FRESH_FROM)
        # In the hub's evidence storage: nothing outside it is ever served.
        self.snapshot = write_evidence(
            hub.evidence, "authz/snap.jpg", encode_jpeg(np.zeros((36, 64, 3), np.uint8))
        )

    def login(self, username: str) -> str:
        """A new login token (the session cookie is dropped: only headers authenticate)."""
        r = self.client.post("/api/auth/login", json={"username": username, "password": PW})
        assert r.status_code == 200, r.text
        self.client.cookies.clear()
        return str(r.json()["token"])

    def credentials(self, name: str, via: str = "token") -> dict[str, str]:
        if via == "token":
            return {"Authorization": f"Bearer {self.tokens[name]}"}
        return {"X-API-Key": self.keys[name]}

    def call(
        self, name: str, method: str, url: str, body: Any = None, via: str = "token"
    ) -> Response:
        return self.client.request(method, url, json=body, headers=self.credentials(name, via))

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self._serial)}"

    def add_alert(
        self,
        area: dict[str, str],
        departments: list[str] | None = None,
        assignee: str | None = None,
        *,
        serial: int | None = None,
        resolved: bool = False,
    ) -> str:
        i = next(self._serial) if serial is None else serial
        alert = make_alert(i, area=Area(**area), camera_id=CAMERA_OF[area["township"]],
                           assignee=assignee, department_id=(departments or [None])[0])  # fmt: skip
        with_snapshot(alert, str(self.snapshot.path), self.snapshot.sha256)
        store(self.hub.sessions, alert, departments=departments)
        if resolved:
            self.hub.alerts.transition(alert.id, "resolve", actor="admin")
        return alert.id

    def alert_for(self, who: Identity, *, resolved: bool = False) -> str:
        """A new alert ``who`` sees: in its township, routed to its department."""
        area = HX_VILLAGE if who.township == "河西镇" else CG_GRID
        return self.add_alert(area, [who.department] if who.department else [], resolved=resolved)

    def home_alert(self, who: Identity) -> str:
        return self.fixed["hx" if who.township == "河西镇" else "cg"]

    def home_camera(self, who: Identity) -> str:
        return CAMERA_OF[who.township]

    def api_key_id(self) -> int:
        with self.hub.sessions.begin() as session:
            record = find_api_key(session, create_api_key(session, "target", "to revoke"))
            assert record is not None
            return record.id

    def dead_delivery(self) -> int:
        """A dead letter of a fresh alert (to the configured target), its outbox id."""
        alert_id = self.add_alert(CG, [])
        with self.hub.sessions.begin() as session:
            row = OutboxRecord(alert_id=alert_id, target="cg-pcs-api", state="dead",
                               attempts=3, next_attempt_at=0.0, created_at=0.0,
                               dead_at=1.0, dead_reason="HTTP 400")  # fmt: skip
            session.add(row)
            session.flush()
            return row.id

    def api_camera(self, who: Identity) -> str:
        """A camera added through the API (not the config file's) in ``who``'s township;
        disabled: nothing is read."""
        cam_id = self.unique("api-cam")
        area = HX_VILLAGE if who.township == "河西镇" else CG_GRID
        with self.hub.sessions.begin() as session:
            upsert_camera(session, CameraConfig.model_validate(camera_body(cam_id, area)),
                          origin="api", cipher=self.hub.cipher)  # fmt: skip
        return cam_id

    def api_area(self, who: Identity) -> str:
        """A village added through the API in ``who``'s township; its path."""
        township = HX if who.township == "河西镇" else CG
        area = Area(**township, village=self.unique("村"))
        with self.hub.sessions.begin() as session:
            add_area(session, area, code=None, name="", actor="matrix")
        return "/".join(area.path())

    def stored_rule(self) -> str:
        name = self.unique("rule")
        with self.hub.sessions.begin() as session:
            save_routing_rule(session, name, {"name": name, "area": COUNTY,  # in scope
                                              "departments": ["cg-pcs"]}, "api")  # fmt: skip
        return name


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("authz")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=8,
                                                       parallelism=1))  # fmt: skip
        hub = Hub(parse_config(hub_config(tmp, models_dir), "authz.yaml", tmp))
        mp.setattr(hub.worker, "latest_frame", lambda camera_id: FakeFrame())
        app = create_app(hub.services, hub.sessions, allowed_hosts=["testserver", "127.0.0.1"])
        w = World(hub, app)
        with hub.sessions.begin() as session:
            for who in BY_NAME.values():
                for username, password in ((who.name, PW), (f"{who.name}-bot", None)):
                    create_user(session, username, who.role, password=password,
                                area=Area(**who.area), department_id=who.department)  # fmt: skip
                w.keys[who.name] = create_api_key(session, f"{who.name}-bot", "matrix")
            create_user(session, "target", "viewer", area=Area(**COUNTY))  # users' routes
        for who in BY_NAME.values():
            w.tokens[who.name] = w.login(who.name)
        for serial, (label, (area, departments, assignee)) in enumerate(FIXED_ALERTS.items(), 1):
            w.fixed[label] = w.add_alert(area, departments, assignee, serial=serial)
        yield w
        hub.engine.dispose()


# -- 1. authentication everywhere ------------------------------------------------------

DOCS_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc",
               "/docs/static/{name}"}  # api/docs.py: Swagger UI and ReDoc files (public)
PATH_VALUES = {"camera_id": "cg-cam-1", "alert_id": "00000000-0000-0000-0000-000000000001",
               "username": "viewer", "name": "cg-loitering", "key_id": "1",
               "delivery_id": "1", "path:path": "no-such-asset.js",
               "track_id": "no-such-track", "key": "none:r:0",
               "decision": "confirm", "device_id": "34020000001320000001",
               "occurrence_id": "no-such-alert", "filename": "snapshot.jpg",
               "area_path:path": "示例县/城关镇", "channel_id": "34020000001320000001"}  # fmt: skip


def flat_routes(app: FastAPI) -> list[tuple[BaseRoute, str | None, set[str] | None]]:
    """(route, full path, methods) of every route, routers included. FastAPI 0.165
    keeps included routers whole in ``app.routes``; older versions flatten them."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if contexts is None:
        return [(r, getattr(r, "path", None), getattr(r, "methods", None)) for r in app.routes]
    return [(c.original_route, c.path, c.methods) for c in contexts(app.routes)]


def api_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app answers, docs aside; anything else is refused."""
    out = set()
    for route, path, methods in flat_routes(app):
        if isinstance(route, APIRoute):
            assert path is not None and methods, route
            out |= {(method, path) for method in methods}
        elif path in WEBSOCKET_ROUTES:
            continue  # checked by test_websocket_routes_need_authentication
        else:
            assert path in DOCS_ROUTES, f"route {route!r} is no APIRoute: check its authentication"
    assert len(out) > len(PUBLIC_ROUTES), "no routes found: has FastAPI changed app.routes?"
    return out


#: WebSocket routes: they authenticate inside (a browser cannot send headers to one)
WEBSOCKET_ROUTES = {"/api/cameras/{camera_id}/live.ws"}


def fill(path: str) -> str:
    for name, value in PATH_VALUES.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"add a value for the parameters of {path} to PATH_VALUES"
    return path


#: The public routes and what they answer to a request without valid credentials.
PUBLIC_ANSWERS = {
    ("GET", "/healthz"): {200},
    ("POST", "/api/auth/login"): {401, 422},  # no body: 422
    ("POST", "/api/feedback"): {401},  # no signature
    ("GET", "/metrics"): {200},  # public by default (api.metrics_public; see tests/test_metrics.py)
    # The console's static files (its API calls need a login): the page, or 503 "not
    # built"; an asset, or 404.
    ("GET", "/"): {200, 503},
    ("GET", "/assets/{path:path}"): {200, 404},
}
NO_VALID_CREDENTIALS = [
    {},
    {"Authorization": "Bearer sbt_forged-token"},
    {"Authorization": "Bearer sb_forged-key"},
    {"X-API-Key": "sb_forged-key"},
    {"Authorization": "Basic YWRtaW46eA=="},
]


def test_every_route_but_the_public_ones_needs_authentication(world: World) -> None:
    routes = api_routes(world.app)
    assert set(PUBLIC_ANSWERS) == PUBLIC_ROUTES
    assert PUBLIC_ROUTES <= routes
    anonymous = TestClient(world.app)
    wrong = []
    for method, path in sorted(routes):
        for headers in NO_VALID_CREDENTIALS:
            r = anonymous.request(method, fill(path), headers=headers)
            if r.status_code not in PUBLIC_ANSWERS.get((method, path), {401}):
                wrong.append(f"{method} {path} {headers}: {r.status_code} {r.text[:120]}")
            elif r.status_code == 401 and (method, path) not in PUBLIC_ROUTES:
                assert r.headers["www-authenticate"] == "Bearer", path
    assert not wrong, "\n".join(wrong)
    assert not anonymous.cookies  # nothing was logged in on the way


def test_websocket_routes_need_authentication(world: World) -> None:
    assert {p for _, p, _ in flat_routes(world.app) if p and p.endswith(".ws")} == WEBSOCKET_ROUTES
    anonymous = TestClient(world.app)
    for path in sorted(WEBSOCKET_ROUTES):
        for headers in NO_VALID_CREDENTIALS:
            with pytest.raises(WebSocketDisconnect) as refused:
                with anonymous.websocket_connect(fill(path), headers=headers):
                    pass
            assert refused.value.code == 4401, (path, headers, refused.value)
    # logged in, but the camera is outside the user's township: as if it did not exist
    with pytest.raises(WebSocketDisconnect) as hidden:
        with anonymous.websocket_connect(f"/api/cameras/{CAMERA_OF['城关镇']}/live.ws",
                                         headers=world.credentials("op-hx")):  # fmt: skip
            pass
    assert hidden.value.code == 4404


# -- 2. the role matrix ------------------------------------------------------------------

Build = Callable[[World, Identity], tuple[str, Any]]


@dataclass(frozen=True)
class Case:
    """One route (and, for alert actions, one kind of action): the permission it
    needs, the status it answers when granted, and the request (url, JSON body)."""

    method: str
    path: str
    permission: str | None
    ok: int
    build: Build
    variant: str = ""

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}" + (f" [{self.variant}]" if self.variant else "")


def rule_body(name: str) -> dict[str, Any]:
    return {"name": name, "types": ["intrusion"], "area": HX, "departments": ["cg-pcs"],
            "targets": ["cg-pcs-api"]}  # fmt: skip


def put_rule(w: World, who: Identity) -> tuple[str, Any]:
    name = w.unique("matrix-rule")
    return f"/api/routing/{name}", rule_body(name)


def new_user(w: World, who: Identity) -> tuple[str, Any]:
    return "/api/users", {"username": w.unique("made"), "role": "viewer", "area": COUNTY}


def with_clip(w: World, who: Identity) -> tuple[str, Any]:
    """An alert ``who`` sees, with a clip attached (any evidence file will do here)."""
    alert_id = w.alert_for(who)
    snap = w.snapshot
    w.hub.alerts.attach_clip(ClipMessage(alert_id, str(snap.path), snap.sha256, 1.0, 2.0))
    return f"/api/alerts/{alert_id}/clip.mp4", None


def track_for(w: World, who: Identity) -> str:
    """A track ``who`` sees (in its township), its thumbnail and clip any evidence file."""
    area = HX_VILLAGE if who.township == "河西镇" else CG_GRID
    track_id = w.unique("track")
    with w.hub.sessions.begin() as session:
        add_track(session, TrackRecord(
            id=track_id, camera_id=CAMERA_OF[area["township"]], camera_name="cam", **area,
            track_id=1, object_class="person", colour="red", first_seen=1.0, last_seen=2.0,
            frames=10, score=0.8, thumbnail_path=str(w.snapshot.path),
            clip_path=str(w.snapshot.path), clip_sha256=w.snapshot.sha256, size_bytes=0,
            created_at=2.0,
        ))  # fmt: skip
    return track_id


def camera_body(cam_id: str, area: dict[str, str]) -> dict[str, Any]:
    """A camera as the API takes it; disabled, so that nothing is read (10.9.9.9 is never
    connected to)."""
    return {"id": cam_id, "name": cam_id, "area": area, "enabled": False,
            "source": {"url": f"rtsp://10.9.9.9/{cam_id}", "username": "u",
                       "password": "cam-secret-1"}}  # fmt: skip


def new_camera(w: World, who: Identity) -> tuple[str, Any]:
    area = HX_VILLAGE if who.township == "河西镇" else CG_GRID
    return "/api/cameras", camera_body(w.unique("new-cam"), area)


def camera_file(w: World, who: Identity) -> tuple[str, Any]:
    """An import of one camera: JSON is YAML."""
    area = HX_VILLAGE if who.township == "河西镇" else CG_GRID
    return "/api/cameras/import?filename=list.yaml", [camera_body(w.unique("imp-cam"), area)]


def new_village(w: World, who: Identity) -> tuple[str, Any]:
    township = HX if who.township == "河西镇" else CG
    return "/api/areas", {**township, "village": w.unique("新村")}


def export_body(w: World, who: Identity) -> tuple[str, Any]:
    return "/api/exports", {"alert_ids": [w.alert_for(who)], "case_number": "案-2026-001",
                            "reason": "matrix"}  # fmt: skip


# fmt: off
CASES = [
    # method, path, permission, status when granted, request
    Case("POST", "/api/auth/logout", AUTHENTICATED, 204, lambda w, who: ("/api/auth/logout", None)),
    Case("GET", "/api/auth/me", AUTHENTICATED, 200, lambda w, who: ("/api/auth/me", None)),
    Case("GET", "/api/console/config", AUTHENTICATED, 200,
         lambda w, who: ("/api/console/config", None)),
    Case("GET", "/api/users", "users:manage", 200, lambda w, who: ("/api/users", None)),
    Case("POST", "/api/users", "users:manage", 201, new_user),
    Case("PATCH", "/api/users/{username}", "users:manage", 200,
         lambda w, who: ("/api/users/target", {"display_name": f"by {who.name}"})),
    Case("POST", "/api/users/{username}/api-keys", "users:manage", 201,
         lambda w, who: ("/api/users/target/api-keys", {"name": "matrix"})),
    Case("GET", "/api/users/{username}/api-keys", "users:manage", 200,
         lambda w, who: ("/api/users/target/api-keys", None)),
    Case("DELETE", "/api/api-keys/{key_id}", "users:manage", 204,
         lambda w, who: (f"/api/api-keys/{w.api_key_id()}", None)),
    Case("GET", "/api/audit", "audit:read", 200, lambda w, who: ("/api/audit", None)),
    Case("GET", "/api/cameras", "cameras:read", 200, lambda w, who: ("/api/cameras", None)),
    Case("GET", "/api/cameras/areas", "cameras:read", 200,
         lambda w, who: ("/api/cameras/areas", None)),
    Case("GET", "/api/cameras/{camera_id}", "cameras:read", 200,
         lambda w, who: (f"/api/cameras/{w.home_camera(who)}", None)),
    Case("GET", "/api/cameras/{camera_id}/snapshot.jpg", "cameras:read", 200,
         lambda w, who: (f"/api/cameras/{w.home_camera(who)}/snapshot.jpg", None)),
    # No camera runs in this hub: granted, the live routes say so (503).
    Case("GET", "/api/cameras/{camera_id}/live.flv", "cameras:read", 503,
         lambda w, who: (f"/api/cameras/{w.home_camera(who)}/live.flv", None)),
    Case("GET", "/api/cameras/{camera_id}/overlay", "cameras:read", 503,
         lambda w, who: (f"/api/cameras/{w.home_camera(who)}/overlay", None)),
    Case("GET", "/api/cameras/{camera_id}/analytics", "cameras:read", 200,
         lambda w, who: (f"/api/cameras/{w.home_camera(who)}/analytics", None)),
    Case("PUT", "/api/cameras/{camera_id}/analytics", "cameras:configure", 200,
         lambda w, who: (f"/api/cameras/{w.home_camera(who)}/analytics",
                         {"zones": [{"name": "gate", "points": [[0, 0], [1, 0], [1, 1]]}],
                          "rules": [{"name": "gate-in", "type": "intrusion", "zone": "gate"}]})),
    Case("GET", "/api/events", "alerts:read", 200,
         lambda w, who: ("/api/events?duration_s=0.2", None)),
    Case("GET", "/api/alerts", "alerts:read", 200, lambda w, who: ("/api/alerts", None)),
    Case("GET", "/api/alerts/{alert_id}", "alerts:read", 200,
         lambda w, who: (f"/api/alerts/{w.home_alert(who)}", None)),
    Case("GET", "/api/alerts/{alert_id}/history", "alerts:read", 200,
         lambda w, who: (f"/api/alerts/{w.home_alert(who)}/history", None)),
    Case("GET", "/api/alerts/{alert_id}/snapshot.jpg", "evidence:read", 200,
         lambda w, who: (f"/api/alerts/{w.home_alert(who)}/snapshot.jpg", None)),
    Case("GET", "/api/alerts/{alert_id}/clip.mp4", "evidence:read", 200, with_clip),
    Case("GET", "/api/alerts/{alert_id}/occurrences/{occurrence_id}/{filename}", "evidence:read",
         200, lambda w, who: (f"/api/alerts/{w.home_alert(who)}/occurrences/"
                              f"{w.home_alert(who)}/snapshot.jpg", None)),
    Case("POST", "/api/exports", "evidence:export", 200, export_body),
    Case("POST", "/api/alerts/{alert_id}/actions", "alerts:handle", 200,
         lambda w, who: (f"/api/alerts/{w.alert_for(who)}/actions", {"action": "acknowledge"}),
         variant="acknowledge"),
    Case("POST", "/api/alerts/{alert_id}/actions", "alerts:handle", 200,
         lambda w, who: (f"/api/alerts/{w.alert_for(who)}/actions",
                         {"action": "false_alarm", "reason": "a shadow"}),
         variant="false_alarm"),
    Case("POST", "/api/alerts/{alert_id}/actions", "alerts:reopen", 200,
         lambda w, who: (f"/api/alerts/{w.alert_for(who, resolved=True)}/actions",
                         {"action": "reopen"}),
         variant="reopen"),
    Case("GET", "/api/areas", "routing:read", 200, lambda w, who: ("/api/areas", None)),
    Case("GET", "/api/departments", "routing:read", 200,
         lambda w, who: ("/api/departments", None)),
    Case("GET", "/api/routing", "routing:read", 200, lambda w, who: ("/api/routing", None)),
    Case("PUT", "/api/routing/{name}", "routing:write", 200, put_rule),
    Case("DELETE", "/api/routing/{name}", "routing:write", 204,
         lambda w, who: (f"/api/routing/{w.stored_rule()}", None)),
    Case("GET", "/api/deliveries", "dispatch:manage", 200,
         lambda w, who: ("/api/deliveries?state=dead", None)),
    Case("POST", "/api/deliveries/{delivery_id}/retry", "dispatch:manage", 200,
         lambda w, who: (f"/api/deliveries/{w.dead_delivery()}/retry", None)),
    Case("POST", "/api/deliveries/{delivery_id}/discard", "dispatch:manage", 200,
         lambda w, who: (f"/api/deliveries/{w.dead_delivery()}/discard", None)),
    Case("POST", "/api/exports", "evidence:export", 200,
         lambda w, who: ("/api/exports", {"alert_ids": [w.alert_for(who)],
                                          "case_number": "案-2026-001", "reason": "调查"})),
    Case("GET", "/api/tracks", "evidence:read", 200,
         lambda w, who: ("/api/tracks?object_class=person&colour=red", None)),
    Case("GET", "/api/tracks/{track_id}/thumbnail.jpg", "evidence:read", 200,
         lambda w, who: (f"/api/tracks/{track_for(w, who)}/thumbnail.jpg", None)),
    Case("GET", "/api/tracks/{track_id}/clip.mp4", "evidence:read", 200,
         lambda w, who: (f"/api/tracks/{track_for(w, who)}/clip.mp4", None)),
    Case("GET", "/api/stats/alerts", "alerts:read", 200,
         lambda w, who: ("/api/stats/alerts?start=0&end=2000000", None)),
    Case("GET", "/api/stats/alerts.xlsx", "alerts:read", 200,
         lambda w, who: ("/api/stats/alerts.xlsx?start=0&end=2000000", None)),
    Case("GET", "/api/stats/cameras", "cameras:read", 200,
         lambda w, who: ("/api/stats/cameras", None)),
    Case("GET", "/api/patrol/summary", "cameras:read", 200,
         lambda w, who: ("/api/patrol/summary", None)),
    Case("GET", "/api/patrol/abnormal", "cameras:read", 200,
         lambda w, who: ("/api/patrol/abnormal", None)),
    Case("GET", "/api/patrol/abnormal.xlsx", "cameras:read", 200,
         lambda w, who: ("/api/patrol/abnormal.xlsx", None)),
    # Recording (issue 24). Nothing is recorded in this hub: granted, a range is a 404
    # (playback and export themselves: tests/integration/test_recording_api.py).
    Case("GET", "/api/recordings/{camera_id}/segments", "evidence:read", 200,
         lambda w, who: (f"/api/recordings/{w.home_camera(who)}/segments?start=0&end=9", None)),
    Case("GET", "/api/recordings/{camera_id}/timeline", "evidence:read", 200,
         lambda w, who: (f"/api/recordings/{w.home_camera(who)}/timeline?start=0", None)),
    Case("GET", "/api/recordings/{camera_id}/video.mp4", "evidence:read", 404,
         lambda w, who: (f"/api/recordings/{w.home_camera(who)}/video.mp4?start=0&end=9", None)),
    Case("POST", "/api/recordings/{camera_id}/export", "evidence:export", 404,
         lambda w, who: (f"/api/recordings/{w.home_camera(who)}/export",
                         {"start": 0, "end": 9, "case_number": "案-1", "reason": "matrix"})),
    # Linkage (issue 27). No ONVIF camera in this hub: granted, PTZ says the device
    # cannot be reached (502); no speaker: 喊话 says so (409).
    Case("GET", "/api/cameras/{camera_id}/ptz/presets", "cameras:read", 502,
         lambda w, who: (f"/api/cameras/{w.home_camera(who)}/ptz/presets", None)),
    Case("POST", "/api/cameras/{camera_id}/ptz/move", "alerts:handle", 502,
         lambda w, who: (f"/api/cameras/{w.home_camera(who)}/ptz/move", {"pan": 0.5})),
    Case("POST", "/api/cameras/{camera_id}/ptz/stop", "alerts:handle", 502,
         lambda w, who: (f"/api/cameras/{w.home_camera(who)}/ptz/stop", None)),
    Case("POST", "/api/cameras/{camera_id}/ptz/home", "alerts:handle", 502,
         lambda w, who: (f"/api/cameras/{w.home_camera(who)}/ptz/home", None)),
    Case("POST", "/api/cameras/{camera_id}/ptz/goto", "alerts:handle", 502,
         lambda w, who: (f"/api/cameras/{w.home_camera(who)}/ptz/goto", {"preset": "1"})),
    Case("POST", "/api/cameras/{camera_id}/ptz/presets", "cameras:configure", 502,
         lambda w, who: (f"/api/cameras/{w.home_camera(who)}/ptz/presets", {"name": "坝"})),
    Case("POST", "/api/cameras/{camera_id}/ptz/release", "alerts:handle", 200,
         lambda w, who: (f"/api/cameras/{w.home_camera(who)}/ptz/release", None)),
    Case("GET", "/api/linkage/rules", "routing:read", 200,
         lambda w, who: ("/api/linkage/rules", None)),
    Case("GET", "/api/linkage/pending", "alerts:read", 200,
         lambda w, who: ("/api/linkage/pending", None)),
    Case("POST", "/api/linkage/pending/{key}/{decision}", "alerts:handle", 404,
         lambda w, who: ("/api/linkage/pending/none:r:0/confirm", None)),
    Case("GET", "/api/linkage/popups", "alerts:read", 200,
         lambda w, who: ("/api/linkage/popups", None)),
    Case("GET", "/api/linkage/speakers", "alerts:read", 200,
         lambda w, who: ("/api/linkage/speakers", None)),
    Case("GET", "/api/linkage/warnings", "alerts:read", 200,
         lambda w, who: ("/api/linkage/warnings", None)),
    Case("POST", "/api/linkage/speak", "alerts:handle", 409,
         lambda w, who: ("/api/linkage/speak", {"speaker": "s", "warning": "reservoir"})),
    # The camera registry and the area tree from the console (issue 23). The probe asks a
    # closed port on 127.0.0.1: granted, it says the camera cannot be reached (502).
    Case("POST", "/api/cameras", "cameras:manage", 201, new_camera),
    Case("GET", "/api/cameras/{camera_id}/registry", "cameras:manage", 200,
         lambda w, who: (f"/api/cameras/{w.home_camera(who)}/registry", None)),
    Case("PATCH", "/api/cameras/{camera_id}", "cameras:manage", 200,
         lambda w, who: (f"/api/cameras/{w.api_camera(who)}", {"name": "改名"})),
    Case("DELETE", "/api/cameras/{camera_id}", "cameras:manage", 204,
         lambda w, who: (f"/api/cameras/{w.api_camera(who)}", None)),
    Case("POST", "/api/cameras/import", "cameras:manage", 200, camera_file),
    Case("POST", "/api/cameras/probe", "cameras:manage", 502,
         lambda w, who: ("/api/cameras/probe", {"host": "127.0.0.1", "port": 9,
                                                "timeout_s": 3})),
    Case("POST", "/api/areas", "areas:manage", 201, new_village),
    Case("PATCH", "/api/areas/{area_path:path}", "areas:manage", 200,
         lambda w, who: (f"/api/areas/{w.api_area(who)}", {"name": "新名"})),
    Case("DELETE", "/api/areas/{area_path:path}", "areas:manage", 204,
         lambda w, who: (f"/api/areas/{w.api_area(who)}", None)),
    # GB/T 28181 devices (sip.enabled is off in this hub: granted, the routes say so, 404).
    Case("GET", "/api/gb28181/devices", "cameras:configure", 404,
         lambda w, who: ("/api/gb28181/devices", None)),
    Case("GET", "/api/gb28181/devices/{device_id}/channels", "cameras:configure", 404,
         lambda w, who: ("/api/gb28181/devices/34020000001320000001/channels", None)),
    Case("POST", "/api/gb28181/devices/{device_id}/catalog", "cameras:configure", 404,
         lambda w, who: ("/api/gb28181/devices/34020000001320000001/catalog", None)),
    Case("DELETE", "/api/gb28181/devices/{device_id}", "cameras:configure", 404,
         lambda w, who: ("/api/gb28181/devices/34020000001320000001", None)),
    Case("PUT", "/api/gb28181/channels/{channel_id}/enabled", "cameras:configure", 404,
         lambda w, who: ("/api/gb28181/channels/34020000001320000001/enabled",
                         {"enabled": True})),
    Case("GET", "/api/gb28181/live", "cameras:configure", 404,
         lambda w, who: ("/api/gb28181/live", None)),
    Case("GET", "/api/gb28181/channels/{channel_id}/records", "evidence:read", 404,
         lambda w, who: ("/api/gb28181/channels/34020000001320000001/records?start=1&end=2",
                         None)),
    Case("POST", "/api/gb28181/channels/{channel_id}/playback", "evidence:read", 404,
         lambda w, who: ("/api/gb28181/channels/34020000001320000001/playback",
                         {"start": 1, "end": 2})),
    Case("POST", "/api/gb28181/channels/{channel_id}/playback/export", "evidence:export", 404,
         lambda w, who: ("/api/gb28181/channels/34020000001320000001/playback/export",
                         {"start": 1, "end": 2, "case_number": "A1", "reason": "r"})),
]
# fmt: on


def test_the_grid_is_the_code() -> None:
    """The written-out grid and ``ROLE_PERMISSIONS`` agree: a change is deliberate."""
    assert set(GRANTS) == set(ROLES)
    assert all(p in PERMISSIONS for perms in GRANTS.values() for p in perms)
    assert {role: GRANTS[role] for role in ROLES} == dict(ROLE_PERMISSIONS)


def test_the_cases_cover_every_route(world: World) -> None:
    covered = {(c.method, c.path) for c in CASES}
    assert covered == api_routes(world.app) - PUBLIC_ROUTES
    assert {c.permission for c in CASES} - {AUTHENTICATED} <= set(PERMISSIONS)
    assert {who.role for who in IDENTITIES} == set(ROLES)


@pytest.mark.parametrize("via", ["token", "api_key"])
@pytest.mark.parametrize("who", IDENTITIES, ids=lambda who: who.name)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_role_matrix(world: World, case: Case, who: Identity, via: str) -> None:
    expected = case.ok if allowed(who.role, case.permission) else 403
    url, body = case.build(world, who)
    headers = world.credentials(who.name, via)
    if case.path == "/api/auth/logout" and via == "token":
        headers = {"Authorization": f"Bearer {world.login(who.name)}"}  # keep the shared one
    r = world.client.request(case.method, url, json=body, headers=headers)
    assert r.status_code == expected, (
        f"{who.name} ({who.role}) via {via}: {case.method} {url} -> {r.status_code} {r.text[:300]}"
    )
    if expected == 403:
        assert "required" in r.json()["detail"]


# -- 3. scope --------------------------------------------------------------------------


def drop_made_cameras(w: World) -> None:
    """Remove the cameras the registry's cases added: the scope tests count cameras."""
    with w.hub.sessions.begin() as session:
        for record in list_cameras(session):
            if record.id.startswith(MADE_CAMERAS):
                session.delete(record)


@pytest.mark.parametrize("name", list(SCOPE))
def test_scope_filters_lists_and_hides_details(world: World, name: str) -> None:
    drop_made_cameras(world)
    who = BY_NAME[name]
    alerts_seen, cameras_seen = SCOPE[name]
    page = world.call(name, "GET", f"/api/alerts?until={FRESH_FROM}&limit=500").json()
    assert {a["id"] for a in page["items"]} == {world.fixed[label] for label in alerts_seen}
    assert page["total"] == len(alerts_seen)
    for cam in sorted(ALL_CAMERAS):  # a filter narrows the scope, never widens it
        filtered = world.call(name, "GET", f"/api/alerts?camera_id={cam}&until={FRESH_FROM}")
        expected = {world.fixed[label] for label in alerts_seen if camera_of(label) == cam}
        assert {a["id"] for a in filtered.json()["items"]} == expected, cam
        assert filtered.json()["total"] == len(expected)
    assert {c["id"] for c in world.call(name, "GET", "/api/cameras").json()} == cameras_seen

    evidence = "evidence:read" in GRANTS[who.role]
    for label, alert_id in world.fixed.items():
        seen = label in alerts_seen
        base = f"/api/alerts/{alert_id}"
        assert world.call(name, "GET", base).status_code == (200 if seen else 404), label
        assert world.call(name, "GET", f"{base}/history").status_code == (200 if seen else 404)
        snap = world.call(name, "GET", f"{base}/snapshot.jpg").status_code
        assert snap == (403 if not evidence else 200 if seen else 404), label
        if not seen:
            act = world.call(name, "POST", f"{base}/actions", {"action": "acknowledge"})
            assert act.status_code == 404, label
    for cam in sorted(ALL_CAMERAS):
        status = 200 if cam in cameras_seen else 404
        assert world.call(name, "GET", f"/api/cameras/{cam}").status_code == status, cam
        assert world.call(name, "GET", f"/api/cameras/{cam}/snapshot.jpg").status_code == status
        assert world.call(name, "GET", f"/api/cameras/{cam}/analytics").status_code == status
        live = world.call(name, "GET", f"/api/cameras/{cam}/live.flv").status_code
        assert live == (503 if cam in cameras_seen else 404), cam


def status_of(world: World, alert_id: str) -> str:
    return str(world.call("admin", "GET", f"/api/alerts/{alert_id}").json()["status"])


def test_department_user_acts_on_its_department_and_its_own_alerts(world: World) -> None:
    routed_away = world.add_alert(HX_VILLAGE, ["cg-pcs"])  # outside its account's area
    assigned = world.add_alert(HX_VILLAGE, [], "dept-cg")
    unrouted_home = world.add_alert(CG_GRID)  # in its own township, but not its department's
    for_grid = world.add_alert(CG_GRID, ["grid-03"])
    for alert_id in (routed_away, assigned):
        r = world.call("dept-cg", "POST", f"/api/alerts/{alert_id}/actions",
                       {"action": "acknowledge"})  # fmt: skip
        assert r.status_code == 200, r.text
    for alert_id in (unrouted_home, for_grid):
        assert world.call("dept-cg", "GET", f"/api/alerts/{alert_id}").status_code == 404
        r = world.call("dept-cg", "POST", f"/api/alerts/{alert_id}/actions",
                       {"action": "acknowledge"})  # fmt: skip
        assert r.status_code == 404 and status_of(world, alert_id) == "new"
    # Dispatching makes it theirs: the station for one, the grid worker for the other.
    for alert_id, department, assignee in ((unrouted_home, "cg-pcs", None),
                                           (for_grid, "grid-03", "grid-li")):  # fmt: skip
        body = {"action": "dispatch", "department_id": department, "assignee": assignee}
        r = world.call("op-cg", "POST", f"/api/alerts/{alert_id}/actions", body)
        assert r.status_code == 200, r.text
    r = world.call("dept-cg", "POST", f"/api/alerts/{unrouted_home}/actions", {"action": "start"})
    assert r.status_code == 200, r.text
    r = world.call("grid-li", "POST", f"/api/alerts/{for_grid}/actions", {"action": "start"})
    assert r.status_code == 200, r.text
    assert world.call("dept-cg", "GET", f"/api/alerts/{for_grid}").status_code == 404


def test_refused_actions_change_nothing(world: World) -> None:
    alert_id = world.add_alert(CG_GRID, ["cg-pcs"])
    for name, expected in (("viewer", 403), ("investigator", 403), ("op-hx", 404)):
        for body in ({"action": "acknowledge"}, {"action": "resolve"},
                     {"action": "dispatch", "department_id": "cg-pcs"}):  # fmt: skip
            r = world.call(name, "POST", f"/api/alerts/{alert_id}/actions", body)
            assert r.status_code == expected, (name, body, r.text)
    history = world.call("admin", "GET", f"/api/alerts/{alert_id}/history").json()
    assert [h["action"] for h in history] == ["created"]
    assert status_of(world, alert_id) == "new"


def test_refused_dispatch_does_not_tell_which_departments_exist(world: World) -> None:
    alert_id = world.add_alert(CG_GRID, ["cg-pcs"])
    for department in ("cg-pcs", "no-such-department"):
        body = {"action": "dispatch", "department_id": department}
        r = world.call("viewer", "POST", f"/api/alerts/{alert_id}/actions", body)
        assert r.status_code == 403, (department, r.text)
    # A caller who may dispatch is told the department does not exist.
    r = world.call("admin", "POST", f"/api/alerts/{alert_id}/actions",
                   {"action": "dispatch", "department_id": "no-such-department"})  # fmt: skip
    assert r.status_code == 409 and "unknown department" in r.json()["detail"]


# -- 4. Host header and API keys ----------------------------------------------------------


def test_foreign_host_is_refused_even_with_valid_credentials(world: World) -> None:
    for headers in (world.credentials("admin"), world.credentials("admin", "api_key")):
        assert world.client.get("/api/auth/me", headers=headers).status_code == 200
        for host in ("evil.example", "evil.example:80", "testserver.evil.example"):
            for url in ("/api/auth/me", "/api/alerts", "/healthz"):
                r = world.client.get(url, headers={**headers, "Host": host})
                assert r.status_code == 400, (host, url)
        ok = world.client.get("/api/auth/me", headers={**headers, "Host": "127.0.0.1:8080"})
        assert ok.status_code == 200
    r = world.client.post("/api/auth/login", json={"username": "admin", "password": PW},
                          headers={"Host": "evil.example"})  # fmt: skip
    assert r.status_code == 400 and "set-cookie" not in r.headers


def test_machine_user_authenticates_by_api_key_only(world: World) -> None:
    key = world.keys["op-cg"]
    for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
        me = world.client.get("/api/auth/me", headers=headers).json()
        assert (me["username"], me["role"], me["via"]) == ("op-cg-bot", "operator", "api_key")
        assert me["area"]["township"] == "城关镇"
    # No password: it cannot log in, whatever it tries.
    r = world.client.post("/api/auth/login", json={"username": "op-cg-bot", "password": PW})
    assert r.status_code == 401
    # Its key logs nothing out.
    assert world.client.post("/api/auth/logout", headers={"X-API-Key": key}).status_code == 204
    assert world.client.get("/api/auth/me", headers={"X-API-Key": key}).status_code == 200


# -- 5. scope as one rule, resource by resource (issue 21) -------------------------------

#: Accounts whose scope the rule derives: a department account without an area sees the
#: area its department serves; one whose department is gone sees nothing; a supervisor of
#: one township acts on that township only.
EXTRA = [
    Identity("dept-noarea", "department", {}, "cg-pcs"),
    Identity("dept-gone", "department", {}, "no-such-dept"),
    Identity("sup-cg", "supervisor", CG),
]
#: The cameras each extra identity sees.
EXTRA_CAMERAS = {"dept-noarea": {"cg-cam-1"}, "dept-gone": set(), "sup-cg": {"cg-cam-1"}}


@pytest.fixture(scope="module")
def extra(world: World) -> World:
    with world.hub.sessions.begin() as session:
        for who in EXTRA:
            create_user(session, who.name, who.role, password=PW, area=Area(**who.area),
                        department_id=who.department)  # fmt: skip
    for who in EXTRA:
        world.tokens[who.name] = world.login(who.name)
    return world


def camera_resources(w: World, name: str, cam: str) -> dict[str, int]:
    """Every camera-placed resource of ``cam``, by what ``name`` is answered."""
    out = {}
    for what in ("", "/snapshot.jpg", "/analytics", "/overlay", "/live.flv"):
        out[f"camera{what}"] = w.call(name, "GET", f"/api/cameras/{cam}{what}").status_code
    return out


@pytest.mark.parametrize("name", [who.name for who in EXTRA])
def test_every_camera_resource_follows_the_scope_rule(extra: World, name: str) -> None:
    w = extra
    drop_made_cameras(w)
    seen = EXTRA_CAMERAS[name]
    assert {c["id"] for c in w.call(name, "GET", "/api/cameras").json()} == seen
    paged = w.call(name, "GET", "/api/cameras?limit=100")
    assert {c["id"] for c in paged.json()} == seen and paged.headers["x-total-count"] == str(
        len(seen))  # fmt: skip
    tree = w.call(name, "GET", "/api/cameras/areas").json()
    assert sum(node["direct"] for node in tree) == len(seen)
    for cam in sorted(ALL_CAMERAS):
        answers = camera_resources(w, name, cam)
        if cam in seen:
            assert answers["camera"] == 200 and answers["camera/live.flv"] == 503, answers
        else:
            assert set(answers.values()) == {404}, (cam, answers)
    # Tracks of every township: only those of the cameras in scope are found.
    tracks = {township: track_for(w, Identity("t", "viewer", area))
              for township, area in (("城关镇", CG), ("河西镇", HX))}  # fmt: skip
    found = {t["camera_id"] for t in w.call(name, "GET", "/api/tracks?limit=500").json()["items"]}
    assert found <= seen and (not seen or found), found
    for township, track_id in tracks.items():
        thumb = w.call(name, "GET", f"/api/tracks/{track_id}/thumbnail.jpg").status_code
        assert thumb == (200 if CAMERA_OF[township] in seen else 404), township
    stats = w.call(name, "GET", "/api/stats/cameras").json()
    assert stats["total"] == len(seen), stats


def test_an_area_supervisor_changes_only_its_own_routing_rules(extra: World) -> None:
    w = extra
    for area, expected in ((HX, 403), ({}, 403), (CG, 204)):
        name = w.unique("rule")
        with w.hub.sessions.begin() as session:
            save_routing_rule(session, name, {"name": name, "area": area,
                                              "departments": ["cg-pcs"]}, "api")  # fmt: skip
        r = w.call("sup-cg", "DELETE", f"/api/routing/{name}")
        assert r.status_code == expected, (area, r.text)
        still = {rule["name"] for rule in w.call("admin", "GET", "/api/routing").json()}
        assert (name in still) == (expected == 403)
    # Nor can it write a rule for another township or move one of its own there.
    name = w.unique("rule")
    body = {"name": name, "area": HX, "departments": ["cg-pcs"]}
    assert w.call("sup-cg", "PUT", f"/api/routing/{name}", body).status_code == 403
    body["area"] = CG
    assert w.call("sup-cg", "PUT", f"/api/routing/{name}", body).status_code == 200
    body["area"] = HX
    assert w.call("sup-cg", "PUT", f"/api/routing/{name}", body).status_code == 403


def test_an_area_supervisor_sees_and_acts_on_its_own_deliveries_only(extra: World) -> None:
    w = extra

    def dead(area: dict[str, str]) -> int:
        alert_id = w.add_alert(area, [])
        with w.hub.sessions.begin() as session:
            row = OutboxRecord(alert_id=alert_id, target="cg-pcs-api", state="dead",
                               attempts=3, next_attempt_at=0.0, created_at=0.0,
                               dead_at=1.0, dead_reason="HTTP 400")  # fmt: skip
            session.add(row)
            session.flush()
            return row.id

    mine, theirs = dead(CG_GRID), dead(HX_VILLAGE)
    listed = {d["id"] for d in w.call("sup-cg", "GET", "/api/deliveries?limit=500").json()["items"]}
    assert mine in listed and theirs not in listed
    everything = {d["id"] for d in w.call("admin", "GET", "/api/deliveries?limit=500").json()[
        "items"]}  # fmt: skip
    assert {mine, theirs} <= everything
    for action in ("retry", "discard"):
        r = w.call("sup-cg", "POST", f"/api/deliveries/{theirs}/{action}")
        assert r.status_code == 404, (action, r.text)
    assert w.call("sup-cg", "POST", f"/api/deliveries/{mine}/discard").status_code == 200


def test_a_feedback_source_moves_only_the_alerts_it_serves(extra: World) -> None:
    w = extra
    cg_routed, cg_plain, hx = w.add_alert(CG_GRID, ["cg-pcs"]), w.add_alert(CG_GRID, []), \
        w.add_alert(HX_VILLAGE, [])  # fmt: skip

    def send(source: str, alert_id: str) -> int:
        body = json.dumps({"message_id": w.unique("m"), "alert_id": alert_id,
                           "status": "accepted"}).encode()  # fmt: skip
        r = w.client.post("/api/feedback", content=body, headers={
            "X-Shaobing-Source": source, "X-Shaobing-Signature": sign(body, FEEDBACK_SECRET),
            "Content-Type": "application/json"})  # fmt: skip
        return r.status_code

    assert send("hx-platform", cg_routed) == 404 and send("hx-platform", cg_plain) == 404
    assert send("cg-pcs-app", hx) == 404 and send("cg-pcs-app", cg_plain) == 404
    for alert_id in (cg_routed, cg_plain, hx):
        assert status_of(w, alert_id) == "new"
    assert send("hx-platform", hx) == 200 and send("cg-pcs-app", cg_routed) == 200
    assert send("platform", cg_plain) == 200  # no areas, no departments: every alert


def test_an_area_supervisor_manages_only_its_own_cameras_and_areas(extra: World) -> None:
    """The registry and the area tree from the console (issue 23): a township's supervisor
    adds, edits, moves, imports and deletes the cameras of its township only, never shown a
    password, and edits its township's part of the area tree only."""
    w = extra
    sup = "sup-cg"
    hx_made, cg_made = w.api_camera(BY_NAME["op-hx"]), w.api_camera(BY_NAME["op-cg"])
    secret = "cam-secret-1"
    # Add: in its township, not in another's.
    assert w.call(sup, "POST", "/api/cameras", camera_body(w.unique("sc"), HX)).status_code == 403
    made = w.unique("sc")
    r = w.call(sup, "POST", "/api/cameras", camera_body(made, CG))
    assert r.status_code == 201 and secret not in r.text and r.json()["origin"] == "api"
    # Another township's cameras are not there at all; the config file's are the file's.
    for cam in (hx_made, "hx-cam-1"):
        assert w.call(sup, "GET", f"/api/cameras/{cam}/registry").status_code == 404
        assert w.call(sup, "PATCH", f"/api/cameras/{cam}", {"name": "x"}).status_code == 404
        assert w.call(sup, "DELETE", f"/api/cameras/{cam}").status_code == 404
    r = w.call(sup, "PATCH", "/api/cameras/cg-cam-1", {"enabled": False})
    assert r.status_code == 409 and "config file" in r.json()["detail"]
    # Move: within its township, never out of it.
    r = w.call(sup, "PATCH", f"/api/cameras/{cg_made}", {"area": HX})
    assert r.status_code == 403
    r = w.call(sup, "PATCH", f"/api/cameras/{cg_made}", {"area": {**CG, "village": "新村"}})
    assert r.status_code == 200 and r.json()["area"]["village"] == "新村"
    shown = w.call(sup, "GET", f"/api/cameras/{cg_made}/registry").json()
    assert shown["source"]["has_password"] and secret not in json.dumps(shown)
    # Import: one row outside its township and nothing is stored.
    rows = [camera_body(w.unique("imp-cam"), CG), camera_body(w.unique("imp-cam"), HX)]
    r = w.call(sup, "POST", "/api/cameras/import?filename=list.yaml", rows)
    assert r.status_code == 422 and f"id={rows[1]['id']}" in r.json()["detail"]
    assert w.call("admin", "GET", f"/api/cameras/{rows[0]['id']}").status_code == 404
    # Its own: deleted.
    assert w.call(sup, "DELETE", f"/api/cameras/{made}").status_code == 204
    assert w.call("admin", "GET", f"/api/cameras/{made}").status_code == 404
    # The area tree: its township's villages, not another's; the file's nodes stay.
    village = {**CG, "village": w.unique("村")}
    assert w.call(sup, "POST", "/api/areas", {**HX, "village": "外村"}).status_code == 403
    assert w.call(sup, "POST", "/api/areas", village).status_code == 201
    assert w.call(sup, "PATCH", f"/api/areas/{w.api_area(BY_NAME['op-hx'])}",
                  {"name": "x"}).status_code == 404  # fmt: skip
    assert w.call(sup, "DELETE", "/api/areas/示例县/城关镇").status_code == 409
    path = "/".join(village.values())
    assert w.call(sup, "DELETE", f"/api/areas/{path}").status_code == 204
    drop_made_cameras(w)
