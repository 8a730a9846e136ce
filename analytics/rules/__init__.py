"""Rules turn tracked detections into events."""

from __future__ import annotations

from analytics.config import RuleConfig
from analytics.rules.dwell import DwellRule, FrameContext
from analytics.zones import Zone

__all__ = ["DwellRule", "FrameContext", "build_rule"]


def build_rule(cfg: RuleConfig, zone: Zone) -> DwellRule:
    """The rule object for a rule config (all rule types so far measure dwell)."""
    return DwellRule(cfg, zone)
