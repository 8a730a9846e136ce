"""Account operations: users, login tokens, API keys, the audit log.

Every function takes a SQLAlchemy :class:`~sqlalchemy.orm.Session` and leaves the
commit to the caller, so a change and its audit record land in one transaction.
Input problems raise :class:`AccountError` (a ValueError: HTTP 422), a taken
username :class:`UserExistsError` (409), a missing user or key :class:`NotFoundError`
(404). ``now`` parameters exist for tests (no sleeping to expire a token).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from typing import Final

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from accounts import passwords
from accounts.domain import ROLES, Principal, Role, Via, is_role
from accounts.store import (
    AUDIT_ACTION_MAX,
    AUDIT_TARGET_MAX,
    DISPLAY_NAME_MAX,
    IP_MAX,
    KEY_NAME_MAX,
    USERNAME_MAX,
    ApiKeyRecord,
    AuditRecord,
    AuthTokenRecord,
    UserRecord,
)
from core.area import LEVELS, Area
from core.model import ID_MAX

log = logging.getLogger(__name__)

DEFAULT_TOKEN_TTL_S = 12 * 3600
API_KEY_PREFIX: Final = "sb_"
# Login tokens get their own prefix so a bearer value tells which table to look in
# (and a leaked one is recognisable to secret scanners).
TOKEN_PREFIX: Final = "sbt_"
KEY_PREFIX_SHOWN = len(API_KEY_PREFIX) + 8  # "sb_" + 8 characters of the key, for lists
# Writing last_used_at on every request would make each API call a write: once a minute.
LAST_USED_RESOLUTION_S = 60.0
USERNAME_RE = re.compile(rf"[A-Za-z0-9_.@-]{{1,{USERNAME_MAX}}}")
INITIAL_ADMIN = "admin"


class AccountError(ValueError):
    """Invalid input: a bad username, role, area, name or password."""


class UserExistsError(AccountError):
    """The username is taken."""


class NotFoundError(LookupError):
    """No such user or API key."""


class _Unset:
    """Marks "not given" where None is a meaningful value (clear the department)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


# -- validation ------------------------------------------------------------------


def validate_username(username: str) -> str:
    if not USERNAME_RE.fullmatch(username):
        raise AccountError(
            f"invalid username {username[:80]!r}: 1-{USERNAME_MAX} characters of ASCII "
            "letters, digits and _ . - @"
        )
    return username


def _validate_role(role: str) -> Role:
    if not is_role(role):
        raise AccountError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    return role


def _validate_display_name(name: str) -> str:
    if len(name) > DISPLAY_NAME_MAX:
        raise AccountError(f"display name too long: at most {DISPLAY_NAME_MAX} characters")
    return name


def _validate_department(department_id: str | None) -> str | None:
    if department_id is None:
        return None
    if not department_id.strip() or len(department_id) > ID_MAX:
        raise AccountError(f"department id must be 1-{ID_MAX} characters")
    return department_id


def _validate_area(area: Area) -> Area:
    """Re-validate (lengths) and refuse gaps: a township without its county would have
    an empty path, i.e. the whole county, a silent widening of the user's scope."""
    area = Area.model_validate({lv: getattr(area, lv) or None for lv in LEVELS})
    depth = len(area.path())
    for level in LEVELS[depth:]:
        if getattr(area, level):
            raise AccountError(
                f"area {level} {getattr(area, level)!r} given without the levels above it "
                "(county / township / village / grid)"
            )
    return area


def _check_department_role(role: str, department_id: str | None) -> None:
    # Without a department a department user would fall back to area scope, and an
    # empty area is the whole county: require it.
    if role == "department" and department_id is None:
        raise AccountError("role 'department' needs a department id")


def _password_hash(password: str) -> str:
    try:
        return passwords.hash_password(password)
    except passwords.PasswordPolicyError as exc:
        raise AccountError(str(exc)) from None


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _now(now: float | None) -> float:
    return time.time() if now is None else now


# -- users -----------------------------------------------------------------------


def get_user(session: Session, username: str) -> UserRecord:
    user = session.get(UserRecord, username)
    if user is None:
        raise NotFoundError(f"no user {username!r}")
    return user


def list_users(session: Session) -> list[UserRecord]:
    return list(session.scalars(select(UserRecord).order_by(UserRecord.username)))


