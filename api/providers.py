"""What the app holds, as FastAPI dependencies: database sessions and the services.

The app holds no hub: ``app.state.sessions`` is a SQLAlchemy session factory and
``app.state.services`` the object the composition layer hands in
(:class:`shaobing.services.ApiServices`), which implements the narrow ports of
:mod:`api.ports`. Routes take these through the aliases of :mod:`api.deps`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from api.ports import HubServices


def get_services(request: Request) -> HubServices:
    return request.app.state.services  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    """A session for one request (the route commits what it changes)."""
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
