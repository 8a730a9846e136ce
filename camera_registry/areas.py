"""The area tree edited in the console: townships, villages and grids added, renamed and
deleted through the API (``/api/areas``), stored in the database next to the nodes of the
config file's ``areas:`` (which stay the file's: read-only here).

A node's identity is its path (county / township / village / grid): cameras, users,
departments and alerts refer to it. Renaming changes its display name (and code), never
the path; a node is deleted only when nothing is placed in it or below it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import Float, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.area import LEVELS, Area
from core.db import Base

#: Digits of a GB/T 2260 (and GB/T 10114 below the county) code by level: a county
#: 6 (province, city, county), a township 9, a village 12; a grid has no national code:
#: a local one of 13 to 20 digits that starts with its village's.
CODE_DIGITS = {"county": (6, 6), "township": (9, 9), "village": (12, 12), "grid": (13, 20)}


class AreaRecord(Base):
    __tablename__ = "area_nodes"

    path: Mapped[str] = mapped_column(String(300), primary_key=True)  # 示例县/城关镇
    county: Mapped[str] = mapped_column(String(64))
    township: Mapped[str | None] = mapped_column(String(64))
    village: Mapped[str | None] = mapped_column(String(64))
    grid: Mapped[str | None] = mapped_column(String(64))
    code: Mapped[str | None] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    updated_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    updated_at: Mapped[float] = mapped_column(Float, default=time.time)

    def area(self) -> Area:
        return Area(county=self.county, township=self.township, village=self.village,
                    grid=self.grid)  # fmt: skip


def path_key(area: Area) -> str:
    return "/".join(area.path())


def code_problem(area: Area, code: str | None, parent_code: str | None) -> str | None:
    """Why ``code`` cannot be the code of ``area`` (its parent's code ``parent_code``),
    or None."""
    if code is None:
        return None
    level = area.level
    assert level is not None
    low, high = CODE_DIGITS[level]
    if not code.isdigit() or not low <= len(code) <= high or not code.isascii():
        digits = f"{low}" if low == high else f"{low}-{high}"
        return f"code: a {level} code has {digits} digits (GB/T 2260), got {code!r}"
    if parent_code and not code.startswith(parent_code):
        return f"code: {code!r} does not start with its parent's code {parent_code!r}"
    return None


def list_area_records(session: Session) -> list[AreaRecord]:
    return list(session.execute(select(AreaRecord).order_by(AreaRecord.path)).scalars())


def parent_of(area: Area) -> Area | None:
    """The area one level up (None for a county)."""
    path = area.path()
    if len(path) <= 1:
        return None
    return Area(**dict(zip(LEVELS, path[:-1], strict=False)))


def add_area(
    session: Session, area: Area, *, code: str | None, name: str, actor: str
) -> AreaRecord:
    record = AreaRecord(path=path_key(area), county=area.county, township=area.township,
                        village=area.village, grid=area.grid, code=code,
                        name=name or area.path()[-1], updated_by=actor)  # fmt: skip
    session.add(record)
    return record


def children(nodes: Iterable[Area], area: Area) -> list[Area]:
    """The nodes strictly below ``area``."""
    depth = len(area.path())
    return [n for n in nodes if len(n.path()) > depth and area.contains(n)]
