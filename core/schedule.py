"""Weekly time windows (rule schedules, routing windows), in a given time zone."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import Field, field_validator

from core.model import StrictModel

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


class ScheduleWindow(StrictModel):
    """A weekly time window; ``end`` before ``start`` runs past midnight."""

    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS))
    start: str = "00:00"
    end: str = "24:00"

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError("must be HH:MM (00:00 to 24:00)")
        return v

    def minutes(self) -> tuple[int, int]:
        def conv(v: str) -> int:
            h, m = v.split(":")
            return int(h) * 60 + int(m)

        return conv(self.start), conv(self.end)


def in_schedule(windows: list[ScheduleWindow] | None, when: dt.datetime) -> bool:
    """Whether local time ``when`` falls in any weekly window (None or empty: always)."""
    if not windows:
        return True
    minute = when.hour * 60 + when.minute
    day = when.weekday()
    for w in windows:
        start, end = w.minutes()
        days = {WEEKDAYS.index(d) for d in w.days}
        if start <= end:
            if day in days and start <= minute < end:
                return True
        elif (day in days and minute >= start) or ((day - 1) % 7 in days and minute < end):
            return True  # a window past midnight belongs to the day it starts
    return False
