"""Roles, permissions and scope: who may do what, and on which alerts and cameras.

Pure: no I/O. A :class:`Principal` is the authenticated caller; its role gives it
permissions (:data:`ROLE_PERMISSIONS`) and its area and department limit what it sees
(:func:`sees_area`, :func:`sees_alert`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Literal, TypeGuard, get_args

from core.area import Area

Role = Literal["admin", "supervisor", "operator", "department", "investigator", "viewer"]
ROLES: tuple[Role, ...] = get_args(Role)

Permission = Literal[
    "cameras:read",
    "cameras:configure",  # zones, rules and motion gate of a camera (the console's editor)
    "cameras:manage",  # the registry: add, edit, disable, move, delete, import, ONVIF probe
    "areas:manage",  # the area tree: add, rename, delete townships, villages, grids
    "alerts:read",
    "evidence:read",
    "alerts:handle",  # acknowledge, dispatch, start, resolve, false_alarm
    "alerts:reopen",
    "evidence:export",
    "routing:read",
    "routing:write",
    "users:manage",
    "audit:read",
    "dispatch:manage",  # dead letters: list, retry, discard
]
PERMISSIONS: tuple[Permission, ...] = get_args(Permission)

Via = Literal["token", "api_key", "session"]

_READ: frozenset[Permission] = frozenset({"cameras:read", "alerts:read"})
_EVIDENCE: frozenset[Permission] = _READ | {"evidence:read"}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    "admin": frozenset(PERMISSIONS),
    "supervisor": frozenset(PERMISSIONS) - {"users:manage"},
    "operator": _EVIDENCE | {"alerts:handle", "routing:read"},
    "department": _EVIDENCE | {"alerts:handle"},
    "investigator": _EVIDENCE | {"evidence:export"},
    "viewer": _READ,
}

#: Alert actions that need ``alerts:handle``; ``reopen`` needs ``alerts:reopen``.
HANDLE_ACTIONS = frozenset({"acknowledge", "dispatch", "start", "resolve", "false_alarm"})
REOPEN_ACTION = "reopen"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request.

    ``area`` empty means the whole county; ``via`` says how it authenticated
    (login token, API key or the web console's session cookie).
    """

    username: str
    role: Role
    area: Area
    department_id: str | None = None
    via: Via = "token"


def is_role(value: str) -> TypeGuard[Role]:
    """Whether ``value`` names a role (stored roles are plain strings)."""
    return value in ROLES


def is_permission(value: str) -> TypeGuard[Permission]:
    return value in PERMISSIONS


def can(principal: Principal, permission: Permission) -> bool:
    """Whether the principal's role grants ``permission``."""
    return permission in ROLE_PERMISSIONS.get(principal.role, frozenset())


def sees_area(principal: Principal, area: Area) -> bool:
    """Whether a camera (or anything placed) in ``area`` is within the principal's scope."""
    if principal.role == "admin":
        return True
    return principal.area.contains(area)


def sees_alert(
    principal: Principal, area: Area, departments: Collection[str], assignee: str | None
) -> bool:
    """Whether the principal may see an alert.

    ``departments``: every department the alert was routed, dispatched or escalated
    to. A department user sees its department's alerts and those assigned to it,
    wherever they are (a department's work is not bounded by the area of its
    account); everyone else sees the alerts placed inside their area.
    """
    if principal.role == "admin":
        return True
    if principal.department_id is not None:
        return principal.department_id in departments or (
            assignee is not None and assignee == principal.username
        )
    return principal.area.contains(area)


#: The area of a principal that sees no camera, track or analytics at all: no camera is
#: ever placed there (``∅`` is not a county name), so every area check and every SQL
#: filter by area path refuses everything without a special case.
NO_AREA = Area(county="\u2205")

#: Roles for which an account without an area means the whole county (the centre's
#: staff). A ``department`` account without an area sees the areas its department
#: serves, never the whole county.
COUNTY_ROLES: frozenset[Role] = frozenset({"admin", "supervisor", "operator", "investigator",
                                           "viewer"})  # fmt: skip


def scoped_principal(
    principal: Principal, served: Callable[[str], Collection[Area]]
) -> Principal:
    """The one rule of scope: the principal with the area it really sees.

    Applied once per request (``api.auth.current_principal``), so every camera, live
    video, snapshot, overlay, analytics, track and statistics check that reads
    ``principal.area`` (:func:`sees_area`, the SQL filters by area path) follows it.

    * an account with an area keeps it;
    * an account without an area is the whole county only for :data:`COUNTY_ROLES`;
    * a ``department`` account without an area sees the area its department serves
      (``served(department_id)``) when that is one area; a department serving several
      areas, an unknown department or none: :data:`NO_AREA` (give the account an area).

    Alerts of a department account are still its department's and its own, wherever
    they are (:func:`sees_alert`).
    """
    if principal.area.path() or principal.role in COUNTY_ROLES:
        return principal
    areas = list(served(principal.department_id)) if principal.department_id else []
    if len(areas) == 1 and areas[0].path():
        return replace(principal, area=areas[0])
    return replace(principal, area=NO_AREA)


def county_wide_problem(role: str, area: Area, county_wide: bool) -> str | None:
    """Why an account with this role and area cannot be created (or changed) so, or None.

    An account without an area sees the whole county (:data:`COUNTY_ROLES`): that must be
    asked for explicitly (``county_wide``), never the result of a forgotten field. A
    ``department`` account without an area sees its department's areas, never the county.
    """
    if area.path():
        if county_wide:
            return "county_wide: true contradicts the area given (leave the area empty)"
        return None
    if role not in COUNTY_ROLES:
        if county_wide:
            return f"role {role!r} cannot see the whole county: give it an area"
        return None
    if not county_wide:
        return (
            "a user without an area sees the whole county: confirm with county_wide: true, "
            "or give an area"
        )
    return None


def permission_for_action(action: str) -> Permission:
    """The permission an alert action needs; unknown actions are a programming error."""
    if action == REOPEN_ACTION:
        return "alerts:reopen"
    if action in HANDLE_ACTIONS:
        return "alerts:handle"
    known = ", ".join(sorted(HANDLE_ACTIONS | {REOPEN_ACTION}))
    raise ValueError(f"unknown alert action {action!r} (known: {known})")


def may_handle(
    principal: Principal,
    action: str,
    departments: Collection[str],
    assignee: str | None,
    area: Area,
) -> bool:
    """Whether the principal may apply ``action`` to an alert: permission and scope."""
    return can(principal, permission_for_action(action)) and sees_alert(
        principal, area, departments, assignee
    )
