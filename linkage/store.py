"""Linkage rules in the database: those of the config file (origin ``config``, made the
file's at every start) and those added through the API (``api``), and the cache every
process that runs a linkage engine reads them through (changes apply without a restart,
on every host: the cache re-reads the table when older than a few seconds).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from sqlalchemy import Float, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from core.db import Base
from linkage.config import LinkageRule

log = logging.getLogger(__name__)

ORIGINS = ("config", "api")


class LinkageRuleRecord(Base):
    """A linkage rule: from the config file (origin ``config``) or the API (``api``)."""

    __tablename__ = "linkage_rules"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    origin: Mapped[str] = mapped_column(String(16), default="config")
    position: Mapped[float] = mapped_column(Float, default=0.0)  # rules run in this order
    config_json: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[str] = mapped_column(String(64), default="config")


def linkage_rule_rows(session: Session) -> list[LinkageRuleRecord]:
    """Every stored rule, in the order they run (the file's first, in file order)."""
    query = select(LinkageRuleRecord).order_by(LinkageRuleRecord.position, LinkageRuleRecord.name)
    return list(session.execute(query).scalars())


def get_linkage_rule(session: Session, name: str) -> LinkageRuleRecord | None:
    return session.get(LinkageRuleRecord, name)


def save_linkage_rule(
    session: Session, rule: LinkageRule, origin: str, actor: str, position: float | None = None
) -> LinkageRuleRecord:
    """Create or replace the rule ``rule.name`` (a new API rule runs after the others)."""
    record = session.get(LinkageRuleRecord, rule.name)
    if record is None:
        if position is None:
            rows = linkage_rule_rows(session)
            position = max((r.position for r in rows), default=0.0) + 1.0
        record = LinkageRuleRecord(name=rule.name, position=position)
        session.add(record)
    elif position is not None:
        record.position = position
    record.origin = origin
    record.config_json = json.dumps(rule.model_dump(mode="json"), ensure_ascii=False)
    record.updated_at = time.time()
    record.updated_by = actor[:64]
    return record


def delete_linkage_rule(session: Session, name: str) -> bool:
    record = session.get(LinkageRuleRecord, name)
    if record is None:
        return False
    session.delete(record)
    return True


def sync_config_linkage(session: Session, rules: list[LinkageRule]) -> None:
    """Make the stored ``config`` rules those of the file (in its order, first); rules
    added by API stay, after them (a file rule replaces an API rule of the same name)."""
    names = {r.name for r in rules}
    for record in linkage_rule_rows(session):
        if record.origin == "config" and record.name not in names:
            session.delete(record)
    for i, rule in enumerate(rules):
        save_linkage_rule(session, rule, "config", "config", position=float(i - len(rules)))


def parse_rule(record: LinkageRuleRecord) -> LinkageRule:
    """The stored rule (ValueError when this version cannot read it)."""
    data: dict[str, Any] = json.loads(record.config_json)
    return LinkageRule.model_validate(data)


def load_rules(sessions: sessionmaker[Session]) -> list[LinkageRule]:
    """Every readable stored rule, in order; one that cannot be read is logged and left
    out (the others still run)."""
    with sessions() as session:
        rows = linkage_rule_rows(session)
    out: list[LinkageRule] = []
    for record in rows:
        try:
            out.append(parse_rule(record))
        except ValueError as exc:
            log.error("linkage rule %s (table linkage_rules) is invalid, skipped: %s",
                      record.name, exc)  # fmt: skip
    return out


class RuleCache:
    """The rules, re-read from the database when older than ``ttl_s`` or after
    :meth:`reload`; the last rules read stay in force while the database is away."""

    def __init__(self, sessions: sessionmaker[Session], ttl_s: float = 3.0) -> None:
        self.sessions = sessions
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._rules: list[LinkageRule] = []
        self._at = float("-inf")

    def __call__(self) -> list[LinkageRule]:
        with self._lock:
            if time.monotonic() - self._at > self.ttl_s:
                try:
                    self._rules = load_rules(self.sessions)
                except Exception:  # noqa: BLE001 - the database away: the last rules
                    log.warning("linkage rules not re-read; using the last ones", exc_info=True)
                self._at = time.monotonic()
            return list(self._rules)

    def reload(self) -> None:
        with self._lock:
            self._at = float("-inf")
