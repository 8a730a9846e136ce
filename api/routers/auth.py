"""Login, logout and who-am-I.

``POST /api/auth/login`` answers a bearer token and also sets it as the httponly,
SameSite=Strict ``shaobing_session`` cookie for the web console.
"""

from __future__ import annotations

import time
from typing import Literal, cast

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from accounts.domain import PERMISSIONS, ROLE_PERMISSIONS, Permission, Principal, Role, Via
from accounts.passwords import MAX_LENGTH as PASSWORD_MAX
from accounts.service import DEFAULT_TOKEN_TTL_S, authenticate, get_user, logout
from accounts.store import USERNAME_MAX, UserRecord
from api.auth import (
    SESSION_COOKIE,
    CurrentPrincipal,
    SessionDep,
    audit_request,
    presented_credential,
)
from core.area import Area
from core.model import StrictModel

router = APIRouter(prefix="/api/auth", tags=["auth"])

LOGIN_FAILED = "invalid username or password"


class LoginIn(StrictModel):
    username: str = Field(min_length=1, max_length=USERNAME_MAX)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX)


class UserInfo(BaseModel):
    username: str
    role: Role
    area: Area = Field(description="scope; empty: the whole county")
    department_id: str | None = None
    display_name: str = ""


class LoginOut(BaseModel):
    token: str = Field(description="send as 'Authorization: Bearer <token>'")
    token_type: Literal["bearer"] = "bearer"
    expires_at: float = Field(description="epoch seconds")
    user: UserInfo


class MeOut(UserInfo):
    via: Via = Field(description="how this request authenticated")
    permissions: list[Permission]


def user_info(user: UserRecord) -> UserInfo:
    return UserInfo(
        username=user.username,
        role=cast(Role, user.role),  # checked on write (and again by pydantic here)
        area=user.area(),
        department_id=user.department_id,
        display_name=user.display_name,
    )


def permissions_of(principal: Principal) -> list[Permission]:
    """The principal's permissions in the canonical order."""
    granted = ROLE_PERMISSIONS[principal.role]
    return [p for p in PERMISSIONS if p in granted]


@router.post(
    "/login",
    response_model=LoginOut,
    responses={401: {"description": LOGIN_FAILED}},
    summary="Log in with username and password: a bearer token and a session cookie",
)
def login(body: LoginIn, request: Request, response: Response, session: SessionDep) -> LoginOut:
    now = time.time()
    ttl_s = float(getattr(request.app.state, "token_ttl_s", DEFAULT_TOKEN_TTL_S))
    result = authenticate(session, body.username, body.password, ttl_s=ttl_s, now=now)
    if result is None:
        # One message for every cause: no hint whether the username exists.
        audit_request(request, session, body.username, "login_failed", body.username)
        session.commit()
        raise HTTPException(401, LOGIN_FAILED, headers={"WWW-Authenticate": "Bearer"})
    token, principal = result
    audit_request(request, session, principal, "login", principal.username)
    user = get_user(session, principal.username)
    out = LoginOut(token=token, expires_at=now + ttl_s, user=user_info(user))
    session.commit()
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(ttl_s),
        httponly=True,  # out of reach of page scripts
        samesite="strict",  # not sent on cross-site requests: CSRF defence
        secure=request.url.scheme == "https",
        path="/",
    )
    return out


@router.post("/logout", status_code=204, summary="End this login session")
def logout_route(
    principal: CurrentPrincipal, request: Request, response: Response, session: SessionDep
) -> None:
    credential = presented_credential(request)
    # An API key has no session to end: it is revoked (DELETE /api/api-keys/{id}).
    if credential is not None and credential[0] != "api_key":
        logout(session, credential[1])
        audit_request(request, session, principal, "logout", principal.username)
        session.commit()
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


@router.get("/me", response_model=MeOut, summary="The authenticated user and its permissions")
def me(principal: CurrentPrincipal, session: SessionDep) -> MeOut:
    user = get_user(session, principal.username)
    return MeOut(
        **user_info(user).model_dump(),
        via=principal.via,
        permissions=permissions_of(principal),
    )
