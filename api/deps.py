"""FastAPI dependencies: database sessions and the services the routes call.

The app holds no hub: ``app.state.sessions`` is a SQLAlchemy session factory and
``app.state.services`` the :class:`api.ports.HubServices` the composition layer
hands in (live status, snapshots, alert commands).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from api.ports import HubServices


def get_services(request: Request) -> HubServices:
    return request.app.state.services  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    """A session for one request (the route commits what it changes)."""
    with request.app.state.sessions() as session:
        yield session
