"""Builds the domain :class:`Router` from configuration models (areas, departments,
dispatch targets, routing rules, escalation defaults)."""

from __future__ import annotations

from alerts.config import DepartmentConfig, DispatchTarget, EscalationConfig, RoutingRuleConfig
from alerts.domain.routing import Department, Router, RoutingRule, Target
from core.area import Area


def to_rule(cfg: RoutingRuleConfig) -> RoutingRule:
    return RoutingRule(
        name=cfg.name,
        types=frozenset(cfg.types) if cfg.types is not None else None,
        area=cfg.area,
        min_severity=cfg.min_severity,
        schedule=tuple(cfg.schedule or ()),
        departments=tuple(cfg.departments),
        targets=tuple(cfg.targets),
        ack_deadline_s=cfg.ack_deadline_s,
        resolve_deadline_s=cfg.resolve_deadline_s,
        enabled=cfg.enabled,
    )


def to_department(cfg: DepartmentConfig) -> Department:
    return Department(
        id=cfg.id, name=cfg.name, kind=cfg.kind, level=cfg.level,
        areas=tuple(cfg.areas) or (Area(),), targets=tuple(cfg.targets),
    )  # fmt: skip


def make_router(
    departments: list[DepartmentConfig],
    targets: list[DispatchTarget],
    rules: list[RoutingRuleConfig],
    escalation: EscalationConfig,
) -> Router:
    return Router(
        rules=[to_rule(r) for r in rules],
        departments={d.id: to_department(d) for d in departments},
        targets={
            t.name: Target(t.name, t.scope, frozenset(t.types) if t.types is not None else None)
            for t in targets
            if t.enabled
        },
        default_ack_deadline_s=escalation.ack_deadline_s,
        default_resolve_deadline_s=escalation.resolve_deadline_s,
    )
