"""User administration (``users:manage``) and the audit log (``audit:read``).

Every change is audited; no answer ever carries a password hash or an API key hash,
and a new API key is shown once, in the answer that creates it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from accounts.domain import Role, county_wide_problem
from accounts.passwords import MAX_LENGTH as PASSWORD_MAX
from accounts.service import (
    UNSET,
    NotFoundError,
    UserExistsError,
    create_api_key,
    create_user,
    find_api_key,
    list_api_keys,
    list_audit,
    list_users,
    revoke_api_key,
    update_user,
)
from accounts.store import (
    AUDIT_ACTION_MAX,
    DISPLAY_NAME_MAX,
    KEY_NAME_MAX,
    USERNAME_MAX,
    ApiKeyRecord,
    AuditRecord,
    UserRecord,
)
from api.auth import audit_request
from api.deps import AuditReader, SessionDep, UserManager
from api.schemas import UserInfo, user_info
from core.area import Area
from core.model import ID_MAX, StrictModel

router = APIRouter(prefix="/api", tags=["users"])



# -- schemas ---------------------------------------------------------------------


class UserOut(UserInfo):
    disabled: bool
    has_password: bool = Field(description="false: a machine user (API keys only)")
    created_at: float
    last_login_at: float | None = None


class UserCreate(StrictModel):
    username: str = Field(min_length=1, max_length=USERNAME_MAX, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: Role
    password: str | None = Field(
        None, max_length=PASSWORD_MAX, description="at least 8 characters; none: API keys only"
    )
    area: Area = Field(
        default_factory=Area,
        description="scope; empty: the whole county (with county_wide: true), or for a "
        "department account the area its department serves",
    )
    county_wide: bool = Field(
        False,
        description="confirms that a user without an area sees the whole county "
        "(required then, for every role but department; 422 without it)",
    )
    department_id: str | None = Field(None, min_length=1, max_length=ID_MAX)
    display_name: str = Field("", max_length=DISPLAY_NAME_MAX)


class UserPatch(StrictModel):
    """Fields to change; ``department_id: null`` clears the department."""

    role: Role | None = None
    area: Area | None = None
    county_wide: bool = Field(
        False, description="confirms an empty area (the whole county), as when creating"
    )
    department_id: str | None = Field(None, min_length=1, max_length=ID_MAX)
    display_name: str | None = Field(None, max_length=DISPLAY_NAME_MAX)
    disabled: bool | None = None
    password: str | None = Field(None, max_length=PASSWORD_MAX)


class ApiKeyIn(StrictModel):
    name: str = Field(min_length=1, max_length=KEY_NAME_MAX, description="what the key is for")


class ApiKeyOut(BaseModel):
    id: int
    username: str
    name: str
    prefix: str = Field(description="the first characters of the key, to recognise it")
    created_at: float
    last_used_at: float | None = None
    revoked: bool


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the API key: shown this once, store it now")


class AuditOut(BaseModel):
    id: int
    ts: float
    actor: str
    action: str
    target: str
    detail: str | None = None
    ip: str | None = None


class AuditPage(BaseModel):
    items: list[AuditOut]
    total: int
    limit: int
    offset: int


def user_out(user: UserRecord) -> UserOut:
    return UserOut(
        **user_info(user).model_dump(),
        disabled=user.disabled,
        has_password=user.password_hash is not None,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


def key_out(record: ApiKeyRecord) -> ApiKeyOut:
    return ApiKeyOut(
        id=record.id, username=record.username, name=record.name, prefix=record.prefix,
        created_at=record.created_at, last_used_at=record.last_used_at, revoked=record.revoked,
    )  # fmt: skip


def audit_out(record: AuditRecord) -> AuditOut:
    return AuditOut(
        id=record.id, ts=record.ts, actor=record.actor, action=record.action,
        target=record.target, detail=record.detail, ip=record.ip,
    )  # fmt: skip


@contextmanager
def _http_errors() -> Iterator[None]:
    """Service errors as HTTP answers: 409 taken, 404 missing, 422 invalid."""
    try:
        yield
    except UserExistsError as exc:
        raise HTTPException(409, str(exc)) from None
    except NotFoundError as exc:
        raise HTTPException(404, str(exc.args[0])) from None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


# -- users -----------------------------------------------------------------------


@router.get("/users", response_model=list[UserOut], summary="All users")
def get_users(principal: UserManager, session: SessionDep) -> list[UserOut]:
    return [user_out(u) for u in list_users(session)]


@router.post("/users", response_model=UserOut, status_code=201, summary="Create a user")
def post_user(
    body: UserCreate, principal: UserManager, request: Request, session: SessionDep
) -> UserOut:
    problem = county_wide_problem(body.role, body.area, body.county_wide)
    if problem:
        raise HTTPException(422, problem)
    with _http_errors():
        user = create_user(
            session, body.username, body.role, password=body.password, area=body.area,
            department_id=body.department_id, display_name=body.display_name,
        )  # fmt: skip
    detail = f"role={body.role} area={body.area.label()} department={body.department_id}"
    if not body.area.path() and body.county_wide:
        detail += " county_wide confirmed"
    audit_request(request, session, principal, "user_create", body.username, detail)
    out = user_out(user)
    session.commit()
    return out


@router.patch("/users/{username}", response_model=UserOut, summary="Change a user")
def patch_user(
    username: str, body: UserPatch, principal: UserManager, request: Request, session: SessionDep
) -> UserOut:
    given = body.model_fields_set
    with _http_errors():
        user = update_user(
            session, username, role=body.role, area=body.area,
            department_id=body.department_id if "department_id" in given else UNSET,
            display_name=body.display_name, disabled=body.disabled, password=body.password,
        )  # fmt: skip
    if "area" in given or "role" in given:  # the scope changes: confirmed as on creation
        problem = county_wide_problem(user.role, user.area(), body.county_wide)
        if problem:  # after the service's own checks; nothing is committed
            raise HTTPException(422, problem)
    audit_request(request, session, principal, "user_update", username, _change_detail(body))
    out = user_out(user)
    session.commit()
    return out


def _change_detail(body: UserPatch) -> str:
    """What a PATCH changed, for the audit log (never the password itself)."""
    parts = []
    for field in sorted(body.model_fields_set - {"county_wide"}):
        value = getattr(body, field)
        if field == "password":
            parts.append("password changed")
        elif isinstance(value, Area):
            parts.append(f"area={value.label()}")
        else:
            parts.append(f"{field}={value}")
    return ", ".join(parts) or "no change"


# -- API keys --------------------------------------------------------------------


@router.post(
    "/users/{username}/api-keys",
    response_model=ApiKeyCreated,
    status_code=201,
    summary="Create an API key (the key is in this answer only)",
)
def post_api_key(
    username: str, body: ApiKeyIn, principal: UserManager, request: Request, session: SessionDep
) -> ApiKeyCreated:
    with _http_errors():
        key = create_api_key(session, username, body.name)
    record = find_api_key(session, key)
    assert record is not None  # just inserted in this transaction
    audit_request(request, session, principal, "api_key_create", username,
                  f"id={record.id} name={body.name} prefix={record.prefix}")  # fmt: skip
    out = ApiKeyCreated(**key_out(record).model_dump(), key=key)
    session.commit()
    return out


@router.get(
    "/users/{username}/api-keys", response_model=list[ApiKeyOut], summary="A user's API keys"
)
def get_api_keys(username: str, principal: UserManager, session: SessionDep) -> list[ApiKeyOut]:
    with _http_errors():
        return [key_out(k) for k in list_api_keys(session, username)]


@router.delete("/api-keys/{key_id}", status_code=204, summary="Revoke an API key")
def delete_api_key(
    key_id: Annotated[int, Path(ge=1, le=2**31 - 1)], principal: UserManager, request: Request,
    session: SessionDep,
) -> None:
    with _http_errors():
        record = revoke_api_key(session, key_id)
    audit_request(request, session, principal, "api_key_revoke", record.username,
                  f"id={record.id} name={record.name} prefix={record.prefix}")  # fmt: skip
    session.commit()


# -- audit -----------------------------------------------------------------------


@router.get("/audit", response_model=AuditPage, summary="The audit log, newest first")
def get_audit(
    principal: AuditReader,
    session: SessionDep,
    action: Annotated[str | None, Query(max_length=AUDIT_ACTION_MAX)] = None,
    actor: Annotated[str | None, Query(max_length=USERNAME_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> AuditPage:
    rows, total = list_audit(session, limit=limit, offset=offset, action=action, actor=actor)
    return AuditPage(items=[audit_out(r) for r in rows], total=total, limit=limit, offset=offset)
