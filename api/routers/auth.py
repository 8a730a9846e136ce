"""Login, logout and who-am-I.

``POST /api/auth/login`` answers a bearer token and also sets it as the httponly,
SameSite=Strict ``shaobing_session`` cookie for the web console.
"""

from __future__ import annotations

import time
from math import ceil
from typing import Literal

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from accounts.domain import PERMISSIONS, ROLE_PERMISSIONS, Permission, Principal, Via
from accounts.passwords import MAX_LENGTH as PASSWORD_MAX
from accounts.service import DEFAULT_TOKEN_TTL_S, authenticate, get_user, logout
from accounts.store import USERNAME_MAX
from api.auth import (
    SESSION_COOKIE,
    audit_request,
    client_ip,
    presented_credential,
)
from api.deps import CurrentPrincipal, SessionDep
from api.limits import login_guards
from api.schemas import UserInfo, user_info
from core.model import StrictModel

router = APIRouter(prefix="/api/auth", tags=["auth"])

LOGIN_FAILED = "invalid username or password"


class LoginIn(StrictModel):
    username: str = Field(min_length=1, max_length=USERNAME_MAX)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX)


class LoginOut(BaseModel):
    token: str = Field(description="send as 'Authorization: Bearer <token>'")
    token_type: Literal["bearer"] = "bearer"
    expires_at: float = Field(description="epoch seconds")
    user: UserInfo


class MeOut(UserInfo):
    via: Via = Field(description="how this request authenticated")
    permissions: list[Permission]


def permissions_of(principal: Principal) -> list[Permission]:
    """The principal's permissions in the canonical order."""
    granted = ROLE_PERMISSIONS[principal.role]
    return [p for p in PERMISSIONS if p in granted]


@router.post(
    "/login",
    response_model=LoginOut,
    responses={
        401: {"description": LOGIN_FAILED},
        413: {"description": "request body over 16 KiB"},
        429: {"description": "too many failed logins for this account or address: wait "
                             "Retry-After seconds (back-off, then a temporary lockout)"},
        503: {"description": "too many logins at once: retry"},
    },
    summary="Log in with username and password: a bearer token and a session cookie",
)
async def login(
    body: LoginIn, request: Request, response: Response, session: SessionDep
) -> LoginOut:
    """Failed logins are throttled per account and per client address (exponential
    back-off, then a 15-minute lockout, audited as ``login_locked``); the password
    checks run a few at a time (``api.limits.PasswordSlots``)."""
    throttle, slots = login_guards(request.app)
    keys = throttle.keys(body.username, client_ip(request))
    verdict = await run_in_threadpool(throttle.verdict, keys)  # the database: a thread
    if not verdict.allowed:
        raise HTTPException(
            429, "too many failed logins: " + ("locked, " if verdict.locked else "")
            + f"try again in {ceil(verdict.wait_s)} s",
            headers={"Retry-After": str(ceil(verdict.wait_s))},
        )  # fmt: skip
    now = time.time()
    ttl_s = float(getattr(request.app.state, "token_ttl_s", DEFAULT_TOKEN_TTL_S))
    try:
        result = await slots.run(lambda: authenticate(session, body.username, body.password,
                                                      ttl_s=ttl_s, now=now))  # fmt: skip
    except TimeoutError:
        raise HTTPException(503, "too many logins at once: retry in a few seconds",
                            headers={"Retry-After": "5"}) from None  # fmt: skip
    if result is None:

        def record_failure() -> None:
            throttle.failed(keys)
            after = throttle.verdict(keys)
            # One message for every cause: no hint whether the username exists.
            audit_request(request, session, body.username, "login_failed", body.username)
            if after.locked and after.key is not None:
                audit_request(request, session, body.username, "login_locked", after.key,
                              f"{throttle.failures(after.key)} failures; locked "
                              f"{ceil(after.wait_s)} s")  # fmt: skip
            session.commit()

        await run_in_threadpool(record_failure)
        raise HTTPException(401, LOGIN_FAILED, headers={"WWW-Authenticate": "Bearer"})
    token, principal = result

    def record_login() -> LoginOut:
        audit_request(request, session, principal, "login", principal.username)
        user = get_user(session, principal.username)
        out = LoginOut(token=token, expires_at=now + ttl_s, user=user_info(user))
        session.commit()
        # After the commit: the throttle has its own connection, and SQLite has one writer
        # (the login's token and last_login_at hold it until then).
        throttle.succeeded(body.username)
        return out

    out = await run_in_threadpool(record_login)
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
