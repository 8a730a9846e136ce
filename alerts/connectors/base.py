"""The connector interface: one message in, one :class:`Result` out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Message:
    """One outbox row as sent: its body is frozen when the message was queued."""

    row_id: int
    alert_id: str
    target: str
    event: str
    seq: int
    idempotency_key: str
    body: bytes
    attempts: int = 0
    _data: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def data(self) -> dict[str, Any]:
        """The body as a dict (``event``, ``sequence``, ``alert``, maybe ``change``)."""
        if not self._data:
            self._data.update(json.loads(self.body))
        return self._data


@dataclass(frozen=True)
class Result:
    """A target's answer. ``retryable`` False: sending again cannot help (dead letter)."""

    ok: bool
    retryable: bool = True
    status: int | None = None
    error: str | None = None


OK = Result(ok=True)


class Connector(Protocol):
    """Sends messages to one target. ``send`` is called from several threads at once
    (the target's ``concurrency``) and must not raise."""

    def send(self, message: Message) -> Result: ...

    def close(self) -> None: ...
