"""The login throttle's failure counts in the database (table ``login_failures``): every
API process of a distributed deployment sees the same counts, and a restart forgets
nothing. An adapter of :class:`accounts.throttle.FailureStore`."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from sqlalchemy import case, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from accounts.store import THROTTLE_KEY_MAX, LoginFailureRecord
from accounts.throttle import Failures


def _column_key(key: str) -> str:
    """The key as stored: a key longer than the column (a very long login name) by its
    SHA-256, so that it is still counted."""
    if len(key) <= THROTTLE_KEY_MAX:
        return key
    kind = key.split(":", 1)[0]
    return f"{kind}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


class SqlFailures:
    """Failure counts in ``login_failures``; rows older than the oldest ``forget_before``
    are deleted as failures are added (the table stays small)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def load(self, keys: Sequence[str]) -> Mapping[str, Failures]:
        stored = {_column_key(k): k for k in keys}
        with self.sessions() as session:
            rows = session.scalars(
                select(LoginFailureRecord).where(LoginFailureRecord.key.in_(stored))
            ).all()
            return {stored[r.key]: Failures(r.count, r.last_at) for r in rows}

    def add(self, keys: Sequence[str], now: float, forget_before: Mapping[str, float]) -> None:
        for key in keys:
            for _attempt in range(3):  # two processes inserting one new key: the loser updates
                try:
                    self._add_one(_column_key(key), now, forget_before[key])
                    break
                except IntegrityError:
                    continue
        if forget_before:
            with self.sessions.begin() as session:
                session.execute(
                    delete(LoginFailureRecord).where(
                        LoginFailureRecord.last_at < min(forget_before.values())
                    )
                )

    def _add_one(self, key: str, now: float, forget_before: float) -> None:
        # One UPDATE: concurrent failures of one key each count (no read-modify-write).
        with self.sessions.begin() as session:
            done = session.execute(
                update(LoginFailureRecord)
                .where(LoginFailureRecord.key == key)
                .values(
                    count=case(
                        (LoginFailureRecord.last_at < forget_before, 1),
                        else_=LoginFailureRecord.count + 1,
                    ),
                    last_at=now,
                )
            )
            if done.rowcount == 0:  # type: ignore[attr-defined]
                session.add(LoginFailureRecord(key=key, count=1, last_at=now))

    def clear(self, key: str) -> None:
        with self.sessions.begin() as session:
            session.execute(
                delete(LoginFailureRecord).where(LoginFailureRecord.key == _column_key(key))
            )
