"""Departments and routing rules (rules: from the file, or added here); the area tree is
``api/routers/areas.py``."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy.orm import Session

from accounts.domain import Principal, sees_area
from alerts.adapters.sql import delete_routing_rule, routing_rule_configs, save_routing_rule
from alerts.config import RoutingRuleConfig
from api.auth import audit_request
from api.deps import AlertsDep, RoutingReader, RoutingWriter, SessionDep
from api.schemas import DepartmentOut, RoutingRuleOut
from core.area import Area

router = APIRouter(prefix="/api", tags=["routing"])



@router.get("/departments", response_model=list[DepartmentOut], summary="Departments")
def get_departments(services: AlertsDep, _: RoutingReader) -> list[DepartmentOut]:
    return [
        DepartmentOut(
            id=d.id,
            name=d.name,
            kind=d.kind,
            level=d.level,
            areas=list(d.areas),
            targets=list(d.targets),
        )  # fmt: skip
        for d in services.router().departments.values()
    ]


def rule_out(origin: str, data: dict[str, object]) -> RoutingRuleOut:
    cfg = RoutingRuleConfig.model_validate(data)
    return RoutingRuleOut(origin=origin, **cfg.model_dump(mode="json"))  # type: ignore[arg-type]


@router.get("/routing", response_model=list[RoutingRuleOut], summary="Routing rules")
def get_routing(session: SessionDep, _: RoutingReader) -> list[RoutingRuleOut]:
    return [rule_out(origin, data) for origin, data in routing_rule_configs(session)]


def check_rule_scope(
    session: Session, principal: Principal, name: str, new_area: Area | None = None
) -> None:
    """403 unless the rule (as stored, and as it would become) lies in the caller's area:
    a township's supervisor changes its township's rules, not another's or the county's."""
    stored = {n: data for _, data in routing_rule_configs(session) if (n := str(data["name"]))}
    areas = [Area.model_validate(stored[name].get("area") or {})] if name in stored else []
    if new_area is not None:
        areas.append(new_area)
    outside = [a for a in areas if not sees_area(principal, a)]
    if outside:
        raise HTTPException(403, f"routing rule {name!r} covers {outside[0].label()}, outside "
                                 f"your area {principal.area.label()}")  # fmt: skip


@router.put(
    "/routing/{name}",
    response_model=RoutingRuleOut,
    responses={403: {"description": "the rule's area is outside yours"},
               422: {"description": "invalid rule, or unknown department / target"}},
    summary="Create or replace a routing rule",
)
def put_routing(
    name: str,
    rule: RoutingRuleConfig,
    request: Request,
    session: SessionDep,
    services: AlertsDep,
    principal: RoutingWriter,
) -> RoutingRuleOut:
    if rule.name != name:
        raise HTTPException(422, f"body name {rule.name!r} differs from the path's {name!r}")
    check_rule_scope(session, principal, name, rule.area)
    known = services.router()
    unknown = sorted(set(rule.departments) - set(known.departments))
    if unknown:
        raise HTTPException(422, f"unknown department(s) {unknown}")
    unknown = sorted(set(rule.targets) - set(known.targets))
    if unknown:
        raise HTTPException(422, f"unknown or disabled dispatch target(s) {unknown}")
    data = rule.model_dump(mode="json")
    save_routing_rule(session, name, data, "api")
    audit_request(request, session, principal, "routing_put", f"routing:{name}")
    session.commit()
    services.reload_routing()
    return rule_out("api", data)


@router.delete("/routing/{name}", status_code=204, summary="Delete a routing rule",
               responses={403: {"description": "the rule's area is outside yours"},
                          404: {"description": "no such rule"}})
def delete_routing(
    name: str,
    request: Request,
    session: SessionDep,
    services: AlertsDep,
    principal: RoutingWriter,
) -> None:
    check_rule_scope(session, principal, name)
    if not delete_routing_rule(session, name):
        raise HTTPException(404, f"no routing rule {name!r}")
    audit_request(request, session, principal, "routing_delete", f"routing:{name}")
    session.commit()
    services.reload_routing()
