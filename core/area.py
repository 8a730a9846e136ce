"""The administrative area: county → township → village → grid (one type everywhere).

An area is a path from the county down; a shorter path is a larger area. Scope
checks compare paths: ``{county: A, township: B}`` contains every camera, alert
and department whose path starts with ``A / B``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.model import AREA_PART_MAX, StrictModel

AreaLevel = Literal["county", "township", "village", "grid"]
LEVELS: tuple[AreaLevel, ...] = ("county", "township", "village", "grid")


class Area(StrictModel):
    """Administrative area, for routing and scope (county → township → village → grid)."""

    county: str | None = Field(None, max_length=AREA_PART_MAX)
    township: str | None = Field(None, max_length=AREA_PART_MAX)
    village: str | None = Field(None, max_length=AREA_PART_MAX)
    grid: str | None = Field(None, max_length=AREA_PART_MAX)

    def path(self) -> tuple[str, ...]:
        """The set parts from the county down, stopping at the first unset one."""
        out: list[str] = []
        for level in LEVELS:
            value = getattr(self, level)
            if not value:
                break
            out.append(value)
        return tuple(out)

    @property
    def level(self) -> AreaLevel | None:
        """The level of the smallest part set (None: no area at all)."""
        depth = len(self.path())
        return LEVELS[depth - 1] if depth else None

    def contains(self, other: Area) -> bool:
        """Whether ``other`` lies inside this area (an empty area contains everything)."""
        mine = self.path()
        return other.path()[: len(mine)] == mine

    def up_to(self, level: AreaLevel) -> Area:
        """This area cut at ``level`` (e.g. a grid's township)."""
        keep = LEVELS[: LEVELS.index(level) + 1]
        return Area(**{lv: getattr(self, lv) for lv in keep})

    def label(self) -> str:
        return " / ".join(self.path()) or "(all)"
