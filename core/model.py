"""The one base class of every configuration and API model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors (a misspelt key in a config file must not be ignored);
    NaN and infinity are not numbers a setting or a zone point may take."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# Storage limits that user-given names must respect: a name longer than its column is a
# config error at load time, never an alert lost at insert time on PostgreSQL.
NAME_MAX = 100  # rule, zone, routing rule, department names
ID_MAX = 64  # camera, department, target ids
AREA_PART_MAX = 64  # county / township / village / grid
