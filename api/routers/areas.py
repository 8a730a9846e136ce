"""The area tree edited in the console (``areas:manage``): add a township, village or grid
with its GB/T 2260 code, rename it, delete it. ``GET /api/areas`` (routing.py) lists the
config file's nodes and these.

Scope: a caller limited to an area edits only the nodes inside it (a township's admin
adds its villages and grids). The config file's nodes are the file's (409); a node with
nodes, cameras or users in it or below it is not deleted (409, saying what is there).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import Field
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accounts.domain import Principal, sees_area
from accounts.store import UserRecord
from alerts.config import NAME_MAX
from api.auth import audit_request
from api.deps import AreaManager, RoutingReader, ServicesDep, SessionDep, SiteDep
from api.ports import HubServices, SitePort
from api.schemas import AreaOut
from camera_registry.areas import (
    AreaRecord,
    add_area,
    children,
    code_problem,
    list_area_records,
    parent_of,
    path_key,
)
from camera_registry.store import count_by_area
from core.area import LEVELS, Area
from core.model import AREA_PART_MAX, StrictModel

router = APIRouter(prefix="/api/areas", tags=["routing"])

CODE_PATTERN = r"^[0-9]{6,20}$"


class AreaIn(Area):
    """A new node: its path (county first; the parent must exist), its GB/T 2260 code
    (county 6 digits, township 9, village 12; a grid's local code 13-20 digits, each
    starting with its parent's) and its display name (default: the last part)."""

    code: str | None = Field(None, pattern=CODE_PATTERN)
    name: str | None = Field(None, max_length=NAME_MAX)


class AreaPatch(StrictModel):
    """Rename: the display name and the code; the path (what cameras and users refer
    to) stays."""

    name: str | None = Field(None, min_length=1, max_length=NAME_MAX)
    code: str | None = Field(None, pattern=CODE_PATTERN)


def _parse_path(text: str) -> Area:
    parts = [p for p in text.split("/")]
    if (
        not 1 <= len(parts) <= len(LEVELS)
        or not all(p.strip() for p in parts)
        or any(len(p) > AREA_PART_MAX for p in parts)
    ):
        raise HTTPException(404, f"no area {text!r}")
    return Area(**dict(zip(LEVELS, parts, strict=False)))


@router.get("", response_model=list[AreaOut], summary="The area tree")
def get_areas(services: SiteDep, session: SessionDep, _: RoutingReader) -> list[AreaOut]:
    """The config file's areas, then those added in the console (the writes below)."""
    return area_tree(services, session)


def area_tree(services: SitePort, session: Session) -> list[AreaOut]:
    out = [
        AreaOut(
            **node.area().model_dump(),
            level=node.level,
            code=node.code,
            name=node.name or (node.path()[-1] if node.path() else ""),
        )  # fmt: skip
        for node in services.areas
    ]
    configured = {a.area().path() for a in services.areas}
    for record in list_area_records(session):
        area = record.area()
        if area.path() not in configured:
            out.append(AreaOut(**area.model_dump(), level=area.level, code=record.code,
                               name=record.name, origin="api"))  # fmt: skip
    return out


def _nodes(services: SitePort, session: Session) -> dict[tuple[str, ...], AreaOut]:
    return {Area(county=n.county, township=n.township, village=n.village, grid=n.grid)
            .path(): n for n in area_tree(services, session)}  # fmt: skip


def _node_out(record: AreaRecord) -> AreaOut:
    area = record.area()
    return AreaOut(**area.model_dump(), level=area.level, code=record.code, name=record.name,
                   origin="api")  # fmt: skip


def _in_scope(principal: Principal, area: Area) -> None:
    if not sees_area(principal, area):
        raise HTTPException(403, f"area {area.label()} is outside your area "
                                 f"{principal.area.label()}")  # fmt: skip


def _code_taken(nodes: dict[tuple[str, ...], AreaOut], code: str | None, own: tuple[str, ...]
                ) -> None:  # fmt: skip
    if code is None:
        return
    for path, node in nodes.items():
        if node.code == code and path != own:
            raise HTTPException(409, f"code {code} is taken by {'/'.join(path)}")


def _editable(session: Session, area: Area, principal: Principal, text: str) -> AreaRecord | None:
    """The stored node (None: none, or one of the config file); 404 outside the scope."""
    if not sees_area(principal, area):
        raise HTTPException(404, f"no area {text!r}")
    return session.get(AreaRecord, path_key(area))


def _stored(
    session: Session, services: HubServices, area: Area, principal: Principal, text: str
) -> tuple[AreaRecord, dict[tuple[str, ...], AreaOut]]:
    """The node stored in the database, which the console may change, and every node;
    409 for a node of the config file, 404 for none (or one outside the scope)."""
    record = _editable(session, area, principal, text)
    nodes = _nodes(services, session)
    if record is None:
        if area.path() in nodes:
            raise HTTPException(409, f"area {text} comes from the config file "
                                     f"{services.config_path}: change it there")  # fmt: skip
        raise HTTPException(404, f"no area {text!r}")
    return record, nodes


@router.post(
    "",
    response_model=AreaOut,
    status_code=201,
    responses={409: {"description": "the node or its code exists"}},
    summary="Add a township, village or grid (or a county) to the area tree",
)
def post_area(
    body: AreaIn, request: Request, services: SiteDep, session: SessionDep,
    principal: AreaManager,
) -> AreaOut:  # fmt: skip
    area = Area(county=body.county, township=body.township, village=body.village,
                grid=body.grid)  # fmt: skip
    path = area.path()
    if not path or len(path) != sum(1 for lv in LEVELS if getattr(area, lv)):
        raise HTTPException(422, "area: give the path from the county down, without gaps")
    _in_scope(principal, area)
    nodes = _nodes(services, session)
    if path in nodes:
        raise HTTPException(409, f"area {'/'.join(path)} exists")
    parent = parent_of(area)
    parent_node = nodes.get(parent.path()) if parent is not None else None
    if parent is not None and parent_node is None:
        raise HTTPException(422, f"area: its parent {'/'.join(parent.path())} is not in the "
                                 "tree: add it first")  # fmt: skip
    problem = code_problem(area, body.code, parent_node.code if parent_node else None)
    if problem:
        raise HTTPException(422, problem)
    _code_taken(nodes, body.code, path)
    record = add_area(session, area, code=body.code, name=body.name or "",
                      actor=principal.username)  # fmt: skip
    audit_request(request, session, principal, "area_create", f"area:{'/'.join(path)}",
                  f"code={body.code} name={record.name}")  # fmt: skip
    try:
        session.commit()
    except IntegrityError:  # added at the same moment by someone else
        raise HTTPException(409, f"area {'/'.join(path)} or code {body.code} exists") from None
    return _node_out(record)


@router.patch(
    "/{area_path:path}",
    response_model=AreaOut,
    responses={409: {"description": "a node of the config file, or the code is taken"}},
    summary="Rename a node of the area tree (display name, code)",
)
def patch_area(
    area_path: str, body: AreaPatch, request: Request, services: ServicesDep,
    session: SessionDep, principal: AreaManager,
) -> AreaOut:  # fmt: skip
    area = _parse_path(area_path)
    record, nodes = _stored(session, services, area, principal, area_path)
    if "code" in body.model_fields_set:
        parent = parent_of(area)
        parent_node = nodes.get(parent.path()) if parent is not None else None
        problem = code_problem(area, body.code, parent_node.code if parent_node else None)
        if problem:
            raise HTTPException(422, problem)
        _code_taken(nodes, body.code, area.path())
        record.code = body.code
    if body.name is not None:
        record.name = body.name
    record.updated_by, record.updated_at = principal.username, time.time()
    audit_request(request, session, principal, "area_update", f"area:{area_path}",
                  f"code={record.code} name={record.name}")  # fmt: skip
    session.commit()
    return _node_out(record)


@router.delete(
    "/{area_path:path}",
    status_code=204,
    responses={409: {"description": "a node of the config file, or something is placed in it"}},
    summary="Delete a node of the area tree (only when nothing is placed in it)",
)
def delete_area(
    area_path: str, request: Request, services: ServicesDep, session: SessionDep,
    principal: AreaManager,
) -> Response:  # fmt: skip
    area = _parse_path(area_path)
    record, nodes = _stored(session, services, area, principal, area_path)
    below = children([Area(**dict(zip(LEVELS, p, strict=False))) for p in nodes], area)
    if below:
        raise HTTPException(409, f"area {area_path} has {len(below)} area(s) below it: "
                                 "delete them first")  # fmt: skip
    cameras = sum(n for *_, n in count_by_area(session, area.path()))
    if cameras:
        raise HTTPException(409, f"area {area_path} has {cameras} camera(s): move or "
                                 "delete them first")  # fmt: skip
    users = session.execute(_users_in(area)).scalar_one()
    if users:
        raise HTTPException(409, f"area {area_path} has {users} user(s): change their area "
                                 "first")  # fmt: skip
    session.delete(record)
    audit_request(request, session, principal, "area_delete", f"area:{area_path}",
                  f"code={record.code} name={record.name}")  # fmt: skip
    session.commit()
    return Response(status_code=204)


def _users_in(area: Area) -> Select[Any]:
    stmt = select(func.count()).select_from(UserRecord)
    for level, value in zip(LEVELS, area.path(), strict=False):
        stmt = stmt.where(getattr(UserRecord, level) == value)
    return stmt