def create_user(
    session: Session,
    username: str,
    role: str,
    *,
    password: str | None = None,
    area: Area | None = None,
    department_id: str | None = None,
    display_name: str = "",
    now: float | None = None,
) -> UserRecord:
    """Add a user; ``area`` None (or empty) is the whole county, ``password`` None a
    machine user that authenticates with API keys only."""
    validate_username(username)
    checked_role = _validate_role(role)
    checked_area = _validate_area(area or Area())
    department = _validate_department(department_id)
    _check_department_role(checked_role, department)
    _validate_display_name(display_name)
    # Case-insensitive: "Admin" next to "admin" is a confusion, never a second person.
    taken = session.scalar(
        select(UserRecord.username).where(func.lower(UserRecord.username) == username.lower())
    )
    if taken is not None:
        raise UserExistsError(f"username {username!r} is taken (by {taken!r})")
    user = UserRecord(
        username=username,
        display_name=display_name,
        role=checked_role,
        department_id=department,
        password_hash=_password_hash(password) if password is not None else None,
        disabled=False,
        created_at=_now(now),
    )
    user.set_area(checked_area)
    session.add(user)
    session.flush()
    return user


def update_user(
    session: Session,
    username: str,
    *,
    role: str | None = None,
    area: Area | None = None,
    department_id: str | None | _Unset = UNSET,
    display_name: str | None = None,
    disabled: bool | None = None,
    password: str | None = None,
) -> UserRecord:
    """Change the given fields (None / UNSET: unchanged; ``department_id=None`` clears it).

    Disabling a user or setting its password ends its login sessions. The last
    enabled admin can be neither disabled nor demoted.
    """
    user = get_user(session, username)
    new_role = _validate_role(role) if role is not None else user.role
    new_department = (
        user.department_id
        if isinstance(department_id, _Unset)
        else _validate_department(department_id)
    )
    _check_department_role(new_role, new_department)
    new_disabled = user.disabled if disabled is None else disabled
    if user.role == "admin" and not user.disabled and (new_role != "admin" or new_disabled):
        _check_other_admin(session, username)
    if display_name is not None:
        user.display_name = _validate_display_name(display_name)
    if area is not None:
        user.set_area(_validate_area(area))
    if password is not None:
        user.password_hash = _password_hash(password)
    user.role, user.department_id, user.disabled = new_role, new_department, new_disabled
    if password is not None or new_disabled:
        end_sessions(session, username)
    session.flush()
    return user


def _check_other_admin(session: Session, username: str) -> None:
    others = session.scalar(
        select(func.count())
        .select_from(UserRecord)
        .where(UserRecord.role == "admin", UserRecord.disabled.is_(False))
        .where(UserRecord.username != username)
    )
    if not others:
        raise AccountError(f"{username!r} is the last enabled admin: keep it an enabled admin")


def principal_of(user: UserRecord, via: Via) -> Principal | None:
    """The principal of an enabled user (None: disabled, or a role this code lacks)."""
    if user.disabled:
        return None
    if not is_role(user.role):
        log.warning("user %r has unknown role %r: refused", user.username, user.role)
        return None
    return Principal(
        username=user.username,
        role=user.role,
        area=user.area(),
        department_id=user.department_id,
        via=via,
    )


def ensure_initial_admin(session: Session, password: str | None = None) -> str | None:
    """On a database without any user, create ``admin`` (role admin) and return its
    password (``password``, or a random one of 22 characters); else None."""
    if session.scalar(select(func.count()).select_from(UserRecord)):
        return None
    chosen = password if password is not None else passwords.generate_password(16)
    create_user(session, INITIAL_ADMIN, "admin", password=chosen, display_name="Administrator")
    return chosen


# -- login tokens ----------------------------------------------------------------


def authenticate(
    session: Session,
    username: str,
    password: str,
    *,
    ttl_s: float = DEFAULT_TOKEN_TTL_S,
    now: float | None = None,
) -> tuple[str, Principal] | None:
    """Check the password; on success record the login and return a new token (valid
    ``ttl_s``) and the principal. None for every failure alike."""
    at = _now(now)
    user = session.get(UserRecord, username) if USERNAME_RE.fullmatch(username) else None
    if user is None or user.password_hash is None:
        passwords.dummy_verify(password)  # same cost as a real check: no user probing
        return None
    if not passwords.verify_password(user.password_hash, password):
        return None
    principal = principal_of(user, "token")  # checked after verifying, same timing
    if principal is None:
        return None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password, check=False)
    user.last_login_at = at
    session.execute(
        delete(AuthTokenRecord).where(
            AuthTokenRecord.username == username, AuthTokenRecord.expires_at <= at
        )
    )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        AuthTokenRecord(
            token_hash=_sha256(token), username=username, created_at=at, expires_at=at + ttl_s
        )  # fmt: skip
    )
    session.flush()
    return token, principal


