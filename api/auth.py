"""Authentication and authorisation for the REST API: FastAPI dependencies.

A request authenticates with one of, in this order of precedence:

* ``Authorization: Bearer sbt_...``: a login token (``POST /api/auth/login``);
* ``Authorization: Bearer sb_...`` or ``X-API-Key: sb_...``: an API key;
* the ``shaobing_session`` cookie set at login (the web console).

The first credential presented decides: an invalid bearer token is a 401 even with a
valid cookie beside it. Routes declare ``principal: CurrentPrincipal`` or
``Depends(require("alerts:read"))``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from sqlalchemy.orm import Session
from starlette.middleware.trustedhost import TrustedHostMiddleware

from accounts.domain import Permission, Principal, can, is_permission, scoped_principal
from accounts.service import (
    API_KEY_PREFIX,
    audit,
    principal_for_api_key,
    principal_for_token,
)
from api.providers import SessionDep
from core.area import Area

SESSION_COOKIE = "shaobing_session"
API_KEY_HEADER = "X-API-Key"

CredentialKind = Literal["token", "api_key", "session"]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def presented_credential(request: Request) -> tuple[CredentialKind, str] | None:
    """The credential the request carries, by precedence (see the module docstring)."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _unauthorized("Authorization header must be 'Bearer <token or API key>'")
        value = value.strip()
        return ("api_key" if value.startswith(API_KEY_PREFIX) else "token"), value
    key = request.headers.get(API_KEY_HEADER)
    if key is not None:
        return "api_key", key.strip()
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return "session", cookie
    return None


def current_principal(request: Request, session: SessionDep) -> Principal:
    """The authenticated caller with its scope (:func:`accounts.domain.scoped_principal`),
    or 401 with ``WWW-Authenticate: Bearer``."""
    return with_scope(request, _authenticated(request, session))


def served_areas(request: Request) -> Callable[[str], list[Area]]:
    """The areas a department serves, from the hub's routing configuration."""

    def served(department_id: str) -> list[Area]:  # asked for department accounts only
        services = getattr(request.app.state, "services", None)
        if services is None:  # an app without the hub: no department is known
            return []
        department = services.router().departments.get(department_id)
        return list(department.areas) if department is not None else []

    return served


def with_scope(request: Request, principal: Principal) -> Principal:
    return scoped_principal(principal, served_areas(request))


def _authenticated(request: Request, session: Session) -> Principal:
    credential = presented_credential(request)
    if credential is None:
        raise _unauthorized(
            "not authenticated: send 'Authorization: Bearer <token>' (POST /api/auth/login) "
            f"or '{API_KEY_HEADER}: <API key>'"
        )
    kind, value = credential
    if kind == "api_key":
        principal = principal_for_api_key(session, value)
        if principal is None:
            raise _unauthorized("invalid or revoked API key (or its user is disabled)")
        # last_used_at (throttled to once a minute); read-only routes never commit.
        if session.dirty:
            session.commit()
        session.rollback()  # hand the connection back: a live stream may last hours
        return principal
    principal = principal_for_token(session, value, via=kind)
    if principal is None:
        raise _unauthorized("invalid or expired token: log in again (POST /api/auth/login)")
    session.rollback()  # nothing written: hand the connection back (see above)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(permission: Permission) -> Callable[[Principal], Principal]:
    """A dependency that returns the principal when its role has ``permission``, else
    answers 403 naming it: ``Depends(require("users:manage"))``."""
    if not is_permission(permission):  # a typo must fail at import, not deny at runtime
        raise ValueError(f"unknown permission {permission!r}")

    def dependency(principal: CurrentPrincipal) -> Principal:
        if not can(principal, permission):
            raise HTTPException(
                403, f"permission {permission!r} required (role {principal.role!r} lacks it)"
            )
        return principal

    dependency.__name__ = f"require_{permission.replace(':', '_')}"
    return dependency


def client_ip(request: Request) -> str | None:
    """The peer address (a reverse proxy in front must be trusted explicitly, later)."""
    return request.client.host if request.client is not None else None


def audit_request(
    request: Request,
    session: Session,
    principal: Principal | str,
    action: str,
    target: str,
    detail: str | None = None,
) -> None:
    """Audit an action of this request (the actor: a principal, or a name such as the
    username a failed login tried); the route commits."""
    actor = principal if isinstance(principal, str) else principal.username
    audit(session, actor, action, target, detail, ip=client_ip(request))


def install_host_check(app: FastAPI, allowed_hosts: list[str]) -> None:
    """Answer 400 to requests whose Host header is not in ``allowed_hosts``.

    A defence against DNS rebinding: a web page whose name is made to resolve to
    127.0.0.1 would otherwise reach the API from the operator's browser. Entries are
    host names without port (``"127.0.0.1"``, ``"localhost"``, ``"*.example.org"``).
    """
    if not allowed_hosts:
        raise ValueError("allowed_hosts is empty: no request could reach the API")
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts, www_redirect=False)


#: Seconds between two checks of a long-lived stream's credential (SSE feed, live video).
STREAM_RECHECK_S = 5.0


class StreamAuthority:
    """Re-checks, while a stream lasts, that the credential which opened it still holds.

    A stream outlives its request: without this, a feed or a live video would keep
    flowing after the token was revoked, the user disabled or demoted or moved to
    another area. Every ``interval_s`` (``app.state.stream_recheck_s``, default
    :data:`STREAM_RECHECK_S`) the same credential is authenticated again; the stream
    ends when it no longer authenticates, lacks ``permission``, or its scope changed.
    """

    def __init__(self, request: Request, principal: Principal, permission: Permission) -> None:
        self.request = request
        self.principal = principal
        self.permission = permission
        self.interval_s = float(getattr(request.app.state, "stream_recheck_s", STREAM_RECHECK_S))
        self._next = time.monotonic() + self.interval_s

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def reason_to_end(self) -> str | None:
        """Check now (blocking: run it in a thread): why the stream must end, or None."""
        self._next = time.monotonic() + self.interval_s
        try:
            with self.request.app.state.sessions() as session:
                now = with_scope(self.request, _authenticated(self.request, session))
        except HTTPException as exc:
            return f"credential no longer valid: {exc.detail}"
        if not can(now, self.permission):
            return f"permission {self.permission!r} withdrawn (role {now.role!r})"
        before = self.principal
        if (now.role, now.area, now.department_id) != (before.role, before.area,
                                                       before.department_id):  # fmt: skip
            return "role or scope changed: reconnect"
        return None
