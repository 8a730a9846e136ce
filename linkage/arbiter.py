"""Who holds a PTZ camera, and when a camera a linkage moved goes back home (pure).

* An operator's command takes the camera for ``hold_s`` after their last command: a
  second operator is refused (so two operators never fight over one camera), and a
  linkage does not move it either (the person watching comes first).
* A camera moved by a linkage returns home ``return_home_s`` later, unless an operator
  took it in between (then it stays where the operator left it).
"""

from __future__ import annotations

from dataclasses import dataclass


class PtzBusy(RuntimeError):
    """The camera is held by another operator."""

    def __init__(self, camera_id: str, holder: str, until: float) -> None:
        self.camera_id, self.holder, self.until = camera_id, holder, until
        super().__init__(f"camera {camera_id} is controlled by {holder}")


@dataclass
class _Hold:
    user: str
    until: float


class PtzArbiter:
    """Not thread-safe by itself: the caller serialises (the engine holds a lock)."""

    def __init__(self, hold_s: float, return_home_s: float) -> None:
        self.hold_s = hold_s
        self.return_home_s = return_home_s
        self._holds: dict[str, _Hold] = {}
        self._home_at: dict[str, float] = {}

    def holder(self, camera_id: str, now: float) -> str | None:
        hold = self._holds.get(camera_id)
        if hold is None or hold.until <= now:
            return None
        return hold.user

    def take(self, camera_id: str, user: str, now: float) -> float:
        """``user`` commands the camera (refreshes their hold); raises :class:`PtzBusy`
        while another operator holds it. Cancels a pending return home. Returns until
        when the user holds it."""
        hold = self._holds.get(camera_id)
        if hold is not None and hold.until > now and hold.user != user:
            raise PtzBusy(camera_id, hold.user, hold.until)
        until = now + self.hold_s
        self._holds[camera_id] = _Hold(user, until)
        self._home_at.pop(camera_id, None)  # the operator took it: it stays
        return until

    def release(self, camera_id: str, user: str) -> bool:
        """``user`` lets go; False if they did not hold it."""
        hold = self._holds.get(camera_id)
        if hold is None or hold.user != user:
            return False
        del self._holds[camera_id]
        return True

    def linkage_may_move(self, camera_id: str, now: float) -> str | None:
        """None when a linkage may move the camera, else the operator holding it."""
        return self.holder(camera_id, now)

    def linkage_moved(self, camera_id: str, now: float) -> float:
        """A linkage turned the camera: it returns home at the returned time."""
        at = now + self.return_home_s
        self._home_at[camera_id] = at
        return at

    def restore(self, camera_id: str, at: float) -> None:
        """A return home kept from before a restart (due at once when ``at`` passed)."""
        self._home_at[camera_id] = at

    def due_home(self, now: float) -> list[str]:
        """Cameras to send home now (each returned once)."""
        due = [c for c, at in self._home_at.items() if at <= now]
        for camera_id in due:
            del self._home_at[camera_id]
        return due

    def returns(self) -> dict[str, float]:
        """Pending returns home: camera → when."""
        return dict(self._home_at)

    def holds(self, now: float) -> dict[str, tuple[str, float]]:
        return {c: (h.user, h.until) for c, h in self._holds.items() if h.until > now}
