"""Login throttling: exponential back-off and temporary lockout per account and per
client address. Pure (no I/O, an injected clock): the API asks :meth:`wait_s` before
verifying a password and reports each result.

Per key (``account:<name>`` or ``address:<ip>``): the first ``free`` failures cost
nothing; each further one doubles the wait before the next attempt (``base_s``,
2 × ``base_s``, ... at most ``max_s``); ``lockout_after`` failures lock the key for
``lockout_s``. A success clears the account's count (not the address's: one valid
login must not reset a password-spraying address). Failures older than ``forget_s``
are forgotten. The table is bounded (``max_keys``, oldest dropped first).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass


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
class _Failures:
    count: int
    last: float


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
    """Failed logins per key, thread-safe; see the module docstring."""

    def __init__(
        self,
        account: ThrottlePolicy = ACCOUNT_POLICY,
        address: ThrottlePolicy = ADDRESS_POLICY,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.policies = {"account": account, "address": address}
        self.clock = clock
        self.max_keys = max_keys
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._lock = threading.Lock()

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
        with self._lock:
            for key in keys:
                entry = self._entry(key, now)
                if entry is None:
                    continue
                wait, locked = self._wait(key, entry, now)
                if wait > worst.wait_s:
                    worst = Verdict(wait, locked, key)
        return worst

    def failed(self, keys: Sequence[str]) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                entry = self._entry(key, now) or _Failures(0, now)
                entry.count += 1
                entry.last = now
                self._failures[key] = entry
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(f"account:{username.casefold()}", None)

    def failures(self, key: str) -> int:
        with self._lock:
            entry = self._entry(key, self.clock())
            return 0 if entry is None else entry.count

    # -- internals ---------------------------------------------------------------------

    def _policy(self, key: str) -> ThrottlePolicy:
        return self.policies[key.split(":", 1)[0]]

    def _entry(self, key: str, now: float) -> _Failures | None:
        entry = self._failures.get(key)
        if entry is not None and now - entry.last > self._policy(key).forget_s:
            del self._failures[key]
            return None
        return entry

    def _wait(self, key: str, entry: _Failures, now: float) -> tuple[float, bool]:
        policy = self._policy(key)
        if entry.count >= policy.lockout_after:
            return max(0.0, entry.last + policy.lockout_s - now), True
        if entry.count < policy.free:
            return 0.0, False
        delay = min(policy.max_s, policy.base_s * 2 ** (entry.count - policy.free))
        return max(0.0, entry.last + delay - now), False
