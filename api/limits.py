"""Limits that keep unauthenticated callers from exhausting the hub.

* :class:`BodyLimit`: a request body larger than its route's limit is answered 413
  before it is read whole (``Content-Length`` checked first; a chunked body is
  counted as it arrives). Small for the unauthenticated login and feedback routes,
  ``api.max_body_kb`` for the rest.
* :class:`PasswordSlots`: at most a few argon2 verifications at once (each takes
  64 MiB and tens of milliseconds of CPU): further logins wait without holding a
  worker thread, and get 503 after ``wait_s``; the rest of the API keeps answering.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from accounts.throttle import LoginThrottle

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Bodies of the routes anyone may call (login, signed feedback): 16 KiB.
SMALL_BODY = 16 * 1024
#: Every other route, unless ``api.max_body_kb`` says otherwise: 1 MiB (a camera's
#: zones and rules of 10,000 points fit in a quarter of it).
DEFAULT_BODY = 1024 * 1024
SMALL_BODY_PATHS = ("/api/auth/login", "/api/feedback")


class BodyLimit:
    """ASGI middleware answering 413 to a body over the route's limit."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_BODY,
                 small_bytes: int = SMALL_BODY) -> None:  # fmt: skip
        self.app = app
        self.max_bytes = max_bytes
        self.small_bytes = small_bytes

    def limit_for(self, path: str) -> int:
        return self.small_bytes if path.rstrip("/") in SMALL_BODY_PATHS else self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                await _answer(send, 400, "invalid Content-Length")
                return
            if too_large:
                await _answer(send, 413, f"request body over {limit} bytes")
                return
        seen = 0
        answered = False  # the 413 went out: whatever the app answers is dropped

        async def counted() -> Message:
            nonlocal seen, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    answered = True
                    await _answer(send, 413, f"request body over {limit} bytes")
                    # The app sees the client gone (a route reading the body stops).
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not answered:
                await send(message)

        try:
            await self.app(scope, counted, guarded_send)
        except Exception:
            if not answered:
                raise


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def default_password_slots() -> int:
    """Half the CPUs, at least 1, at most 4: 4 × 64 MiB of argon2 memory at most."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


class PasswordSlots:
    """Bound the argon2 work running at once; waiting costs no thread."""

    def __init__(self, slots: int | None = None, wait_s: float = 10.0) -> None:
        self.slots = slots or default_password_slots()
        self.wait_s = wait_s
        self._semaphore: asyncio.Semaphore | None = None
        self.busy_refusals = 0

    def _sem(self) -> asyncio.Semaphore:
        if self._semaphore is None:  # made on the server's loop, at the first login
            self._semaphore = asyncio.Semaphore(self.slots)
        return self._semaphore

    async def run(self, work: Callable[[], Any]) -> Any:
        """Run ``work`` (blocking) in a thread once a slot is free; TimeoutError if
        none frees within ``wait_s``."""
        from starlette.concurrency import run_in_threadpool

        sem = self._sem()
        try:
            await asyncio.wait_for(sem.acquire(), self.wait_s)
        except TimeoutError:
            self.busy_refusals += 1
            raise
        try:
            return await run_in_threadpool(work)
        finally:
            sem.release()


def login_guards(app: Any) -> tuple[LoginThrottle, PasswordSlots]:
    """The app's login throttle and password slots (made at the first login of an app
    assembled without ``create_app``)."""
    state = app.state
    if getattr(state, "login_throttle", None) is None:
        state.login_throttle = LoginThrottle()
    if getattr(state, "password_slots", None) is None:
        state.password_slots = PasswordSlots()
    return state.login_throttle, state.password_slots