def principal_for_token(
    session: Session, token: str, *, via: Via = "token", now: float | None = None
) -> Principal | None:
    """The principal of a login token; None when unknown, expired or the user disabled."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    record = session.get(AuthTokenRecord, _sha256(token))
    if record is None or record.expires_at <= _now(now):
        return None
    user = session.get(UserRecord, record.username)
    return principal_of(user, via) if user is not None else None


def logout(session: Session, token: str) -> bool:
    """End the session of ``token``; whether there was one."""
    result = session.execute(
        delete(AuthTokenRecord).where(AuthTokenRecord.token_hash == _sha256(token))
    )
    return bool(getattr(result, "rowcount", 0))


def end_sessions(session: Session, username: str) -> None:
    """Invalidate every login token of a user."""
    session.execute(delete(AuthTokenRecord).where(AuthTokenRecord.username == username))


def purge_expired_tokens(session: Session, *, now: float | None = None) -> int:
    """Delete expired tokens (housekeeping); how many."""
    result = session.execute(delete(AuthTokenRecord).where(AuthTokenRecord.expires_at <= _now(now)))
    return int(getattr(result, "rowcount", 0))


# -- API keys --------------------------------------------------------------------


def create_api_key(session: Session, username: str, name: str, *, now: float | None = None) -> str:
    """A new key ``sb_...`` for the user, returned once: only its SHA-256 is stored."""
    get_user(session, username)
    if not name.strip() or len(name) > KEY_NAME_MAX:
        raise AccountError(f"API key name must be 1-{KEY_NAME_MAX} characters")
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKeyRecord(
            username=username,
            name=name,
            prefix=key[:KEY_PREFIX_SHOWN],
            key_hash=_sha256(key),
            created_at=_now(now),
            revoked=False,
        )  # fmt: skip
    )
    session.flush()
    return key


def find_api_key(session: Session, key: str) -> ApiKeyRecord | None:
    """The record of a key (revoked or not), by its hash."""
    if not key.startswith(API_KEY_PREFIX):
        return None
    return session.scalar(select(ApiKeyRecord).where(ApiKeyRecord.key_hash == _sha256(key)))


def list_api_keys(session: Session, username: str) -> list[ApiKeyRecord]:
    get_user(session, username)
    return list(
        session.scalars(
            select(ApiKeyRecord).where(ApiKeyRecord.username == username).order_by(ApiKeyRecord.id)
        )
    )


def principal_for_api_key(
    session: Session, key: str, *, now: float | None = None
) -> Principal | None:
    """The principal of an API key; None when unknown, revoked or the user disabled.

    Updates ``last_used_at`` (at most once a minute): the caller commits it.
    """
    record = find_api_key(session, key)
    if record is None or record.revoked:
        return None
    user = session.get(UserRecord, record.username)
    principal = principal_of(user, "api_key") if user is not None else None
    at = _now(now)
    if principal is not None and (
        record.last_used_at is None or at - record.last_used_at >= LAST_USED_RESOLUTION_S
    ):
        record.last_used_at = at
    return principal


def revoke_api_key(session: Session, key_id: int) -> ApiKeyRecord:
    """Revoke a key (idempotent); NotFoundError for an unknown id."""
    record = session.get(ApiKeyRecord, key_id)
    if record is None:
        raise NotFoundError(f"no API key {key_id}")
    record.revoked = True
    session.flush()
    return record


# -- audit -----------------------------------------------------------------------


def audit(
    session: Session,
    actor: str,
    action: str,
    target: str,
    detail: str | None = None,
    ip: str | None = None,
    *,
    now: float | None = None,
) -> AuditRecord:
    """Record one action. Free-text fields are cut to their columns: an audit record
    must never fail its transaction; ``action`` is ours, so a long one is a bug."""
    if not action or len(action) > AUDIT_ACTION_MAX:
        raise ValueError(f"audit action must be 1-{AUDIT_ACTION_MAX} characters: {action!r}")
    record = AuditRecord(
        ts=_now(now),
        actor=actor[:USERNAME_MAX],
        action=action,
        target=target[:AUDIT_TARGET_MAX],
        detail=detail,
        ip=ip[:IP_MAX] if ip is not None else None,
    )
    session.add(record)
    session.flush()
    return record


def list_audit(
    session: Session,
    *,
    limit: int = 50,
    offset: int = 0,
    action: str | None = None,
    actor: str | None = None,
) -> tuple[list[AuditRecord], int]:
    """Audit records newest first, filtered; and the total matching."""
    query = select(AuditRecord)
    if action is not None:
        query = query.where(AuditRecord.action == action)
    if actor is not None:
        query = query.where(AuditRecord.actor == actor)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(AuditRecord.ts.desc(), AuditRecord.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), int(total)
