"""Login throttling: exponential back-off and temporary lockout per account and per
client address. Pure (no I/O, an injected clock): the API asks :meth:`wait_s` before
verifying a password and reports each result.

Per key (``account:<name>`` or ``address:<ip>``): the first ``free`` failures cost
nothing; each further one doubles the wait before the next attempt (``base_s``,
2 × ``base_s``, ... at most ``max_s``); ``lockout_after`` failures lock the key for
``lockout_s``. A success clears the account's count (not the address's: one valid
login must not reset a password-spraying address). Failures older than ``forget_s``
are forgotten. The table is bounded (``max_keys``, oldest dropped first).

Where the counts live is a :class:`FailureStore`: :class:`MemoryFailures` (one process)
or ``accounts.store.SqlFailures`` (the database: shared by every API process of a
distributed deployment and kept across restarts; the hub uses it). The clock is then
wall time, the same in every process.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ThrottlePolicy:
    free: int
    base_s: float
    max_s: float
    lockout_after: int
    lockout_s: float
    forget_s: float = 3600.0


#: An account: 3 free tries, then 1 s, 2 s, 4 s ... 60 s; locked 15 minutes after 10.
ACCOUNT_POLICY = ThrottlePolicy(free=3, base_s=1.0, max_s=60.0, lockout_after=10,
                                lockout_s=900.0)  # fmt: skip
#: An address (an office behind one NAT address logs in often): 10 free tries, then
#: back-off; locked 15 minutes after 50 failures.
ADDRESS_POLICY = ThrottlePolicy(free=10, base_s=1.0, max_s=60.0, lockout_after=50,
                                lockout_s=900.0)  # fmt: skip


@dataclass
class Failures:
    """Failed attempts of one key: how many, the last one's time."""

    count: int
    last: float


class FailureStore(Protocol):
    """Where the failure counts live (see the module docstring)."""

    def load(self, keys: Sequence[str]) -> Mapping[str, Failures]:
        """The counts of those of ``keys`` that have any."""
        ...

    def add(self, keys: Sequence[str], now: float, forget_before: Mapping[str, float]) -> None:
        """One more failure of each key at ``now``; a key whose last failure is older
        than its ``forget_before`` starts again at 1."""
        ...

    def clear(self, key: str) -> None: ...


class MemoryFailures:
    """The counts in this process, bounded (``max_keys``, oldest dropped first)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._failures: OrderedDict[str, Failures] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, keys: Sequence[str]) -> Mapping[str, Failures]:
        with self._lock:
            return {k: Failures(e.count, e.last) for k in keys if (e := self._failures.get(k))}

    def add(self, keys: Sequence[str], now: float, forget_before: Mapping[str, float]) -> None:
        with self._lock:
            for key in keys:
                entry = self._failures.get(key)
                if entry is None or entry.last < forget_before[key]:
                    entry = Failures(0, now)
                entry.count += 1
                entry.last = now
                self._failures[key] = entry
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def clear(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)


@dataclass(frozen=True)
class Verdict:
    """Whether an attempt may be made now; if not, for how long and why."""

    wait_s: float
    locked: bool
    key: str | None = None

    @property
    def allowed(self) -> bool:
        return self.wait_s <= 0


class LoginThrottle:
    """Failed logins per key, thread-safe; see the module docstring. With a shared
    ``store`` the calls do I/O: an async caller runs them in a thread."""

    def __init__(
        self,
        account: ThrottlePolicy = ACCOUNT_POLICY,
        address: ThrottlePolicy = ADDRESS_POLICY,
        *,
        clock: Callable[[], float] = time.time,
        max_keys: int = 100_000,
        store: FailureStore | None = None,
    ) -> None:
        self.policies = {"account": account, "address": address}
        self.clock = clock
        self.store: FailureStore = store if store is not None else MemoryFailures(max_keys)

    @staticmethod
    def keys(username: str, address: str | None) -> list[str]:
        out = [f"account:{username.casefold()}"]
        if address:
            out.append(f"address:{address}")
        return out

    def verdict(self, keys: Sequence[str]) -> Verdict:
        """The longest wait any of ``keys`` imposes now (0: go ahead)."""
        now = self.clock()
        worst = Verdict(0.0, False)
        for key, entry in self.store.load(keys).items():
            if now - entry.last > self._policy(key).forget_s:
                continue
            wait, locked = self._wait(key, entry, now)
            if wait > worst.wait_s:
                worst = Verdict(wait, locked, key)
        return worst

    def failed(self, keys: Sequence[str]) -> None:
        now = self.clock()
        self.store.add(keys, now, {k: now - self._policy(k).forget_s for k in keys})

    def succeeded(self, username: str) -> None:
        self.store.clear(f"account:{username.casefold()}")

    def failures(self, key: str) -> int:
        entry = self.store.load([key]).get(key)
        if entry is None or self.clock() - entry.last > self._policy(key).forget_s:
            return 0
        return entry.count

    # -- internals ---------------------------------------------------------------------

    def _policy(self, key: str) -> ThrottlePolicy:
        return self.policies[key.split(":", 1)[0]]

    def _wait(self, key: str, entry: Failures, now: float) -> tuple[float, bool]:
        policy = self._policy(key)
        if entry.count >= policy.lockout_after:
            return max(0.0, entry.last + policy.lockout_s - now), True
        if entry.count < policy.free:
            return 0.0, False
        delay = min(policy.max_s, policy.base_s * 2 ** (entry.count - policy.free))
        return max(0.0, entry.last + delay - now), False
