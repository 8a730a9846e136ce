"""The auth and users API over real HTTP (TestClient) and a real SQLite database.

The app is assembled here from the routers, plus one protected dummy route, the
way the integrator wires them: ``app.state.sessions`` feeds ``api.deps.get_session``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from argon2 import PasswordHasher
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from accounts import passwords
from accounts.domain import PERMISSIONS, Principal
from accounts.service import create_user, list_audit
from accounts.store import TABLES
from api.auth import SESSION_COOKIE, install_host_check, require
from api.routers import auth, users
from core.area import Area
from core.db import Base, make_engine

PW = "correct-horse-1"
AlertReader = Annotated[Principal, Depends(require("alerts:read"))]


class Hello(BaseModel):
    username: str
    via: str


@pytest.fixture
def sessions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[sessionmaker[Session]]:
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=8,
                                                            parallelism=1))  # fmt: skip
    engine = make_engine(f"sqlite:///{tmp_path / 'api.sqlite'}")
    Base.metadata.create_all(engine, tables=TABLES)
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory.begin() as s:
        create_user(s, "root", "admin", password=PW, display_name="管理员")
        create_user(s, "kan", "viewer", password=PW, area=Area(county="示例县", township="城关镇"))
    yield factory
    engine.dispose()


@pytest.fixture
def client(sessions: sessionmaker[Session]) -> TestClient:
    app = FastAPI()
    app.state.sessions = sessions
    app.include_router(auth.router)
    app.include_router(users.router)

    @app.get("/api/dummy", response_model=Hello)
    def dummy(principal: AlertReader) -> Hello:
        return Hello(username=principal.username, via=principal.via)

    install_host_check(app, ["testserver", "127.0.0.1", "localhost"])
    return TestClient(app)


def login(client: TestClient, username: str = "root", password: str = PW) -> dict[str, str]:
    """Log in and return the bearer header; the cookie jar is emptied so that only
    the header authenticates the next requests."""
    r = client.post("/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    client.cookies.clear()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def no_secrets(r: Response) -> Response:
    for word in ("password_hash", "key_hash", "$argon2"):
        assert word not in r.text
    return r


def test_login_me_logout(client: TestClient, sessions: sessionmaker[Session]) -> None:
    r = client.post("/api/auth/login", json={"username": "root", "password": PW})
    assert r.status_code == 200
    body = no_secrets(r).json()
    assert body["token_type"] == "bearer" and body["token"].startswith("sbt_")
    no_area = {"county": None, "township": None, "village": None, "grid": None}
    assert body["user"] == {"username": "root", "role": "admin", "display_name": "管理员",
                            "department_id": None, "area": no_area}  # fmt: skip
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower() and "Max-Age=43200" in cookie
    # The cookie alone authenticates (the web console).
    me = client.get("/api/auth/me").json()
    assert me["via"] == "session" and me["username"] == "root"
    assert "users:manage" in me["permissions"] and len(me["permissions"]) == len(PERMISSIONS)
    client.cookies.clear()
    headers = {"Authorization": f"Bearer {body['token']}"}
    me = client.get("/api/auth/me", headers=headers).json()
    assert me["via"] == "token" and me["role"] == "admin"
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    r = client.get("/api/auth/me", headers=headers)
    assert r.status_code == 401 and "log in again" in r.json()["detail"]
    with sessions() as s:
        rows, _ = list_audit(s, limit=10, offset=0)
        assert [(a.action, a.actor, a.ip) for a in rows] == [
            ("logout", "root", "testclient"), ("login", "root", "testclient")]  # fmt: skip


def test_login_failures_look_alike(client: TestClient, sessions: sessionmaker[Session]) -> None:
    wrong = client.post("/api/auth/login", json={"username": "root", "password": "nope-nope"})
    unknown = client.post("/api/auth/login", json={"username": "ghost", "password": PW})
    for r in (wrong, unknown):
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json() == {"detail": "invalid username or password"}
        assert "set-cookie" not in r.headers
    r = client.post("/api/auth/login", json={"username": "root"})
    assert r.status_code == 422
    with sessions() as s:
        rows, total = list_audit(s, limit=10, offset=0, action="login_failed")
        assert total == 2 and [a.target for a in rows] == ["ghost", "root"]


def test_unauthenticated_is_401(client: TestClient) -> None:
    cases = [{}, {"Authorization": "Bearer sbt_forged"}, {"Authorization": "Basic cm9vdDp4"},
             {"Authorization": "Bearer "}, {"X-API-Key": "sb_forged"},
             {"Authorization": "Bearer sb_forged"}]  # fmt: skip
    for headers in cases:
        r = client.get("/api/dummy", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["detail"]
    assert "not authenticated" in client.get("/api/users").json()["detail"]
    client.cookies.set(SESSION_COOKIE, "sbt_forged")
    assert client.get("/api/auth/me").status_code == 401


def test_viewer_is_403_on_users_routes(client: TestClient) -> None:
    headers = login(client, "kan")
    assert client.get("/api/dummy", headers=headers).json() == {"username": "kan", "via": "token"}
    calls = [("GET", "/api/users", None),
             ("POST", "/api/users", {"username": "x", "role": "admin"}),
             ("PATCH", "/api/users/kan", {"role": "admin"}),
             ("POST", "/api/users/kan/api-keys", {"name": "k"}),
             ("GET", "/api/users/kan/api-keys", None),
             ("DELETE", "/api/api-keys/1", None)]  # fmt: skip
    for method, url, body in calls:
        r = client.request(method, url, headers=headers, json=body)
        assert r.status_code == 403, url
        assert r.json()["detail"] == "permission 'users:manage' required (role 'viewer' lacks it)"
    r = client.get("/api/audit", headers=headers)
    assert r.status_code == 403 and "'audit:read'" in r.json()["detail"]


def test_manage_users(client: TestClient) -> None:
    headers = login(client)
    new: dict[str, object] = {"username": "zhao", "role": "operator", "password": "operator-pw-1",
           "area": {"county": "示例县", "township": "城关镇"}, "display_name": "赵六"}  # fmt: skip
    r = client.post("/api/users", headers=headers, json=new)
    assert r.status_code == 201, r.text
    created = no_secrets(r).json()
    assert created["has_password"] and not created["disabled"] and created["role"] == "operator"
    assert client.post("/api/users", headers=headers, json=new).status_code == 409
    bad: list[dict[str, object]] = [
        {"display_name": "名" * 101}, {"password": "short"}, {"username": "a b"},
        {"role": "root"}, {"role": "department"}, {"area": {"township": "城关镇"}},
        {"area": {"county": "县" * 65}}, {"shoe_size": 42},
    ]  # fmt: skip
    for change in bad:
        r = client.post("/api/users", headers=headers, json={**new, "username": "n", **change})
        assert r.status_code == 422, change
    users_now = no_secrets(client.get("/api/users", headers=headers)).json()
    assert [u["username"] for u in users_now] == ["kan", "root", "zhao"]

    r = client.patch("/api/users/zhao", headers=headers,
                     json={"role": "department", "department_id": "police"})  # fmt: skip
    assert r.status_code == 200 and r.json()["department_id"] == "police"
    r = client.patch("/api/users/zhao", headers=headers, json={"department_id": None})
    assert r.status_code == 422 and "needs a department" in r.json()["detail"]
    r = client.patch("/api/users/zhao", headers=headers, json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"]
    assert (
        client.post(
            "/api/auth/login", json={"username": "zhao", "password": "operator-pw-1"}
        ).status_code
        == 401
    )
    assert client.patch("/api/users/ghost", headers=headers, json={}).status_code == 404
    r = client.patch("/api/users/root", headers=headers, json={"role": "viewer"})
    assert r.status_code == 422 and "last enabled admin" in r.json()["detail"]
    r = client.patch("/api/users/kan", headers=headers, json={"password": "viewer-pw-22"})
    assert r.status_code == 200
    login(client, "kan", "viewer-pw-22")

    page = client.get("/api/audit", headers=headers, params={"action": "user_update"}).json()
    assert page["total"] == 3 and page["limit"] == 50
    assert [(a["target"], a["detail"]) for a in page["items"]] == [
        ("kan", "password changed"), ("zhao", "disabled=True"),
        ("zhao", "department_id=police, role=department")]  # fmt: skip
    page = client.get("/api/audit", headers=headers, params={"actor": "root", "limit": 1}).json()
    assert page["total"] == 5 and len(page["items"]) == 1  # login, create, 3 updates


def test_api_keys(client: TestClient) -> None:
    headers = login(client)
    r = client.post("/api/users", headers=headers,
                    json={"username": "bridge", "role": "viewer",
                          "county_wide": True})  # fmt: skip
    assert r.status_code == 201 and not r.json()["has_password"]
    r = client.post("/api/users/bridge/api-keys", headers=headers, json={"name": "VMS bridge"})
    assert r.status_code == 201
    created = no_secrets(r).json()
    key = created["key"]
    assert key.startswith("sb_") and key.startswith(created["prefix"])
    listed = no_secrets(client.get("/api/users/bridge/api-keys", headers=headers)).json()
    assert [k["id"] for k in listed] == [created["id"]] and key not in str(listed)
    assert "key" not in listed[0] and listed[0]["last_used_at"] is None

    for key_headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        r = client.get("/api/dummy", headers=key_headers)
        assert r.json() == {"username": "bridge", "via": "api_key"}
    assert client.get("/api/auth/me", headers={"X-API-Key": key}).json()["via"] == "api_key"
    listed = client.get("/api/users/bridge/api-keys", headers=headers).json()
    assert listed[0]["last_used_at"] is not None  # committed by the dependency

    assert client.delete(f"/api/api-keys/{created['id']}", headers=headers).status_code == 204
    r = client.get("/api/dummy", headers={"X-API-Key": key})
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert client.get("/api/users/bridge/api-keys", headers=headers).json()[0]["revoked"]
    assert client.delete("/api/api-keys/999", headers=headers).status_code == 404
    assert client.get("/api/users/ghost/api-keys", headers=headers).status_code == 404
    r = client.post("/api/users/ghost/api-keys", headers=headers, json={"name": "x"})
    assert r.status_code == 404
    actions = [a["action"] for a in client.get("/api/audit", headers=headers).json()["items"]]
    assert actions[:3] == ["api_key_revoke", "api_key_create", "user_create"]


def test_wrong_host_header_is_400(client: TestClient) -> None:
    headers = login(client)
    r = client.get("/api/auth/me", headers={**headers, "Host": "evil.example.com"})
    assert r.status_code == 400
    r = client.get("/api/auth/me", headers={**headers, "Host": "127.0.0.1:8080"})
    assert r.status_code == 200
    with pytest.raises(ValueError, match="empty"):
        install_host_check(FastAPI(), [])


def test_require_rejects_unknown_permission() -> None:
    with pytest.raises(ValueError, match="unknown permission 'alerts:delete'"):
        require("alerts:delete")  # type: ignore[arg-type]


def test_openapi_documents_typed_models(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/api/auth/login", "/api/auth/logout", "/api/auth/me", "/api/users",
            "/api/users/{username}", "/api/users/{username}/api-keys", "/api/api-keys/{key_id}",
            "/api/audit"} <= set(spec["paths"])  # fmt: skip
    schemas = spec["components"]["schemas"]
    assert set(schemas["UserOut"]["properties"]) == {
        "username", "role", "area", "department_id", "display_name", "disabled",
        "has_password", "created_at", "last_login_at"}  # fmt: skip
    assert schemas["LoginOut"]["required"] == ["token", "expires_at", "user"]
