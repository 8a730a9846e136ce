"""FastAPI dependencies: the hub and database sessions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from shaobing.hub import Hub


def get_hub(request: Request) -> Hub:
    return request.app.state.hub  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.hub.sessions() as session:
        yield session
